// PrometheusRule, dashboards, ServiceMonitors, and the `helm test` pods.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse as parseYaml } from 'yaml';
import { CRD_SOURCES, crdFiles } from '../../scripts/lib/adapters/crds.ts';
import { CHART_DIR } from '../../scripts/lib/core/paths.ts';
import { checkConfig } from '../../scripts/lib/adapters/promtool.ts';
import { find, ofKind, renderChart, renderObjects, WEBUI_ON } from './helpers.ts';

interface Rule {
  alert?: string;
  record?: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
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
    values: {
      monitoring: { prometheusRule: { enabled: true, disabled: [b.alert], overrides: { [a.alert!]: { severity: 'info', for: '42m' } }, runbookBaseUrl: 'https://runbooks.example.com/conduit/' } },
    },
  });
  const rules: Rule[] = find(objects, 'PrometheusRule', 'conduit-rules').spec.groups.flatMap((g: { rules: Rule[] }) => g.rules);
  assert.not.ok(
    rules.some((r) => r.alert === b.alert),
    'disabled alert is gone',
  );
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

test('ServiceMonitors: the API (anonymous) and the data services; never the Admin API', async () => {
  const objects = await renderObjects({ values: { monitoring: { serviceMonitor: { enabled: true } } } });
  assert.equal(
    ofKind(objects, 'ServiceMonitor')
      .map((s) => s.metadata.name)
      .sort(),
    ['conduit-api', 'conduit-rabbitmq', 'conduit-redis'],
  );
  const ep = find(objects, 'ServiceMonitor', 'conduit-api').spec.endpoints[0];
  assert.equal([ep.port, ep.path, ep.authorization], ['http', '/metrics', undefined]);
  assert.is(find(objects, 'NetworkPolicy', 'conduit-admin').spec.ingress.length, 1, 'monitoring may not reach Admin');
  assert.not.ok(ofKind(objects, 'Secret').some((s) => s.metadata.name.endsWith('admin-scrape-config')));
});

test('the removed Admin ServiceMonitor (Bearer, which Admin bans) is refused with the replacement named', async () => {
  const r = await renderChart({ values: { monitoring: { serviceMonitor: { enabled: true, admin: { enabled: true } } } } });
  assert.not.ok(r.ok);
  assert.match(r.error, /monitoring\.serviceMonitor\.admin\.enabled/);
  assert.match(r.error, /monitoring\.adminScrapeConfig\.enabled=true/);
});

test('prometheus-operator v0.89.0 monitors and ScrapeConfig offer no custom scrape header (why Admin gets a plain scrape config)', async () => {
  const src = CRD_SOURCES.find((s) => s.name === 'prometheus-operator')!;
  const files = await crdFiles(src);
  for (const kind of ['servicemonitors', 'podmonitors', 'scrapeconfigs']) {
    const text = fs.readFileSync(
      files.find((f) => f.endsWith(`${kind}.yaml`))!,
      'utf8',
    );
    assert.ok(/authorization:/.test(text), `${kind}: authorization exists`);
    assert.not.ok(/^\s+(httpHeaders|headers):/m.test(text), `${kind}: a header field appeared: consider a monitor with X-API-Key from the Secret`);
  }
});

test('adminScrapeConfig: X-API-Key read from the mounted master key, no key in the Secret, accepted by promtool check config', async () => {
  const objects = await renderObjects({ values: { monitoring: { adminScrapeConfig: { enabled: true, namespace: 'monitoring' } } } });
  const secret = find(objects, 'Secret', 'conduit-admin-scrape-config');
  assert.is(secret.metadata.namespace, 'monitoring');
  const text: string = secret.stringData['scrape-configs.yaml'];
  const [job] = parseYaml(text) as Array<Record<string, any>>;
  assert.equal(job.http_headers, { 'X-API-Key': { files: ['/etc/prometheus/secrets/conduit-master-key/master-key'] } });
  assert.not.ok('authorization' in job || 'bearer_token' in job || 'bearer_token_file' in job, 'no Authorization header: Admin bans it');
  assert.equal(job.kubernetes_sd_configs, [{ role: 'endpointslice', namespaces: { names: ['conduit'] } }]);
  assert.ok(
    job.relabel_configs.some((r: Record<string, unknown>) => r.target_label === 'job' && r.replacement === 'conduit-admin'),
    'job="conduit-admin" like the other targets',
  );
  assert.ok(job.relabel_configs.some((r: Record<string, unknown>) => r.action === 'keep' && r.regex === 'conduit-admin'));
  assert.is(find(objects, 'NetworkPolicy', 'conduit-admin').spec.ingress.length, 2, 'monitoring may reach Admin');

  // The real Prometheus configuration checker, with the key file where the scrape config expects it.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-admin-scrape-'));
  try {
    const keyFile = path.join(dir, 'master-key');
    fs.writeFileSync(keyFile, 'not-the-real-key');
    const own = await renderObjects({ values: { monitoring: { adminScrapeConfig: { enabled: true, keyFile } } } });
    const scrape = find(own, 'Secret', 'conduit-admin-scrape-config').stringData['scrape-configs.yaml'];
    const config = path.join(dir, 'prometheus.yml');
    fs.writeFileSync(config, `global: {scrape_interval: 30s}\nscrape_configs:\n${scrape.replace(/^/gm, '  ')}`);
    const ok = await checkConfig(config);
    assert.ok(ok.ok, ok.output);
    // The checker is not a rubber stamp: Prometheus refuses Authorization in http_headers.
    fs.writeFileSync(config, `scrape_configs:\n${scrape.replace('X-API-Key', 'Authorization').replace(/^/gm, '  ')}`);
    const refused = await checkConfig(config);
    assert.not.ok(refused.ok, 'promtool refuses a reserved header');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('helm test pods check each Service under a restricted security context', async () => {
  const objects = await renderObjects({ values: WEBUI_ON });
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
