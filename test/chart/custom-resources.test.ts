// The chart's custom resources (CloudNativePG Cluster with its object store and ScheduledBackup,
// Gateway API HTTPRoute, prometheus-operator PodMonitor / PrometheusRule / ServiceMonitor) against the pinned CRDs' own OpenAPI schemas, with
// unknown fields refused (the API server would prune them silently). The RabbitMQ CRD is not in
// this check: its Go module cannot be fetched through the module proxy here.
import fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ajv } from 'ajv';
import { parseAllDocuments } from 'yaml';
import { CRD_SOURCES, crdFiles } from '../../scripts/lib/adapters/crds.ts';
import { clusterInput, renderObjects } from './helpers.ts';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** A CRD schema as a strict JSON Schema: Kubernetes extensions, regexes in Go syntax and formats dropped; objects with properties closed. */
function strictSchema(s: Json): Json {
  if (Array.isArray(s)) return s.map(strictSchema);
  if (s && typeof s === 'object') {
    const o: { [k: string]: Json } = {};
    for (const [k, v] of Object.entries(s)) if (!k.startsWith('x-kubernetes') && k !== 'pattern' && k !== 'format') o[k] = strictSchema(v);
    if (o.properties && o.additionalProperties === undefined && o.type === 'object') o.additionalProperties = false;
    return o;
  }
  return s;
}

async function crdSchemas(): Promise<Map<string, Json>> {
  const out = new Map<string, Json>();
  for (const src of CRD_SOURCES.filter((s) => s.name !== 'rabbitmq-cluster-operator')) {
    for (const f of await crdFiles(src)) {
      for (const d of parseAllDocuments(fs.readFileSync(f, 'utf8'))) {
        const crd = d.toJS() as { kind?: string; spec: { group: string; names: { kind: string }; versions: { name: string; schema: { openAPIV3Schema: Json } }[] } } | null;
        if (crd?.kind !== 'CustomResourceDefinition') continue;
        for (const v of crd.spec.versions) out.set(`${crd.spec.group}/${v.name}/${crd.spec.names.kind}`, strictSchema(v.schema.openAPIV3Schema));
      }
    }
  }
  return out;
}

test('custom resources validate against the pinned CRDs', async () => {
  const schemas = await crdSchemas();
  const ajv = new Ajv({ strict: false, allErrors: true, logger: false });
  const gateway = { gatewayApi: { enabled: true, parentRefs: [{ name: 'public', namespace: 'gateways', sectionName: 'https' }] } };
  const backup = { backup: { enabled: true, destination: { url: 's3://conduit-backups/prod-eu', endpoint: 'https://s3.eu-central-1.amazonaws.com', existingSecret: 'backup-s3' } } };
  const objects = await renderObjects({ ...clusterInput('prod-eu'), values: { ...gateway, ...backup } });
  const checked: string[] = [];
  for (const o of objects) {
    const schema = schemas.get(`${o.apiVersion}/${o.kind}`);
    if (!schema) continue;
    const validate = ajv.compile(schema as object);
    assert.ok(validate(o), `${o.kind}/${o.metadata.name}: ${ajv.errorsText(validate.errors)}`);
    checked.push(o.kind);
  }
  assert.equal([...new Set(checked)].sort(), ['Cluster', 'HTTPRoute', 'PodMonitor', 'PrometheusRule', 'ScheduledBackup', 'ServiceMonitor']);
});

test.run();
