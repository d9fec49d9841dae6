// schemas/app-facts.yaml and its checker (test/support/appfacts.ts): the facts load, validate and cite
// their upstream sources in the agreed format; the checker fails on each kind of mismatch (proven
// with synthetic workloads and with mutated copies of the facts); the Compose stack matches the facts
// both ways; the metric catalog never credits a component with a family it does not export.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import YAML from 'yaml';
import {
  APP_FACTS_FILE,
  allSourceRefs,
  checkEnv,
  checkImage,
  checkProbes,
  checkScrapes,
  compareCatalog,
  composeProbes,
  composeWorkloads,
  dockerfileProbe,
  expansionRefs,
  healthcheckUrl,
  loadAppFacts,
  lookupEnvFact,
  parseSourceRef,
  prometheusScrapes,
  type AppFacts,
  type Component,
  type EnvSetting,
  type Finding,
  type ProbeUse,
  type Workload,
} from '../support/appfacts.ts';
import { loadCatalog } from '../../scripts/lib/domain/catalog.ts';
import { activeServices, loadComposeFile, readEnvFile, resolveDocument } from '../../scripts/lib/domain/compose-model.ts';
import { isUserError } from '../../scripts/lib/core/errors.ts';
import { repoPath } from '../../scripts/lib/core/paths.ts';

const facts = loadAppFacts();

function workload(component: Component, vars: Record<string, string | { ref: string }>, maxReplicas = 1): Workload {
  const env = new Map<string, EnvSetting>(Object.entries(vars).map(([k, v]) => [k, typeof v === 'string' ? { value: v } : v]));
  return { origin: `test ${component}`, component, env, maxReplicas };
}

const SECRET = { ref: 'secret s/k' };
/** A minimal correct environment per component. */
const API_ENV = { DATABASE_URL: 'postgres://conduit:$(PW)@db:5432/conduit?Pooling=true', PW: SECRET, REDIS_URL: 'redis://redis:6379', CONDUIT_API_TO_API_BACKEND_AUTH_KEY: SECRET };
const ADMIN_ENV = { DATABASE_URL: 'postgres://conduit:$(PW)@db:5432/conduit', PW: SECRET, REDIS_URL: 'redis://redis:6379', CONDUIT_API_TO_API_BACKEND_AUTH_KEY: SECRET };
const WEBUI_ENV = {
  CONDUIT_API_BASE_URL: 'http://api:8080',
  CONDUIT_ADMIN_API_BASE_URL: 'http://admin:8080',
  CONDUIT_API_EXTERNAL_URL: 'https://api.example.com',
  CONDUIT_ADMIN_API_EXTERNAL_URL: 'https://admin.example.com',
  CONDUIT_API_TO_API_BACKEND_AUTH_KEY: SECRET,
  NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY: 'pk_live_abc',
  CLERK_SECRET_KEY: SECRET,
};

function kinds(findings: Finding[]): string[] {
  return findings.map((f) => `${f.kind} ${f.component} ${f.subject}`).sort();
}

/** Probe and scrape findings name the component in their subject already. */
function useKinds(findings: Finding[]): string[] {
  return findings.map((f) => `${f.kind} ${f.subject}`).sort();
}

function writeCopy(mutate: (text: string) => string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'app-facts-'));
  const file = path.join(dir, 'app-facts.yaml');
  fs.writeFileSync(file, mutate(fs.readFileSync(APP_FACTS_FILE, 'utf8')));
  return file;
}

function loadError(file: string): string {
  try {
    loadAppFacts(file);
  } catch (e) {
    assert.ok(isUserError(e), String(e));
    return (e as Error).message;
  }
  throw new Error('the copy loaded although it is wrong');
}

// ---- the facts file -----------------------------------------------------------------------------------

test('the facts describe one upstream commit, its version and its immutable image tags', () => {
  assert.match(facts.app.commit, /^[0-9a-f]{40}$/);
  assert.ok(new RegExp(facts.app.images.tagRegex).test(`master-${facts.app.commit.slice(0, 7)}`));
  assert.not.ok(new RegExp(facts.app.images.tagRegex).test('latest'));
  assert.equal(Object.keys(facts.app.images.repositories).sort(), ['admin', 'api', 'webui']);
});

