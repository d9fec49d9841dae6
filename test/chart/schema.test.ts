// The values schema against values.yaml, the cluster registry and its layers, helm 3 vs helm 4,
// and the generated README.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { chartReadme, valuesSchema } from '../../scripts/lib/domain/docs.ts';
import { generateValuesSchema } from '../../scripts/lib/domain/values-schema.ts';
import { UserError } from '../../scripts/lib/core/errors.ts';
import { CHART_DIR, SCHEMAS_DIR, VALUES_DIR } from '../../scripts/lib/core/paths.ts';
import { loadRegistry } from '../../scripts/lib/domain/clusters.ts';
import { clusterInput, renderChart, renderObjects, type K8sObject } from './helpers.ts';

interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  $ref?: string;
  items?: Schema;
  oneOf?: Schema[];
}
const schemaText = fs.readFileSync(path.join(SCHEMAS_DIR, 'values.schema.json'), 'utf8');
const schema = JSON.parse(schemaText) as Schema & { definitions: Record<string, Schema> };
const values = parseYaml(fs.readFileSync(path.join(CHART_DIR, 'values.yaml'), 'utf8')) as Record<string, unknown>;

const resolve = (s: Schema): Schema => (s.$ref ? schema.definitions[s.$ref.replace('#/definitions/', '')] : s);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

test('schemas/values.schema.json and chart/values.schema.json are identical', () => {
  assert.is(fs.readFileSync(path.join(CHART_DIR, 'values.schema.json'), 'utf8'), schemaText);
});

test('the values schema is current (generated from values.yaml by scripts/docs.ts)', async () => {
  const results = await valuesSchema({ check: true });
  assert.equal(
    results.map((r) => [r.file, r.stale]),
    [
      ['schemas/values.schema.json', false],
      ['chart/values.schema.json', false],
    ],
  );
});

test('the schema generator refuses a key without a description, naming it and its line', () => {
  try {
    generateValuesSchema('api:\n  # -- Documented.\n  enabled: true\n  replicaCount: 1\n', 'values.yaml');
    assert.unreachable('accepted an undocumented key');
  } catch (e) {
    assert.instance(e, UserError);
    assert.match((e as Error).message, /api\.replicaCount \(line 4\)/);
  }
});

test('every key of values.yaml is in the schema with a description, and every schema property is in values.yaml', () => {
  const problems: string[] = [];
  const walk = (v: unknown, s: Schema, at: string, shared = false) => {
    const r = resolve(s);
    const inShared = shared || Boolean(s.$ref);
    if (!r.properties) return; // free-form map or pass-through Kubernetes object
    if (r.additionalProperties !== false) problems.push(`${at || '(root)'}: structured object without additionalProperties: false`);
    const keys = isObj(v) ? Object.keys(v) : [];
    for (const k of keys) {
      const p = at ? `${at}.${k}` : k;
      const child = r.properties[k];
      if (!child) problems.push(`${p}: in values.yaml, not in the schema`);
      else {
        if (!child.description) problems.push(`${p}: no description`);
        walk((v as Record<string, unknown>)[k], child, p, inShared);
      }
    }
    // Resource definitions list optional quantities (cpu, ephemeral-storage) beyond the defaults.
    if (!inShared) for (const k of Object.keys(r.properties)) if (!keys.includes(k)) problems.push(`${at ? `${at}.${k}` : k}: in the schema, not in values.yaml`);
  };
  walk(values, schema, '');
  assert.equal(problems, []);
});

test('every property of the schema has a description', () => {
  const missing: string[] = [];
  const walk = (s: Schema, at: string) => {
    for (const [k, c] of Object.entries(s.properties ?? {})) {
      if (!c.description) missing.push(`${at}${k}`);
      walk(c, `${at}${k}.`);
    }
    if (isObj(s.additionalProperties)) walk(s.additionalProperties as Schema, `${at}*.`);
  };
  walk(schema, '');
  for (const [n, d] of Object.entries(schema.definitions)) walk(d, `#${n}.`);
  assert.equal(missing, []);
});

