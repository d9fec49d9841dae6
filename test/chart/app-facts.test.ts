// The chart against schemas/app-facts.yaml, both ways: every variable the chart sets on api, admin
// and webui is one that component reads, every variable it requires is set (with a value of the
// right shape), and every probe, helm test and scrape hits an endpoint it serves, on its port, with
// the auth it needs. Run for the chart defaults, an "everything on" values set and every registered
// cluster, so a new chart feature cannot set something the app ignores or forget what it needs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  checkEnv,
  checkImage,
  checkProbes,
  checkScrapes,
  chartProbes,
  chartRedisPolicy,
  chartScrapes,
  chartWorkloads,
  loadAppFacts,
  type AppFacts,
  type Component,
  type Finding,
} from '../support/appfacts.ts';
import { loadRegistry } from '../../scripts/lib/domain/clusters.ts';
import { clusterInput, merge, renderObjects, type K8sObject, type RenderInput } from './helpers.ts';

const facts = loadAppFacts();

/** Every optional part on: exposed WebUI with Clerk, S3 media, external data services, autoscaling, monitoring. */
const EVERYTHING_ON: Record<string, unknown> = {
  webui: { enabled: true, clerk: { publishableKey: 'pk_test_Y2hhcnQtdGVzdHMuY2xlcmsuZGV2JA', existingSecret: 'conduit-clerk' }, autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 4 } },
  ingress: { enabled: true, hosts: { api: 'api.example.com', admin: 'admin.example.com', webui: 'ui.example.com' } },
  mediaStorage: { type: 's3', s3: { endpoint: 'https://s3.example.com', bucketName: 'media', region: 'eu-central-1', publicBaseUrl: 'https://media.example.com', existingSecret: 'conduit-s3' } },
  database: { mode: 'external', external: { host: 'pg.example.com', port: 5432, sslMode: 'Require' }, auth: { existingSecret: 'pg', existingSecretPasswordKey: 'password' } },
  redis: { mode: 'external', external: { url: 'rediss://cache.example.com:6380' }, auth: { existingSecret: 'redis', existingSecretPasswordKey: 'password' } },
  rabbitmq: { mode: 'external', external: { host: 'mq.example.com', port: 5671 }, auth: { existingSecret: 'mq' } },
  api: { autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 4 } },
  admin: { replicaCount: 2 },
  app: { skipDatabaseInit: true },
  monitoring: { serviceMonitor: { enabled: true }, adminScrapeConfig: { enabled: true } },
  networkPolicy: { enabled: false },
};

const CASES: { name: string; input: () => RenderInput }[] = [
  { name: 'chart defaults', input: () => ({}) },
  { name: 'everything on', input: () => ({ values: EVERYTHING_ON }) },
  ...loadRegistry().clusters.map((c) => ({ name: `cluster ${c.name}`, input: () => clusterInput(c.name) })),
];

function report(findings: Finding[]): string {
  return findings.length ? `\n  ${findings.map((f) => f.message).join('\n  ')}` : '';
}

async function objectsOf(c: (typeof CASES)[number]): Promise<K8sObject[]> {
  return renderObjects(c.input());
}

function components(objects: K8sObject[]): Component[] {
  return chartWorkloads(objects, '')
    .workloads.map((w) => w.component)
    .sort();
}

test('the everything-on values set really runs all three components, the WebUI, S3 and autoscaling included', async () => {
  const objects = await renderObjects({ values: EVERYTHING_ON });
  assert.equal(components(objects), ['admin', 'api', 'webui']);
  const { workloads } = chartWorkloads(objects, 'everything on');
  assert.ok(workloads.find((w) => w.component === 'api')!.maxReplicas > 1, 'api may scale out');
  assert.is(workloads.find((w) => w.component === 'api')!.env.get('CONDUIT_MEDIA_STORAGE_TYPE')?.value, 'S3');
  assert.ok(
    chartScrapes(objects, '').scrapes.some((s) => s.component === 'admin'),
    'the Admin scrape config is rendered',
  );
});

