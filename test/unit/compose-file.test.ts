import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { composeValidator } from '../helpers/compose-schema.ts';
import { activeServices, isSecretName, loadComposeFile, parseEnvText, resolveDocument, variablesUsed } from '../../scripts/lib/domain/compose-model.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';

const FILE = path.join(REPO_ROOT, 'compose', 'compose.yaml');
const doc = loadComposeFile(FILE);
const example = Object.fromEntries(parseEnvText(fs.readFileSync(path.join(REPO_ROOT, 'compose', '.env.example'), 'utf8')).map((e) => [e.key, e.value]));
const everything = activeServices(doc, ['webui']);
const validate = await composeValidator();

test('compose.yaml validates against the Compose Specification schema, as written and resolved', () => {
  assert.equal(validate(doc), []);
  const resolved = resolveDocument(doc, example, everything);
  assert.equal(validate(resolved), []);
});

test('the schema check can fail: a wrong key and a wrong type are reported', () => {
  const bad = structuredClone(doc) as Record<string, any>;
  bad.services.api.restart_policy = 'always';
  bad.services.redis.healthcheck.interval = 5;
  const errors = validate(bad).join('\n');
  assert.match(errors, /\/services\/api .*unevaluated properties.*restart_policy/);
  assert.match(errors, /\/services\/redis\/healthcheck\/interval/);
});

test('every variable the stack uses is documented in .env.example, and the example resolves it', () => {
  const used = variablesUsed(doc, everything);
  const missing = [...used.keys()].filter((v) => !(v in example));
  assert.equal(missing, []);
  const docs = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'compose.md'), 'utf8');
  assert.equal(
    [...used.keys(), ...Object.keys(example)].filter((v) => !docs.includes(`| \`${v}\` |`)),
    [],
    'every variable has a row in docs/compose.md',
  );
  assert.ok(used.get('POSTGRES_PASSWORD')?.required);
  assert.ok(used.get('CONDUIT_API_TO_API_BACKEND_AUTH_KEY')?.required);
  assert.ok(used.get('CLERK_SECRET_KEY')?.required, 'the webui profile requires Clerk keys');
});

