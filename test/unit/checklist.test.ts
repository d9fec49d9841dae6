import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { stringify } from 'yaml';
import { checklistFailed, evaluateChecklist, memoryBytes, type CheckResult } from '../../scripts/lib/domain/checklist.ts';

const container = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  image: `ghcr.io/knnlabs/${name}:1.0.0`,
  resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
  readinessProbe: { httpGet: { path: '/health/ready', port: 8080 } },
  livenessProbe: { httpGet: { path: '/health/live', port: 8080 } },
  ...extra,
});
const deployment = (name: string, containers: unknown[]) => ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name }, spec: { template: { spec: { containers } } } });
const manifest = (...objects: unknown[]) => objects.map((o) => stringify(o)).join('---\n');

const goodValues = () => ({
  database: { maxConnections: 200, reservedConnections: 25, pool: { api: { maxPoolSize: 20 }, admin: { maxPoolSize: 10 } }, auth: { password: '' } },
  redis: { mode: 'standalone', auth: { password: '' }, standalone: { maxmemory: '200mb', resources: { limits: { memory: '320Mi' } } } },
  api: { autoscaling: { enabled: true, minReplicas: 3, maxReplicas: 6 } },
  admin: { replicaCount: 2 },
  monitoring: { serviceMonitor: { enabled: true }, prometheusRule: { enabled: true } },
  backup: { enabled: true, schedule: '17 3 * * *', retention: '30d' },
  networkPolicy: { enabled: true },
});
const goodObjects = () => [
  deployment('conduit-api', [container('conduit-http')]),
  { kind: 'Ingress', metadata: { name: 'conduit-api' }, spec: { rules: [{ host: 'api.example.com' }], tls: [{ hosts: ['api.example.com'], secretName: 'api-tls' }] } },
  { kind: 'NetworkPolicy', metadata: { name: 'conduit-api' }, spec: {} },
  { kind: 'ScheduledBackup', metadata: { name: 'conduit' }, spec: {} },
];
const byId = (checks: CheckResult[]) => Object.fromEntries(checks.map((c) => [c.id, c]));

test('a complete production setup passes every item', () => {
  const checks = evaluateChecklist({ environment: 'production', values: goodValues(), manifest: manifest(...goodObjects()) });
  assert.is(checks.length, 11);
  assert.equal(
    checks.filter((c) => c.status !== 'pass').map((c) => `${c.id}: ${c.detail}`),
    [],
  );
  assert.not.ok(checklistFailed(checks));
  assert.match(byId(checks)['connection-budget'].detail, /api 6x20 \+ admin 2x10 = 140 <= 175/);
});

test('an ingress host without TLS fails in production and warns elsewhere, naming the host and the fix', () => {
  const objects = goodObjects();
  (objects[1] as { spec: { tls: unknown[] } }).spec.tls = [];
  const prod = byId(evaluateChecklist({ environment: 'production', values: goodValues(), manifest: manifest(...objects) })).tls;
  assert.is(prod.status, 'fail');
  assert.match(prod.detail, /api\.example\.com/);
  assert.match(prod.fix!, /ingress\.tls\.enabled/);
  assert.is(byId(evaluateChecklist({ environment: 'staging', values: goodValues(), manifest: manifest(...objects) })).tls.status, 'warn');
});

test('the connection budget fails when max replicas x pool exceed maxConnections - reserved', () => {
  const v = goodValues();
  v.api.autoscaling.maxReplicas = 10;
  const c = byId(evaluateChecklist({ environment: 'staging', values: v, manifest: manifest(...goodObjects()) }))['connection-budget'];
  assert.is(c.status, 'fail');
  assert.match(c.detail, /= 220 > 175/);
});

test('Redis maxmemory must be set and below the memory limit (units of both worlds)', () => {
  assert.is(memoryBytes('200mb'), 200 * 2 ** 20);
  assert.is(memoryBytes('320Mi'), 320 * 2 ** 20);
  assert.is(memoryBytes('1G'), 1e9);
  const v = goodValues();
  v.redis.standalone.maxmemory = '512mb';
  assert.is(byId(evaluateChecklist({ environment: 'local', values: v, manifest: manifest(...goodObjects()) }))['redis-memory'].status, 'fail');
  v.redis.standalone.maxmemory = '';
  assert.match(byId(evaluateChecklist({ environment: 'local', values: v, manifest: manifest(...goodObjects()) }))['redis-memory'].detail, /maxmemory \(unset\)/);
});

