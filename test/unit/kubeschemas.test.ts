import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Ajv } from 'ajv';
import { stringify } from 'yaml';
import { run } from '../../scripts/lib/core/exec.ts';
import { convertSchema, ensureSchemas, KUBE_VERSIONS, resolveKubeVersion, schemaFileName, schemaLocationTemplate, schemasRoot } from '../../scripts/lib/adapters/kubeschemas.ts';
import { tool } from '../../scripts/lib/adapters/tools.ts';

const test = suite('kubeschemas');
const VERSION = KUBE_VERSIONS['1.36'];

test('file names follow kubeconform: first label of the group, none for the core group', () => {
  assert.is(schemaFileName('Deployment', 'apps/v1'), 'deployment-apps-v1.json');
  assert.is(schemaFileName('Service', 'v1'), 'service-v1.json');
  assert.is(schemaFileName('ServiceMonitor', 'monitoring.coreos.com/v1'), 'servicemonitor-monitoring-v1.json');
  assert.is(schemaFileName('HTTPRoute', 'gateway.networking.k8s.io/v1'), 'httproute-gateway-v1.json');
  assert.is(resolveKubeVersion('1.36'), '1.36.3');
  assert.is(resolveKubeVersion('v1.35.1'), '1.35.1');
  assert.throws(() => resolveKubeVersion('1.20'), /not one of the versions/);
  assert.throws(() => resolveKubeVersion('latest'), /invalid Kubernetes version/);
});

test('conversion: strict objects, kept unknown fields where Kubernetes keeps them, int-or-string', () => {
  const ctx = { defs: {}, used: new Set<string>() };
  const s = convertSchema(
    {
      type: 'object',
      required: ['a'],
      properties: {
        a: { type: 'string', description: 'dropped' },
        b: { 'x-kubernetes-int-or-string': true },
        c: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true, properties: { d: { type: 'string' } } },
      },
    },
    ctx,
  );
  assert.equal(s, {
    type: 'object',
    required: ['a'],
    additionalProperties: false,
    properties: {
      a: { type: 'string' },
      b: { anyOf: [{ type: 'string' }, { type: 'integer' }, { type: 'null' }] },
      c: { type: ['object', 'null'], properties: { d: { type: ['string', 'null'] } } },
    },
  });
});

const goodDeployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'api', labels: { app: 'api' } },
  spec: {
    replicas: 2,
    selector: { matchLabels: { app: 'api' } },
    template: {
      metadata: { labels: { app: 'api' } },
      spec: {
        containers: [
          { name: 'api', image: 'x:1', ports: [{ containerPort: 8080, name: 'http' }], resources: { requests: { cpu: 0.5, memory: '1Gi' } }, readinessProbe: { httpGet: { path: '/', port: 'http' } } },
        ],
      },
    },
  },
};

test(`generated Kubernetes ${VERSION} schemas: a good Deployment passes, an unknown field is rejected (ajv)`, async () => {
  const g = await ensureSchemas(VERSION);
  assert.ok(g.kinds.length > 150, `only ${g.kinds.length} kinds`);
  for (const f of [
    'deployment-apps-v1.json',
    'service-v1.json',
    'servicemonitor-monitoring-v1.json',
    'cluster-postgresql-v1.json',
    'rabbitmqcluster-rabbitmq-v1beta1.json',
    'httproute-gateway-v1.json',
  ]) {
    assert.ok(fs.existsSync(path.join(g.dir, f)), f);
  }
  const ajv = new Ajv({ strict: false, allErrors: true });
  const validate = ajv.compile(JSON.parse(fs.readFileSync(path.join(g.dir, 'deployment-apps-v1.json'), 'utf8')));
  assert.ok(validate(goodDeployment), JSON.stringify(validate.errors));
  const bad = structuredClone(goodDeployment) as typeof goodDeployment & { spec: { template: { spec: { containers: Record<string, unknown>[] } } } };
  bad.spec.template.spec.containers[0].imagePullPolicyy = 'Always';
  assert.not.ok(validate(bad));
  assert.ok(validate.errors!.some((e) => e.keyword === 'additionalProperties' && e.instancePath === '/spec/template/spec/containers/0'));
});

test('kubeconform with the generated schemas: strict on core kinds and on CRDs, missing schemas are errors', async () => {
  await ensureSchemas(VERSION);
  const kubeconform = await tool('kubeconform');
  const badMonitor = { apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: { name: 'm', labelz: { a: 'b' } }, spec: { selector: {}, endpoints: [{ port: 'http' }] } };
  const goodMonitor = { ...badMonitor, metadata: { name: 'm2' } };
  const unknownKind = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } };
  const badService = { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ port: 80, bogus: 1 }] } };
  const input = [goodDeployment, badMonitor, goodMonitor, unknownKind, badService].map((d) => stringify(d)).join('---\n');
  const r = await run(kubeconform, ['-strict', '-kubernetes-version', VERSION, '-schema-location', schemaLocationTemplate(schemasRoot()), '-output', 'json', '-verbose'], { input });
  const res = JSON.parse(r.stdout).resources as { name: string; status: string; msg: string }[];
  const by = Object.fromEntries(res.map((x) => [x.name, x]));
  assert.is(by.api.status, 'statusValid');
  assert.is(by.m2.status, 'statusValid');
  assert.is(by.m.status, 'statusInvalid');
  assert.match(by.m.msg, /labelz/);
  assert.is(by.s.status, 'statusInvalid');
  assert.match(by.s.msg, /bogus/);
  assert.is(by.w.status, 'statusError');
  assert.is(r.exitCode, 1);
});

test('every minor gets the schemas of its own release: pod-level resources (new in 1.32) are refused for 1.30 and 1.31 only', async () => {
  const kubeconform = await tool('kubeconform');
  const withPodResources = structuredClone(goodDeployment) as typeof goodDeployment & { spec: { template: { spec: Record<string, unknown> } } };
  withPodResources.spec.template.spec.resources = { limits: { cpu: '1' } };
  const verdicts: Record<string, string> = {};
  for (const [minor, version] of Object.entries(KUBE_VERSIONS)) {
    await ensureSchemas(version);
    const r = await run(kubeconform, ['-strict', '-kubernetes-version', version, '-schema-location', schemaLocationTemplate(schemasRoot()), '-output', 'json'], {
      input: stringify(withPodResources),
    });
    const [res] = (JSON.parse(r.stdout).resources ?? []) as { status: string; msg: string }[];
    verdicts[minor] = res ? (/resources/.test(res.msg) ? 'refused' : res.status) : 'valid';
  }
  assert.equal(verdicts, { '1.30': 'refused', '1.31': 'refused', '1.32': 'valid', '1.33': 'valid', '1.34': 'valid', '1.35': 'valid', '1.36': 'valid', '1.37': 'valid' });
});

test('the cache is reused: a second call generates nothing', async () => {
  const again = await ensureSchemas(VERSION);
  assert.is(again.generated, false);
});

test.run();