test('the cluster registry is valid, names existing layers, and every cluster renders', async () => {
  const ajv = new Ajv({ allErrors: true, strict: true });
  const validate = ajv.compile(JSON.parse(fs.readFileSync(path.join(SCHEMAS_DIR, 'clusters.schema.json'), 'utf8')));
  const doc = parseYaml(fs.readFileSync(path.join(VALUES_DIR, 'clusters.yaml'), 'utf8'));
  assert.ok(validate(doc), JSON.stringify(validate.errors));
  const clusters = Object.fromEntries(loadRegistry().clusters.map((c) => [c.name, c]));
  assert.equal(Object.keys(clusters), ['local', 'staging', 'prod-eu', 'prod-us']);
  for (const [name, c] of Object.entries(clusters)) {
    assert.ok(c.layers.includes(path.join(VALUES_DIR, 'environments', `${c.environment}.yaml`)), `${name} applies its environment layer`);
    for (const l of c.layers) assert.ok(fs.existsSync(l), `${name}: ${l} exists`);
    const r = await renderChart(clusterInput(name));
    assert.ok(r.ok, `${name}: ${r.error}`);
  }
  assert.is(clusters.local.protected, false);
  assert.ok(clusters['prod-eu'].protected && clusters['prod-us'].protected, 'production clusters are protected');
  assert.not.ok(validate({ clusters: { Bad_Name: {} } }), 'bad names are refused');
});

test('clusters differ where they should', async () => {
  const get = async (n: string) => (await renderChart(clusterInput(n))).objects;
  const by = (objs: K8sObject[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name);
  const [local, staging, eu, us] = await Promise.all(['local', 'staging', 'prod-eu', 'prod-us'].map(get));
  assert.is(by(local, 'Cluster', 'conduit-pg')!.spec.instances, 1);
  assert.is(by(local, 'StatefulSet', 'conduit-redis')!.spec.volumeClaimTemplates, undefined, 'local: no PVC (kwok has no provisioner)');
  assert.is(by(local, 'HorizontalPodAutoscaler', 'conduit-api'), undefined);
  assert.is(by(staging, 'HorizontalPodAutoscaler', 'conduit-api')!.spec.maxReplicas, 4);
  assert.is(by(eu, 'HorizontalPodAutoscaler', 'conduit-api')!.spec.maxReplicas, 12);
  assert.is(by(eu, 'Cluster', 'conduit-pg')!.spec.postgresql.parameters.max_connections, '400');
  assert.is(by(us, 'Cluster', 'conduit-pg'), undefined, 'prod-us uses an external database');
  assert.is(by(us, 'HorizontalPodAutoscaler', 'conduit-api')!.spec.maxReplicas, 16);
  assert.is(by(eu, 'Ingress', 'conduit-api')!.spec.rules[0].host, 'api.eu.conduit.example.com');
  assert.is.not(
    by(eu, 'Deployment', 'conduit-api')!.spec.template.spec.containers[0].resources.requests.cpu,
    by(local, 'Deployment', 'conduit-api')!.spec.template.spec.containers[0].resources.requests.cpu,
  );
});

/** Objects without what is random per render (generated Secret data). */
function stable(objects: K8sObject[]): K8sObject[] {
  return objects.map((o) => (o.kind === 'Secret' ? { ...o, data: Object.fromEntries(Object.keys(o.data ?? {}).map((k) => [k, '<generated>'])) } : o));
}

test('helm 3 and helm 4 render the same objects (defaults and a production cluster)', async () => {
  for (const input of [{}, clusterInput('prod-eu')]) {
    const [h4, h3] = await Promise.all([renderObjects({ ...input, major: 4 }), renderObjects({ ...input, major: 3 })]);
    assert.equal(stable(h3), stable(h4));
  }
  const fail3 = await renderChart({ values: { api: { replicaCount: 2 } }, major: 3 });
  const fail4 = await renderChart({ values: { api: { replicaCount: 2 } }, major: 4 });
  assert.is(fail3.error, fail4.error, 'same guard message');
});

test('the chart refuses Kubernetes older than 1.30', async () => {
  const r = await renderChart({ kubeVersion: '1.29' });
  assert.not.ok(r.ok);
  assert.match(r.stderr, /kubeVersion|incompatible/i);
});

test('chart/README.md is current (npx zx scripts/docs.ts regenerates it)', async () => {
  const r = await chartReadme({ check: true });
  assert.is(r.stale, false, 'chart/README.md is stale: run npx zx scripts/docs.ts');
  assert.is(r.written, false);
});

test.run();