test('every fact cites at least one upstream source as <path>:<line> or <path>:<first>-<last>', () => {
  const refs = allSourceRefs(facts);
  assert.ok(refs.length > 150, `only ${refs.length} sources`);
  const bad = refs.filter((r) => !parseSourceRef(r.ref)).map((r) => `${r.at}: ${r.ref}`);
  assert.equal(bad, []);
  for (const f of facts.env) assert.ok(f.source.length > 0, f.name);
  assert.equal(parseSourceRef('ConduitLLM.Admin/Program.cs:335-338'), { path: 'ConduitLLM.Admin/Program.cs', first: 335, last: 338 });
  assert.equal(parseSourceRef('.github/workflows/ci.yml:100'), { path: '.github/workflows/ci.yml', first: 100, last: 100 });
  for (const wrong of ['Program.cs', 'Program.cs:0', 'Program.cs:12-3', '/abs/Program.cs:1', '../up/Program.cs:1', 'Program.cs:1:2', 'https://github.com/x/y/blob/main/a.cs:1'])
    assert.is(parseSourceRef(wrong), undefined, wrong);
});

test('the file says how its facts were gathered and how to re-check them at the pinned commit', () => {
  const text = fs.readFileSync(APP_FACTS_FILE, 'utf8');
  const header = text.slice(0, text.indexOf('factsVersion:'));
  assert.match(header, /git show <app\.commit>:<path>/);
  assert.match(header, /no network/);
});

test('each variable the chart or Compose may set is described once; unread ones name where upstream mentions them', () => {
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'CONDUIT_API_TO_API_BACKEND_AUTH_KEY', 'CONDUITLLM__RABBITMQ__VHOST', 'CONDUIT_S3_BUCKET_NAME', 'NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY'])
    assert.ok(
      facts.env.some((f) => f.name === name),
      name,
    );
  const unread = facts.env.filter((f) => f.reader === 'unread').map((f) => f.name);
  for (const name of ['CONDUIT_MASTER_KEY', 'OTEL_EXPORTER_OTLP_', 'OTEL_SERVICE_NAME', 'CONDUIT_REDIS_INSTANCE_NAME']) assert.ok(unread.includes(name), name);
  for (const f of facts.env.filter((x) => x.reader === 'unread')) assert.equal(f.readBy, [], f.name);
});