test('no secret is written into the file: secret-like settings all come from variables', () => {
  const text = fs.readFileSync(FILE, 'utf8');
  for (const [name, svc] of Object.entries(doc.services)) {
    for (const [k, v] of Object.entries((svc.environment ?? {}) as Record<string, unknown>)) {
      if (isSecretName(k) || (/_URL$/.test(k) && /:\/\/[^/]*@/.test(String(v)))) {
        assert.match(String(v), /\$\{[A-Z_]+/, `${name}.${k} must come from the env file`);
      }
    }
  }
  assert.not.match(text, /CONDUIT_MASTER_KEY|REDIS_URL_SIGNALR|ConnectionStrings__|CONDUIT_REDIS_INSTANCE_NAME|FORCE_RECREATE_DB_ON_FAILURE/, 'variables the app does not read (or must never get)');
});

test('the app gets its real configuration names, the same master key on all three', () => {
  const api = doc.services.api.environment as Record<string, string>;
  const admin = doc.services.admin.environment as Record<string, string>;
  const webui = doc.services.webui.environment as Record<string, string>;
  assert.match(api.DATABASE_URL, /^postgres:\/\/.*\?Pooling=true&MinPoolSize=\d+&MaxPoolSize=/);
  assert.match(admin.DATABASE_URL, /MaxPoolSize=\$\{ADMIN_DB_MAX_POOL_SIZE/);
  assert.match(api.REDIS_URL, /^redis:\/\/[^/]*@redis:6379$/, 'REDIS_URL without a /db suffix');
  for (const k of ['HOST', 'PORT', 'USERNAME', 'PASSWORD', 'VHOST']) assert.ok(api[`CONDUITLLM__RABBITMQ__${k}`], k);
  assert.is.not(api.CONDUITLLM__RABBITMQ__HOST, 'localhost');
  const key = '${CONDUIT_API_TO_API_BACKEND_AUTH_KEY:?';
  for (const env of [api, admin, webui]) assert.ok(env.CONDUIT_API_TO_API_BACKEND_AUTH_KEY.startsWith(key));
  assert.is(webui.CONDUIT_API_BASE_URL, 'http://api:8080');
  assert.is(webui.CONDUIT_ADMIN_API_BASE_URL, 'http://admin:8080');
  // Pools fit max_connections with headroom.
  const pools = Number(example.API_DB_MAX_POOL_SIZE) + Number(example.ADMIN_DB_MAX_POOL_SIZE);
  assert.ok(pools <= Number(example.POSTGRES_MAX_CONNECTIONS) * 0.8, `${pools} of ${example.POSTGRES_MAX_CONNECTIONS}`);
});

test('operations: health checks, health-gated start, restarts, limits, log rotation, named volumes', () => {
  const withImageHealthcheck = ['api', 'admin', 'webui']; // their images carry HEALTHCHECK (distroless: no shell)
  for (const [name, s] of Object.entries(doc.services)) {
    if (!withImageHealthcheck.includes(name)) assert.ok(s.healthcheck?.test, `${name} healthcheck`);
    assert.is(s.restart, 'unless-stopped', `${name} restart`);
    const limits = (s.deploy as { resources?: { limits?: { cpus?: string; memory?: string } } })?.resources?.limits;
    assert.ok(limits?.cpus && limits?.memory, `${name} limits`);
    assert.equal(s.logging?.options, { 'max-size': '10m', 'max-file': '5' }, `${name} log rotation`);
    for (const p of (s.ports ?? []) as string[]) assert.match(p, /^(127\.0\.0\.1|\$\{BIND_ADDRESS:-127\.0\.0\.1\}):/, `${name} port ${p} binds an address`);
  }
  for (const svc of ['api', 'admin']) {
    for (const dep of ['postgres', 'redis', 'rabbitmq']) assert.equal((doc.services[svc].depends_on as Record<string, { condition: string }>)[dep], { condition: 'service_healthy' });
  }
  assert.equal(Object.keys(doc.volumes ?? {}).sort(), ['grafana-data', 'postgres-data', 'prometheus-data', 'rabbitmq-data', 'redis-data']);
  assert.equal(doc.services.webui.profiles, ['webui']);
  assert.not.ok('jaeger' in doc.services, 'no tracing backend: the app exports no traces at this version');
  for (const svc of ['api', 'admin']) {
    const env = doc.services[svc].environment as Record<string, string>;
    assert.not.ok(
      Object.keys(env).some((k) => k.startsWith('OTEL_')),
      `${svc}: no OTEL_* setting (read by nothing)`,
    );
  }
  assert.not.ok('CONDUIT_ENABLE_HTTPS_REDIRECTION' in (doc.services.api.environment as Record<string, string>), 'read by Admin only');
  assert.is((doc.services.admin.environment as Record<string, string>).CONDUIT_ENABLE_HTTPS_REDIRECTION, '${CONDUIT_ENABLE_HTTPS_REDIRECTION:-false}');
});

test('monitoring: Prometheus loads alerts/*.rules.yaml, Grafana gets ../dashboards and a Prometheus datasource', () => {
  const prom = doc.services.prometheus.volumes as string[];
  assert.ok(prom.includes('../alerts:/etc/prometheus/rules:ro'));
  const cfg = YAML.parse(fs.readFileSync(path.join(REPO_ROOT, 'compose', 'prometheus', 'prometheus.yml'), 'utf8'));
  assert.equal(cfg.rule_files, ['/etc/prometheus/rules/*.rules.yaml']);
  const jobs = cfg.scrape_configs.map((j: { job_name: string }) => j.job_name);
  assert.ok(jobs.includes('conduit-api'));
  assert.not.ok(
    cfg.scrape_configs.some((j: { static_configs: { targets: string[] }[] }) => j.static_configs.some((s) => s.targets.some((t) => t.startsWith('admin')))),
    'never scrape Admin without its key',
  );
  assert.ok((doc.services.grafana.volumes as string[]).includes('../dashboards:/var/lib/grafana/dashboards/conduit:ro'));
  const ds = YAML.parse(fs.readFileSync(path.join(REPO_ROOT, 'compose', 'grafana', 'provisioning', 'datasources', 'prometheus.yaml'), 'utf8'));
  assert.is(ds.datasources[0].url, 'http://prometheus:9090');
  const dash = YAML.parse(fs.readFileSync(path.join(REPO_ROOT, 'compose', 'grafana', 'provisioning', 'dashboards', 'conduit.yaml'), 'utf8'));
  assert.is(dash.providers[0].options.path, '/var/lib/grafana/dashboards/conduit');
});

test('RabbitMQ gets the delayed-message-exchange plugin from a derived image with a verified checksum', () => {
  assert.equal(doc.services.rabbitmq.build, { context: '../docker', dockerfile: 'rabbitmq.Dockerfile' });
  const df = fs.readFileSync(path.join(REPO_ROOT, 'docker', 'rabbitmq.Dockerfile'), 'utf8');
  assert.match(df, /rabbitmq:4\.2-management@sha256:[0-9a-f]{64}/);
  assert.match(df, /DELAYED_EXCHANGE_VERSION=4\.2\.0/);
  assert.match(df, /sha256sum -c/);
  assert.match(df, /rabbitmq-plugins enable --offline rabbitmq_delayed_message_exchange/);
});

test.run();