test('production needs autoscaling, monitoring and network policies; backups off is a warning there', () => {
  const v = goodValues();
  v.api.autoscaling.enabled = false;
  v.monitoring.prometheusRule.enabled = false;
  v.networkPolicy.enabled = false;
  v.backup.enabled = false;
  const prod = byId(evaluateChecklist({ environment: 'production', values: v, manifest: manifest(...goodObjects().slice(0, 2)) }));
  assert.is(prod.autoscaling.status, 'fail');
  assert.is(prod.monitoring.status, 'fail');
  assert.is(prod['network-policies'].status, 'fail');
  assert.is(prod.backups.status, 'warn');
  const local = byId(evaluateChecklist({ environment: 'local', values: v, manifest: manifest(...goodObjects().slice(0, 2)) }));
  assert.is(local.autoscaling.status, 'pass');
  assert.is(local.monitoring.status, 'warn');
  assert.is(local.backups.status, 'pass');
});

test('probes and resources are checked on every rendered container, init containers and CronJobs included', () => {
  const noProbe = container('conduit-http', { readinessProbe: undefined });
  const sidecar = container('exporter', { livenessProbe: undefined });
  const cron = {
    kind: 'CronJob',
    metadata: { name: 'conduit-backup' },
    spec: { jobTemplate: { spec: { template: { spec: { containers: [container('backup', { resources: { requests: { cpu: '10m' } } })] } } } } },
  };
  const checks = byId(evaluateChecklist({ environment: 'staging', values: goodValues(), manifest: manifest(deployment('conduit-api', [noProbe, sidecar]), cron) }));
  assert.is(checks.probes.status, 'fail');
  assert.match(checks.probes.detail, /Deployment\/conduit-api conduit-http \(readiness\)/);
  assert.is(checks.resources.status, 'fail');
  assert.match(checks.resources.detail, /CronJob\/conduit-backup backup \(memory request, memory limit\)/);
  const sidecarOnly = byId(evaluateChecklist({ environment: 'staging', values: goodValues(), manifest: manifest(deployment('conduit-redis', [container('redis'), sidecar])) }));
  assert.is(sidecarOnly.probes.status, 'warn');
});

test('inline passwords warn outside production and fail in production with the existingSecret fix', () => {
  const v = goodValues();
  v.database.auth.password = 'hunter2hunter2';
  const staging = byId(evaluateChecklist({ environment: 'staging', values: v, manifest: manifest(...goodObjects()) }))['inline-secrets'];
  assert.is(staging.status, 'warn');
  assert.match(staging.detail, /database\.auth\.password/);
  assert.not.match(staging.detail, /hunter2/);
  const prod = byId(evaluateChecklist({ environment: 'production', values: v, manifest: manifest(...goodObjects()) }))['inline-secrets'];
  assert.is(prod.status, 'fail');
  assert.match(prod.fix!, /existingSecret/);
  // Names of keys inside an existing Secret are not secrets.
  const names = goodValues() as Record<string, unknown>;
  names.masterKey = { existingSecret: 'conduit-master', existingSecretKey: 'master-key' };
  (names.database as { auth: Record<string, string> }).auth.existingSecretPasswordKey = 'password';
  assert.is(byId(evaluateChecklist({ environment: 'production', values: names, manifest: manifest(...goodObjects()) }))['inline-secrets'].status, 'pass');
});

test('image tags: latest, master or no tag is unpinned; a digest, master-<sha> or a version tag (also behind a registry port) is pinned', () => {
  const objs = (image: string) => manifest(deployment('conduit-api', [container('conduit-http', { image })]));
  const status = (image: string, env = 'production') => byId(evaluateChecklist({ environment: env, values: goodValues(), manifest: objs(image) }))['image-tags'].status;
  assert.is(status('ghcr.io/knnlabs/conduit-http:latest'), 'fail');
  assert.is(status('ghcr.io/knnlabs/conduit-http'), 'fail');
  assert.is(status('registry.local:5000/conduit-http'), 'fail');
  assert.is(status('ghcr.io/knnlabs/conduit-http:master'), 'fail');
  assert.is(status('ghcr.io/knnlabs/conduit-http:master-7c3fd76'), 'pass');
  assert.is(status('ghcr.io/knnlabs/conduit-http:latest', 'local'), 'warn');
  assert.is(status('registry.local:5000/conduit-http:1.0.1'), 'pass');
  assert.is(status('ghcr.io/knnlabs/conduit-http@sha256:' + 'a'.repeat(64)), 'pass');
});

test.run();
