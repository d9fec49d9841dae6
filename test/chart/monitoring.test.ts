// PrometheusRule, dashboards, ServiceMonitors, and the `helm test` pods.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse as parseYaml } from 'yaml';
import { CRD_SOURCES, crdFiles } from '../../scripts/lib/crds.ts';
import { CHART_DIR } from '../../scripts/lib/paths.ts';
import { find, ofKind, renderObjects } from './helpers.ts';

interface Rule { alert?: string; record?: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
const alertFiles = fs.readdirSync(path.join(CHART_DIR, 'files/alerts')).filter((f) => f.endsWith('.rules.yaml'));
const sourceRules: Rule[] = alertFiles.flatMap((f) => (parseYaml(fs.readFileSync(path.join(CHART_DIR, 'files/alerts', f), 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules));
const alerts = sourceRules.filter((r) => r.alert);

test('the PrometheusRule carries every rule of files/alerts, with Prometheus templates left literal', async () => {
  const objects = await renderObjects({ values: { monitoring: { prometheusRule: { enabled: true, additionalLabels: { release: 'kps' } } } } });
  const pr = find(objects, 'PrometheusRule', 'conduit-rules');
  assert.is(pr.metadata.labels!.release, 'kps');
  const rendered: Rule[] = pr.spec.groups.flatMap((g: { rules: Rule[] }) => g.rules);
  assert.equal(rendered, sourceRules);
  assert.ok(JSON.stringify(rendered).includes('{{ $labels.'), 'a {{ $labels }} template survives');
});

test('alerts can be disabled, re-rated and pointed at a runbook site', async () => {
  assert.ok(alerts.length >= 2, 'needs two alerts in files/alerts');
  const [a, b] = alerts;
  const objects = await renderObjects({
    values: { monitoring: { prometheusRule: { enabled: true, disabled: [b.alert], overrides: { [a.alert!]: { severity: 'info', for: '42m' } }, runbookBaseUrl: 'https://runbooks.example.com/conduit/' } } },
  });
  const rules: Rule[] = find(objects, 'PrometheusRule', 'conduit-rules').spec.groups.flatMap((g: { rules: Rule[] }) => g.rules);
  assert.not.ok(rules.some((r) => r.alert === b.alert), 'disabled alert is gone');
  const ra = rules.find((r) => r.alert === a.alert)!;
  assert.is(ra.labels!.severity, 'info');
  assert.is(ra.for, '42m');
  assert.is(ra.annotations!.runbook_url, 'https://runbooks.example.com/conduit/' + a.annotations!.runbook_url!.replace(/^docs\/runbooks\//, ''));
  assert.is(rules.filter((r) => r.record).length, sourceRules.filter((r) => r.record).length, 'recording rules untouched');
});

test('one dashboard ConfigMap per file, byte for byte, with the sidecar label and folder annotation', async () => {
  const files = fs.readdirSync(path.join(CHART_DIR, 'files/dashboards')).filter((f) => f.endsWith('.json'));
  const objects = await renderObjects({ values: { monitoring: { dashboards: { enabled: true, folder: 'LLM', namespace: 'grafana' } } } });
  const cms = ofKind(objects, 'ConfigMap').filter((c) => c.metadata.labels?.grafana_dashboard === '1');
  assert.is(cms.length, files.length);
  for (const f of files) {
    const cm = cms.find((c) => c.data?.[f] !== undefined)!;
    assert.ok(cm, f);
    assert.is(cm.data![f], fs.readFileSync(path.join(CHART_DIR, 'files/dashboards', f), 'utf8'));
    assert.is(cm.metadata.annotations!.grafana_folder, 'LLM');
    assert.is(cm.metadata.namespace, 'grafana');
  }
});

test('ServiceMonitors: API anonymous; Admin only on request, with the master key from its Secret', async () => {
  const apiOnly = await renderObjects({ values: { monitoring: { serviceMonitor: { enabled: true } } } });
  // API plus the data services' exporters (Redis sidecar, RabbitMQ plugin): never Admin unless asked.
  assert.equal(ofKind(apiOnly, 'ServiceMonitor').map((s) => s.metadata.name).sort(), ['conduit-api', 'conduit-rabbitmq', 'conduit-redis']);
  const ep = find(apiOnly, 'ServiceMonitor', 'conduit-api').spec.endpoints[0];
  assert.equal([ep.port, ep.path, ep.authorization], ['http', '/metrics', undefined]);
  const both = await renderObjects({ values: { monitoring: { serviceMonitor: { enabled: true, admin: { enabled: true } } } } });
  const admin = find(both, 'ServiceMonitor', 'conduit-admin').spec.endpoints[0];
  assert.equal(admin.authorization, { type: 'Bearer', credentials: { name: 'conduit-master-key', key: 'master-key' } });
  assert.ok(find(both, 'NetworkPolicy', 'conduit-admin').spec.ingress.length === 2, 'monitoring may now reach Admin');
});

test('prometheus-operator v0.89.0 ServiceMonitor endpoints: no header-from-Secret field, authorization exists (why Admin uses Bearer)', async () => {
  const src = CRD_SOURCES.find((s) => s.name === 'prometheus-operator')!;
  const file = (await crdFiles(src)).find((f) => f.endsWith('servicemonitors.yaml'))!;
  const crd = parseYaml(fs.readFileSync(file, 'utf8'));
  const ep = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.endpoints.items.properties;
  assert.ok(ep.authorization.properties.credentials, 'authorization.credentials (a Secret key) exists');
  assert.not.ok('httpHeaders' in ep || 'headers' in ep, 'a header field appeared: consider X-API-Key from the Secret');
});

test('helm test pods check each Service under a restricted security context', async () => {
  const objects = await renderObjects();
  const pods = ofKind(objects, 'Pod');
  assert.equal(pods.map((p) => p.metadata.name).sort(), ['conduit-test-admin', 'conduit-test-api', 'conduit-test-webui']);
  for (const p of pods) {
    assert.is(p.metadata.annotations!['helm.sh/hook'], 'test');
    assert.is(p.metadata.labels!['app.kubernetes.io/component'], 'test', 'matches the NetworkPolicy peer');
    const c = p.spec.containers[0];
    assert.ok(p.spec.securityContext.runAsNonRoot && c.securityContext.readOnlyRootFilesystem && c.securityContext.allowPrivilegeEscalation === false);
    assert.equal(c.securityContext.capabilities.drop, ['ALL']);
    assert.is(p.spec.automountServiceAccountToken, false);
  }
  assert.ok(find(objects, 'Pod', 'conduit-test-api').spec.containers[0].command.includes('http://conduit-api:8080/health/ready'));
  assert.ok(find(objects, 'Pod', 'conduit-test-webui').spec.containers[0].command.includes('http://conduit-webui:3000/api/health'));
});

test.run();