for (const c of CASES) {
  test(`${c.name}: every variable set on api, admin and webui is read by that component (no unread, no unknown)`, async () => {
    const { workloads, findings } = chartWorkloads(await objectsOf(c), c.name);
    assert.ok(workloads.length >= 2, 'api and admin are rendered');
    const problems = [...findings, ...checkEnv(facts, workloads).filter((f) => ['unknown', 'unread', 'not-read-here', 'never-set'].includes(f.kind))];
    assert.equal(
      problems.map((f) => f.subject),
      [],
      `set but not read by the app (schemas/app-facts.yaml):${report(problems)}`,
    );
  });

  test(`${c.name}: every variable an enabled component requires is set, with a value of the right shape`, async () => {
    const { workloads } = chartWorkloads(await objectsOf(c), c.name);
    const problems = checkEnv(facts, workloads).filter((f) => ['missing', 'bad-value', 'differs'].includes(f.kind));
    assert.equal(
      problems.map((f) => f.subject),
      [],
      `required by the app but not set, or malformed:${report(problems)}`,
    );
  });

  test(`${c.name}: probes and helm tests hit health endpoints the component serves, on its port, fit for the probe`, async () => {
    const objects = await objectsOf(c);
    const uses = chartProbes(objects, c.name);
    for (const comp of components(objects)) {
      for (const kind of ['startup', 'liveness', 'readiness'] as const)
        assert.ok(
          uses.some((u) => u.component === comp && u.kind === kind),
          `${comp} has a ${kind} probe`,
        );
    }
    const problems = checkProbes(facts, uses);
    assert.equal(
      problems.map((f) => f.subject),
      [],
      `probes that do not match schemas/app-facts.yaml endpoints:${report(problems)}`,
    );
  });

  test(`${c.name}: scrapes hit the metrics endpoints on their port, with the auth each needs and nothing that is punished`, async () => {
    const { scrapes, findings } = chartScrapes(await objectsOf(c), c.name);
    const problems = [...findings, ...checkScrapes(facts, scrapes)];
    assert.equal(
      problems.map((f) => f.subject),
      [],
      `scrapes that do not match schemas/app-facts.yaml endpoints:${report(problems)}`,
    );
  });

  test(`${c.name}: the app images are the facts' repositories at the facts' commit (unless pinned by digest or overridden)`, async () => {
    const objects = await objectsOf(c);
    const problems: Finding[] = [];
    for (const d of objects.filter((o) => o.kind === 'Deployment')) {
      const comp = d.metadata.labels?.['app.kubernetes.io/component'] as Component;
      if (!['api', 'admin', 'webui'].includes(comp)) continue;
      const image: string = d.spec.template.spec.containers.find((x: { name: string }) => x.name === comp).image;
      const registryOverride = !image.startsWith('ghcr.io/knnlabs/');
      if (!registryOverride) problems.push(...checkImage(facts, `${c.name}: Deployment ${d.metadata.name}`, comp, image));
    }
    assert.equal(
      problems.map((f) => f.subject),
      [],
      report(problems),
    );
  });

  test(`${c.name}: the Redis the chart runs never evicts (spend batches and bans carry TTLs)`, async () => {
    const policy = chartRedisPolicy(await objectsOf(c));
    if (policy !== undefined) assert.is(policy, facts.redis.evictionPolicy, `maxmemory-policy ${policy}: ${facts.redis.why}`);
  });
}

// The checks can fail on a real render: a deliberately wrong deployment is caught by each of them.
test('the checks catch a real render gone wrong: unread and misspelt variables, a removed requirement, bad values, a bad probe, a Bearer scrape of Admin', async () => {
  const bad = merge(EVERYTHING_ON, {
    // The values schema refuses a vhost without its leading `/`; api.env overrides the chart's own value.
    api: { env: { CONDUIT_MASTER_KEY: 'x', CONDUITLLM__RABBITMQ__HOSTNAME: 'mq', CONDUITLLM__RABBITMQ__VHOST: 'conduit' }, probes: { liveness: { path: '/health' } } },
    admin: { env: { HOSTNAME: '0.0.0.0' }, probes: { readiness: { path: '/healthz' } } },
  });
  const objects = await renderObjects({ values: bad });
  const { workloads } = chartWorkloads(objects, 'bad');
  const env = checkEnv(facts, workloads).map((f) => `${f.kind} ${f.component} ${f.subject}`);
  for (const want of ['unread api CONDUIT_MASTER_KEY', 'unknown api CONDUITLLM__RABBITMQ__HOSTNAME', 'unread admin HOSTNAME', 'bad-value api CONDUITLLM__RABBITMQ__VHOST'])
    assert.ok(env.includes(want), `${want} in ${JSON.stringify(env)}`);
  // Take DATABASE_URL away from the API's container: the requirement check notices.
  const api = workloads.find((w) => w.component === 'api')!;
  api.env.delete('DATABASE_URL');
  assert.ok(checkEnv(facts, [api]).some((f) => f.kind === 'missing' && f.subject === 'DATABASE_URL'));
  const probes = checkProbes(facts, chartProbes(objects, 'bad')).map((f) => `${f.kind} ${f.subject}`);
  assert.ok(probes.includes('unsuitable api liveness /health'), JSON.stringify(probes));
  assert.ok(probes.includes('no-endpoint admin readiness /healthz'), JSON.stringify(probes));
  // The ServiceMonitor the chart used to render for Admin: master key as Authorization: Bearer.
  const { scrapes } = chartScrapes(objects, 'bad');
  const bearer = scrapes.filter((s) => s.component === 'admin').map((s) => ({ ...s, headers: ['Authorization'] }));
  assert.equal(
    checkScrapes(facts, bearer)
      .map((f) => f.kind)
      .sort(),
    ['needs-auth', 'rejected-auth'],
  );
});

test('a mutated copy of the facts fails on the real default render: a dropped fact is "set but not read", a bogus requirement is "required but not set"', async () => {
  const objects = await renderObjects({});
  const { workloads } = chartWorkloads(objects, 'chart defaults');
  const mutated: AppFacts = structuredClone(facts);
  mutated.env = mutated.env.filter((f) => f.name !== 'REDIS_URL');
  mutated.env.push({ name: 'CONDUIT_BOGUS_REQUIRED', reader: 'app', readBy: ['admin'], via: 'test', source: ['X.cs:1'], required: [{ components: ['admin'], why: 'test' }] });
  const found = checkEnv(mutated, workloads).map((f) => `${f.kind} ${f.component} ${f.subject}`);
  assert.ok(found.includes('unknown api REDIS_URL') && found.includes('unknown admin REDIS_URL'), JSON.stringify(found));
  assert.ok(found.includes('missing admin CONDUIT_BOGUS_REQUIRED'), JSON.stringify(found));
});

test.run();