test('the loader rejects a malformed copy with the file, line and key, and a fix', () => {
  const noLine = writeCopy((t) => t.replace('ConduitLLM.Core/Data/ConnectionStringManager.cs:48-62', 'ConduitLLM.Core/Data/ConnectionStringManager.cs'));
  const msg = loadError(noLine);
  assert.match(msg, /app-facts\.yaml is invalid/);
  assert.match(msg, new RegExp(`${noLine.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: env\\[0\\]\\.source\\[0\\]: must match pattern`));
  const unknownKey = writeCopy((t) => t.replace('  - name: REDIS_URL\n', '  - name: REDIS_URL\n    readers: [api]\n'));
  assert.match(loadError(unknownKey), /:\d+:\d+: env\[1\]\.readers: unknown key \(allowed: name, match, alsoNames, reader, readBy/);
  const badReader = writeCopy((t) => t.replace('  - name: DATABASE_URL\n    reader: app', '  - name: DATABASE_URL\n    reader: sometimes'));
  assert.match(loadError(badReader), /env\[0\]\.reader: must be equal to one of the allowed values/);
});

test('the loader rejects an inconsistent copy: a fact twice, a requirement on a component that does not read it, a dangling name, a bad pattern', () => {
  const twice = writeCopy((t) => t.replace('  - name: CONDUIT_REDIS_CONNECTION_STRING\n', '  - name: REDIS_URL\n'));
  assert.match(loadError(twice), /env\[2\]\.name: REDIS_URL is described twice \(also env\[1\]\)/);
  const notReader = writeCopy((t) => t.replace('      - components: [api, admin]\n        why: start-up throws', '      - components: [api, webui]\n        why: start-up throws'));
  assert.match(loadError(notReader), /webui must have DATABASE_URL but does not read it/);
  const dangling = writeCopy((t) =>
    t.replace('satisfiedBy: [CONDUIT_REDIS_CONNECTION_STRING]\n        why: >-\n          BatchSpend', 'satisfiedBy: [CONDUIT_REDIS_URI]\n        why: >-\n          BatchSpend'),
  );
  assert.match(loadError(dangling), /CONDUIT_REDIS_URI is accepted instead of REDIS_URL, but no entry says api reads it/);
  const badRegex = writeCopy((t) => t.replace('pattern: ^/\n', 'pattern: ^(/\n'));
  assert.match(loadError(badRegex), /value\.pattern: not a valid regular expression/);
  const backwards = writeCopy((t) => t.replace('ConduitLLM.Admin/Program.cs:335-338', 'ConduitLLM.Admin/Program.cs:338-335'));
  assert.match(loadError(backwards), /338-335: not <path>:<line>/);
});

// ---- looking names up -----------------------------------------------------------------------------------

test('lookup: IConfiguration names match case-insensitively with : or __ on .NET; names the code reads exactly must match exactly', () => {
  assert.is(lookupEnvFact(facts, 'api', 'ConduitLLM__RabbitMQ__Host')?.name, 'CONDUITLLM__RABBITMQ__HOST');
  assert.is(lookupEnvFact(facts, 'admin', 'ConduitLLM:RabbitMQ:VHost')?.name, 'CONDUITLLM__RABBITMQ__VHOST');
  assert.is(lookupEnvFact(facts, 'api', 'database_url'), undefined, 'Environment.GetEnvironmentVariable is case-sensitive on Linux');
  assert.is(lookupEnvFact(facts, 'webui', 'node_env'), undefined, 'process.env is case-sensitive');
  assert.is(lookupEnvFact(facts, 'api', 'CONDUITLLM__RABBITMQ__HOSTNAME'), undefined, 'a misspelt property is not covered');
  assert.is(lookupEnvFact(facts, 'api', 'CONDUITLLM__RABBITMQ__PrefetchCount')?.name, 'CONDUITLLM__RABBITMQ__PREFETCHCOUNT', 'alsoNames');
});

test('lookup: an exact entry wins over a prefix, the longest prefix wins, prefixes cover families', () => {
  assert.is(lookupEnvFact(facts, 'api', 'ASPNETCORE_ENVIRONMENT')?.match ?? 'exact', 'exact');
  assert.is(lookupEnvFact(facts, 'api', 'ASPNETCORE_HTTP_PORTS')?.name, 'ASPNETCORE_');
  assert.is(lookupEnvFact(facts, 'admin', 'Logging__Console__FormatterName')?.name, 'Logging__');
  assert.is(lookupEnvFact(facts, 'admin', 'LOGGING__LOGLEVEL__DEFAULT')?.name, 'Logging__');
  assert.is(lookupEnvFact(facts, 'api', 'OTEL_EXPORTER_OTLP_ENDPOINT')?.reader, 'unread');
  assert.is(lookupEnvFact(facts, 'webui', 'CONDUIT_ADMIN_API_BASE_URL')?.readBy.join(), 'webui');
});

// ---- the environment check -------------------------------------------------------------------------------

test('a correct deployment passes; variables only expanded into others with $(VAR) are not "set but not read"', () => {
  const ws = [workload('api', API_ENV), workload('admin', ADMIN_ENV), workload('webui', WEBUI_ENV)];
  assert.equal(checkEnv(facts, ws), []);
  assert.equal([...expansionRefs(ws[0].env)], ['PW']);
});

test('set but not read: unknown names, names read by nothing, names another component reads, names never to set', () => {
  const w = workload('api', { ...API_ENV, CONDUIT_MASTER_KEY: 'k', CONDUIT_ENABLE_HTTPS_REDIRECTION: 'false', CONDUIT_TYPO_VAR: '1', FORCE_RECREATE_DB_ON_FAILURE: 'true' });
  assert.equal(kinds(checkEnv(facts, [w])), [
    'never-set api FORCE_RECREATE_DB_ON_FAILURE',
    'not-read-here api CONDUIT_ENABLE_HTTPS_REDIRECTION',
    'unknown api CONDUIT_TYPO_VAR',
    'unread api CONDUIT_MASTER_KEY',
  ]);
  const msg = checkEnv(facts, [w]).find((f) => f.subject === 'CONDUIT_ENABLE_HTTPS_REDIRECTION')!.message;
  assert.match(msg, /only admin read\(s\) \(ConduitLLM\.Admin\/Program\.cs:302-307\)/);
});

test('required but not set, with alternatives and conditions (replicas, another variable set or equal to a value)', () => {
  assert.equal(
    kinds(
      checkEnv(
        facts,
        [workload('api', { ...API_ENV, DATABASE_URL: undefined as never, REDIS_URL: undefined as never })].map((w) => ({ ...w, env: new Map([...w.env].filter(([, v]) => v)) })),
      ),
    ),
    ['missing api DATABASE_URL', 'missing api REDIS_URL', 'unknown api PW'],
  );
  // The legacy connection string satisfies the Redis requirement.
  const legacy = workload('api', { ...API_ENV, REDIS_URL: 'x' });
  legacy.env.delete('REDIS_URL');
  legacy.env.set('CONDUIT_REDIS_CONNECTION_STRING', { value: 'redis:6379' });
  assert.equal(checkEnv(facts, [legacy]), []);
  // Admin needs Redis only with more than one replica.
  const admin = workload('admin', ADMIN_ENV);
  admin.env.delete('REDIS_URL');
  assert.equal(checkEnv(facts, [admin]), []);
  assert.equal(kinds(checkEnv(facts, [{ ...admin, maxReplicas: 2 }])), ['missing admin CONDUITLLM__RABBITMQ__HOST', 'missing admin REDIS_URL']);
  // Several API replicas need RabbitMQ and S3 media storage; S3 then needs its bucket and keys.
  assert.equal(kinds(checkEnv(facts, [workload('api', API_ENV, 3)])), ['missing api CONDUITLLM__RABBITMQ__HOST', 'missing api CONDUIT_MEDIA_STORAGE_TYPE']);
  const s3 = workload('api', { ...API_ENV, CONDUITLLM__RABBITMQ__HOST: 'mq', CONDUIT_MEDIA_STORAGE_TYPE: 's3' }, 3);
  assert.equal(kinds(checkEnv(facts, [s3])), [
    'missing api CONDUITLLM__RABBITMQ__PASSWORD',
    'missing api CONDUITLLM__RABBITMQ__USERNAME',
    'missing api CONDUIT_S3_ACCESS_KEY_ID',
    'missing api CONDUIT_S3_BUCKET_NAME',
    'missing api CONDUIT_S3_SECRET_ACCESS_KEY',
  ]);
  const inMemory = workload(
    'api',
    { ...API_ENV, CONDUITLLM__RABBITMQ__HOST: 'mq', CONDUITLLM__RABBITMQ__USERNAME: 'u', CONDUITLLM__RABBITMQ__PASSWORD: SECRET, CONDUIT_MEDIA_STORAGE_TYPE: 'InMemory' },
    3,
  );
  assert.equal(kinds(checkEnv(facts, [inMemory])), ['bad-value api CONDUIT_MEDIA_STORAGE_TYPE']);
  const old = workload('api', { ...API_ENV, CONDUIT_MEDIA_STORAGE_TYPE: 'S3', CONDUIT_S3_ACCESS_KEY: SECRET, CONDUIT_S3_SECRET_KEY: SECRET, ConduitLLM__Storage__S3__BucketName: 'b' });
  assert.equal(checkEnv(facts, [old]), [], 'older names and the configuration section satisfy the S3 requirements');
});

test('values of the wrong shape: url-decoding, a Redis /db suffix, a vhost without /, localhost RabbitMQ, Clerk key', () => {
  const w = workload('api', {
    ...API_ENV,
    DATABASE_URL: 'postgres://u:$(PW)@x@db/conduit',
    REDIS_URL: 'redis://redis:6379/2',
    CONDUITLLM__RABBITMQ__HOST: 'localhost',
    CONDUITLLM__RABBITMQ__VHOST: 'conduit',
    CONDUITLLM__RABBITMQ__USERNAME: 'u',
    CONDUITLLM__RABBITMQ__PASSWORD: SECRET,
  });
  assert.equal(kinds(checkEnv(facts, [w])), ['bad-value api CONDUITLLM__RABBITMQ__HOST', 'bad-value api CONDUITLLM__RABBITMQ__VHOST', 'bad-value api DATABASE_URL', 'bad-value api REDIS_URL']);
  const ui = workload('webui', { ...WEBUI_ENV, NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY: 'clerk', CONDUIT_API_BASE_URL: 'api:8080' });
  assert.equal(kinds(checkEnv(facts, [ui])), ['bad-value webui CONDUIT_API_BASE_URL', 'bad-value webui NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY']);
  // Secret-backed values are not checked (their value is unknown); $(VAR) references count as opaque text.
  assert.equal(checkEnv(facts, [workload('api', { ...API_ENV, REDIS_URL: 'rediss://default:$(PW)@cache:6380' })]), []);
});

test('values that must agree between components: the master key reference, RabbitMQ host, media storage', () => {
  const api = workload('api', { ...API_ENV, CONDUIT_MEDIA_STORAGE_TYPE: 'S3', CONDUIT_S3_ACCESS_KEY_ID: SECRET, CONDUIT_S3_SECRET_ACCESS_KEY: SECRET, CONDUIT_S3_BUCKET_NAME: 'b' });
  const admin = workload('admin', { ...ADMIN_ENV, CONDUIT_API_TO_API_BACKEND_AUTH_KEY: { ref: 'secret other/k' } });
  assert.equal(kinds(checkEnv(facts, [api, admin])), [
    'differs - CONDUIT_API_TO_API_BACKEND_AUTH_KEY',
    'differs - CONDUIT_MEDIA_STORAGE_TYPE',
    'differs - CONDUIT_S3_ACCESS_KEY_ID',
    'differs - CONDUIT_S3_BUCKET_NAME',
    'differs - CONDUIT_S3_SECRET_ACCESS_KEY',
  ]);
});

// ---- probes, scrapes, images ------------------------------------------------------------------------------

test('probes: unknown path, wrong port, a dependency check as liveness, anything needing auth', () => {
  const p = (component: Component, kind: ProbeUse['kind'], pathName: string, port: number): ProbeUse => ({ origin: 't', component, kind, path: pathName, port });
  assert.equal(
    checkProbes(facts, [
      p('api', 'liveness', '/health/live', 8080),
      p('admin', 'readiness', '/health', 8080),
      p('webui', 'startup', '/api/health', 3000),
      p('api', 'healthcheck', '/health/ready', 8080),
    ]),
    [],
  );
  assert.equal(
    useKinds(
      checkProbes(facts, [
        p('api', 'liveness', '/health', 8080),
        p('admin', 'liveness', '/health', 8080),
        p('api', 'readiness', '/healthz', 8080),
        p('webui', 'readiness', '/api/health', 8080),
        p('admin', 'readiness', '/metrics', 8080),
      ]),
    ),
    [
      'needs-auth admin /metrics',
      'no-endpoint api readiness /healthz',
      'unsuitable admin liveness /health',
      'unsuitable admin readiness /metrics',
      'unsuitable api liveness /health',
      'wrong-port webui readiness /api/health',
    ],
  );
});

test('scrapes: Admin needs the master key in X-API-Key or X-Master-Key and punishes Authorization; the API needs nothing', () => {
  const s = (component: Component, headers: string[], port = 8080, p = '/metrics') => ({ origin: 't', component, path: p, port, headers });
  assert.equal(checkScrapes(facts, [s('api', []), s('admin', ['X-API-Key']), s('admin', ['x-master-key'])]), []);
  assert.equal(useKinds(checkScrapes(facts, [s('admin', []), s('admin', ['Authorization']), s('api', [], 9090), s('webui', [], 3000)])), [
    'needs-auth admin /metrics',
    'needs-auth admin /metrics',
    'no-endpoint webui /metrics',
    'rejected-auth admin /metrics',
    'wrong-port api /metrics',
  ]);
  const banned = checkScrapes(facts, [s('admin', ['Authorization'])]).find((f) => f.kind === 'rejected-auth')!;
  assert.match(banned.message, /5 failures from one IP ban it for 30 minutes/);
});

test('images: the upstream repository with the immutable tag of the facts commit, or a digest', () => {
  const tag = `master-${facts.app.commit.slice(0, 7)}`;
  assert.equal(checkImage(facts, 't', 'api', `ghcr.io/knnlabs/conduit-http:${tag}`), []);
  assert.equal(checkImage(facts, 't', 'admin', `ghcr.io/knnlabs/conduit-admin@sha256:${'a'.repeat(64)}`), []);
  assert.is(checkImage(facts, 't', 'api', 'ghcr.io/knnlabs/conduit-http:latest').length, 1);
  assert.is(checkImage(facts, 't', 'webui', `ghcr.io/knnlabs/conduit-admin:${tag}`).length, 1);
});

test('healthcheck commands and Dockerfile HEALTHCHECKs yield the URL they fetch', () => {
  assert.equal(healthcheckUrl(['CMD', 'curl', '-f', 'http://localhost:8080/health/ready']), { port: 8080, path: '/health/ready' });
  assert.equal(healthcheckUrl('wget -q -O /dev/null http://127.0.0.1:3000/api/health || exit 1'), { port: 3000, path: '/api/health' });
  assert.is(healthcheckUrl(['CMD', 'pg_isready']), undefined);
  assert.equal(dockerfileProbe('FROM x\nHEALTHCHECK --interval=30s \\\n  CMD curl -f http://localhost:8080/health/live || exit 1\n', 'api', 'd'), {
    origin: 'd',
    component: 'api',
    kind: 'healthcheck',
    port: 8080,
    path: '/health/live',
  });
  assert.is(dockerfileProbe('FROM x\nHEALTHCHECK NONE\n', 'api', 'd'), undefined);
});

// ---- the Compose stack, both ways -------------------------------------------------------------------------

function composeStack() {
  const doc = loadComposeFile(repoPath('compose', 'compose.yaml'));
  const { env } = readEnvFile(repoPath('compose', '.env.example'));
  const names = activeServices(doc, ['webui']);
  const resolved = resolveDocument(doc, env, names, false);
  return { doc, env, services: resolved.services as unknown as Record<string, Record<string, unknown>> };
}

test('compose: api, admin and webui set only what each reads, and everything each requires, in the right shape', () => {
  const { services } = composeStack();
  const { workloads, findings } = composeWorkloads(services, 'compose/compose.yaml');
  assert.equal(
    workloads.map((w) => w.component),
    ['api', 'admin', 'webui'],
  );
  const problems = [...findings, ...checkEnv(facts, workloads)];
  assert.equal(
    problems.map((f) => f.subject),
    [],
    `\n  ${problems.map((f) => f.message).join('\n  ')}`,
  );
});

test("compose: healthchecks (the stack's and those of the project's images) and Prometheus scrapes match the endpoints", () => {
  const { services } = composeStack();
  const probes: ProbeUse[] = composeProbes(services, 'compose/compose.yaml');
  for (const c of ['api', 'admin', 'webui'] as const) {
    const file = repoPath('docker', `${c}.Dockerfile`);
    const p = fs.existsSync(file) ? dockerfileProbe(fs.readFileSync(file, 'utf8'), c, `docker/${c}.Dockerfile`) : undefined;
    if (p) probes.push(p);
  }
  assert.ok(probes.length >= 3, 'every app container has a healthcheck');
  const prom = YAML.parse(fs.readFileSync(repoPath('compose', 'prometheus', 'prometheus.yml'), 'utf8'));
  const scrapes = prometheusScrapes(prom, 'compose/prometheus/prometheus.yml');
  assert.ok(
    scrapes.some((s) => s.component === 'api'),
    'the API is scraped',
  );
  const problems = [...checkProbes(facts, probes), ...checkScrapes(facts, scrapes)];
  assert.equal(
    problems.map((f) => f.subject),
    [],
    `\n  ${problems.map((f) => f.message).join('\n  ')}`,
  );
});

test('compose: the example env pins the app images to the facts commit, and Redis never evicts by default', () => {
  const { doc, env } = composeStack();
  const images: [Component, string][] = [
    ['api', 'CONDUIT_API_IMAGE'],
    ['admin', 'CONDUIT_ADMIN_IMAGE'],
    ['webui', 'CONDUIT_WEBUI_IMAGE'],
  ];
  const problems = images.flatMap(([c, v]) => checkImage(facts, `compose/.env.example ${v}`, c, env[v]));
  assert.equal(
    problems.map((f) => f.message),
    [],
  );
  const redisEnv = (doc.services.redis.environment ?? {}) as Record<string, string>;
  const fallback = /\$\{REDIS_MAXMEMORY_POLICY:-([^}]+)\}/.exec(String(redisEnv.REDIS_MAXMEMORY_POLICY))?.[1];
  assert.is(fallback, facts.redis.evictionPolicy, `compose.yaml's default maxmemory-policy: ${facts.redis.why}`);
  assert.is(env.REDIS_MAXMEMORY_POLICY, facts.redis.evictionPolicy, `.env.example's REDIS_MAXMEMORY_POLICY: ${facts.redis.why}`);
});

test('a mutated copy of the facts fails on the real Compose stack: a dropped fact is "set but not read", a bogus requirement is "required but not set"', () => {
  const { services } = composeStack();
  const { workloads } = composeWorkloads(services, 'compose/compose.yaml');
  const mutated: AppFacts = structuredClone(facts);
  mutated.env = mutated.env.filter((f) => f.name !== 'CONDUITLLM__RABBITMQ__VHOST');
  mutated.env.push({ name: 'CONDUIT_BOGUS_REQUIRED', reader: 'app', readBy: ['webui'], via: 'test', source: ['X.ts:1'], required: [{ components: ['webui'], why: 'test' }] });
  const found = checkEnv(mutated, workloads);
  assert.equal(kinds(found), ['missing webui CONDUIT_BOGUS_REQUIRED', 'unknown admin CONDUITLLM__RABBITMQ__VHOST', 'unknown api CONDUITLLM__RABBITMQ__VHOST']);
  assert.match(found.find((f) => f.kind === 'unknown')!.message, /set but not read/);
  assert.match(found.find((f) => f.kind === 'missing')!.message, /requires CONDUIT_BOGUS_REQUIRED but it is not set/);
});

// ---- the metric catalog -----------------------------------------------------------------------------------

test('the metric catalog credits no component with an app metric family it does not export', () => {
  const catalog = loadCatalog();
  const app = catalog.metrics
    .filter((m) => catalog.sources[m.source]?.kind === 'app')
    .map((m) => ({ name: m.name, components: String(catalog.sources[m.source].component).split(/,\s*/) as Component[] }));
  assert.ok(app.length > 10);
  const wrong = compareCatalog(facts, app).filter((d) => d.kind !== 'partial');
  assert.equal(
    wrong.map((d) => d.message),
    [],
  );
  // The comparison itself can fail: a family the facts give to the API only, credited to Admin too.
  assert.equal(
    compareCatalog(facts, [{ name: 'process_cpu_time_seconds_total', components: ['api', 'admin'] }]).map((d) => d.kind),
    ['wrong'],
  );
  assert.equal(
    compareCatalog(facts, [{ name: 'conduit_http_requests_total', components: ['api'] }]).map((d) => d.kind),
    ['unknown'],
  );
});

test.run();
