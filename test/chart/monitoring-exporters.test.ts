// The exporters and monitors that feed the data-service alerts and dashboard rows: the
// redis_exporter sidecar, the RabbitMQ and CloudNativePG monitors, the NetworkPolicy flows from the
// monitoring namespace, and the metric catalog checked against what the chart really renders
// (its PrometheusRule and its autoscalers' metrics).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { stringify } from 'yaml';
import { checkAllQueries, checkAutoscalingMetrics, hpaMetricNames, loadCatalog, ruleQueries } from '../../scripts/lib/domain/catalog.ts';
import { moduleDir } from '../../scripts/lib/adapters/crds.ts';
import { parsePromQL } from '../../scripts/lib/domain/promql.ts';
import { alertRules, loadRules } from '../../scripts/lib/domain/rules.ts';
import { find, merge, ofKind, renderError, renderObjects, S3, WEBUI_ON } from './helpers.ts';

const MONITORING = { monitoring: { serviceMonitor: { enabled: true, additionalLabels: { release: 'kube-prometheus-stack' } } } };
const catalog = loadCatalog();

const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) => Object.entries(selector).every(([k, v]) => labels[k] === v);
const RESTRICTED = {
  runAsNonRoot: true,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  privileged: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

test('redis_exporter: a restricted sidecar on port metrics, the password from the Redis Secret through env only', async () => {
  const objs = await renderObjects({ values: MONITORING });
  const sts = find(objs, 'StatefulSet', 'conduit-redis');
  const pod = sts.spec.template.spec;
  const [redis, exporter] = pod.containers;
  assert.is(exporter.name, 'redis-exporter');
  // Pinned public image, never a moving tag.
  assert.match(exporter.image, /^docker\.io\/oliver006\/redis_exporter:v\d+\.\d+\.\d+$/);
  const [major, minor] = exporter.image.split(':v')[1].split('.').map(Number);
  // The catalog names the exporter versions its redis_* metrics hold for (">= 1.50").
  assert.match(String(catalog.sources.redis_exporter.version), /^>= 1\.50$/);
  assert.ok(major > 1 || (major === 1 && minor >= 50), `exporter ${exporter.image} satisfies the catalog's >= 1.50`);
  assert.equal(exporter.ports, [{ name: 'metrics', containerPort: 9121 }]);
  assert.equal(exporter.securityContext, RESTRICTED);
  assert.is(pod.securityContext.runAsNonRoot, true);
  assert.is(pod.automountServiceAccountToken, false);
  assert.ok(exporter.resources.limits.memory, 'memory limit');
  // A pod is Ready only when all its containers are: the exporter must not gate Redis' endpoints.
  assert.is(exporter.readinessProbe, undefined);
  assert.equal(exporter.livenessProbe.httpGet, { path: '/health', port: 'metrics' });
  // Same Secret and key as the server; nothing secret in argv.
  const env = new Map<string, { value?: string; valueFrom?: unknown }>(exporter.env.map((e: { name: string }) => [e.name, e]));
  assert.equal(env.get('REDIS_PASSWORD')!.valueFrom, redis.env.find((e: { name: string }) => e.name === 'REDIS_PASSWORD').valueFrom);
  assert.is(env.get('REDIS_ADDR')!.value, 'redis://127.0.0.1:6379');
  assert.is(exporter.args, undefined);
  assert.is(exporter.command, undefined);
  const secret = find(objs, 'Secret', 'conduit-redis');
  const password = Buffer.from(secret.data['redis-password'], 'base64').toString();
  assert.ok(password.length >= 16);
  for (const o of objs.filter((x) => x.kind !== 'Secret')) assert.not.ok(JSON.stringify(o).includes(password), `${o.kind}/${o.metadata.name} must not contain the Redis password`);
  // The server's own argv only refers to the variable.
  assert.ok(redis.args.every((a: string) => !a.includes(password)) && redis.args.join(' ').includes('"$REDIS_PASSWORD"'));
});

test('redis_exporter: the Service exposes metrics and the ServiceMonitor scrapes exactly it, with job conduit-redis', async () => {
  const objs = await renderObjects({ values: MONITORING });
  const sts = find(objs, 'StatefulSet', 'conduit-redis');
  const svc = find(objs, 'Service', 'conduit-redis');
  const sm = find(objs, 'ServiceMonitor', 'conduit-redis');
  assert.ok(matches(svc.spec.selector, sts.spec.template.metadata.labels), 'Service selects the Redis pods');
  assert.equal(
    svc.spec.ports.find((p: { name: string }) => p.name === 'metrics'),
    { name: 'metrics', port: 9121, targetPort: 'metrics' },
  );
  assert.equal(sm.metadata.labels!.release, 'kube-prometheus-stack');
  const selected = ofKind(objs, 'Service').filter((s) => matches(sm.spec.selector.matchLabels, s.metadata.labels));
  assert.equal(
    selected.map((s) => s.metadata.name),
    ['conduit-redis'],
  );
  assert.equal(sm.spec.namespaceSelector, { matchNames: ['conduit'] });
  assert.is(sm.spec.endpoints.length, 1);
  const [ep] = sm.spec.endpoints;
  assert.is(ep.port, 'metrics');
  assert.is(ep.path, '/metrics');
  assert.equal(ep.relabelings, [{ action: 'replace', targetLabel: 'job', replacement: 'conduit-redis' }]);
});

test('redis_exporter: left out without ServiceMonitors, when switched off, and outside standalone mode', async () => {
  for (const values of [{}, merge(MONITORING, { redis: { standalone: { metrics: { enabled: false } } } })]) {
    const objs = await renderObjects({ values });
    assert.equal(
      find(objs, 'StatefulSet', 'conduit-redis').spec.template.spec.containers.map((c: { name: string }) => c.name),
      ['redis'],
    );
    assert.not.ok(find(objs, 'Service', 'conduit-redis').spec.ports.some((p: { name: string }) => p.name === 'metrics'));
    assert.not.ok(ofKind(objs, 'ServiceMonitor').some((m) => m.metadata.name === 'conduit-redis'));
    const np = find(objs, 'NetworkPolicy', 'conduit-redis');
    assert.not.ok(JSON.stringify(np.spec.ingress).includes('9121'), 'no metrics port opened without the exporter');
  }
  const external = await renderObjects({
    values: merge(MONITORING, { redis: { mode: 'external', external: { host: 'redis.example.org' }, auth: { existingSecret: 'r' } }, networkPolicy: { enabled: false } }),
  });
  assert.not.ok(ofKind(external, 'ServiceMonitor').some((m) => m.metadata.labels!['app.kubernetes.io/component'] === 'redis'));
  // A moving exporter tag is refused in production like every other image.
  const err = await renderError({ values: merge(MONITORING, { global: { environment: 'production' }, redis: { standalone: { metrics: { image: { tag: 'latest' } } } } }) });
  assert.match(err, /redis\.standalone\.metrics\.image\.tag is latest/);
});

test('RabbitMQ: rabbitmq_prometheus listed, a ServiceMonitor on the operator-made Service (port prometheus, 15692, aggregated /metrics)', async () => {
  const objs = await renderObjects({ values: MONITORING });
  const cluster = find(objs, 'RabbitmqCluster', 'conduit-rabbitmq');
  const plugins: string[] = cluster.spec.rabbitmq.additionalPlugins;
  assert.ok(plugins.includes('rabbitmq_prometheus') && plugins.includes('rabbitmq_delayed_message_exchange'), plugins.join());
  const listedTwice = await renderObjects({ values: { rabbitmq: { operator: { additionalPlugins: ['rabbitmq_prometheus', 'rabbitmq_delayed_message_exchange'] } } } });
  assert.equal(find(listedTwice, 'RabbitmqCluster', 'conduit-rabbitmq').spec.rabbitmq.additionalPlugins, ['rabbitmq_prometheus', 'rabbitmq_delayed_message_exchange']);

  const sm = find(objs, 'ServiceMonitor', 'conduit-rabbitmq');
  assert.equal(sm.metadata.labels!.release, 'kube-prometheus-stack');
  assert.equal(sm.spec.namespaceSelector, { matchNames: ['conduit'] });
  assert.equal(sm.spec.endpoints, [{ port: 'prometheus', path: '/metrics', interval: '30s', relabelings: [{ action: 'replace', targetLabel: 'job', replacement: 'conduit-rabbitmq' }] }]);

  // What the pinned cluster operator (v2.19.0) creates: internal/metadata/label.go labels every
  // child object with these (app.kubernetes.io/* of the RabbitmqCluster are NOT copied), and
  // internal/resource/service.go gives the client Service "<cluster>" the port "prometheus" 15692.
  // (Its Go module fails checksum verification through the proxy, so the source is not read here.)
  const operatorLabels = { 'app.kubernetes.io/name': cluster.metadata.name, 'app.kubernetes.io/component': 'rabbitmq', 'app.kubernetes.io/part-of': 'rabbitmq' };
  assert.ok(matches(sm.spec.selector.matchLabels, operatorLabels), `selector ${JSON.stringify(sm.spec.selector.matchLabels)} vs operator labels`);
  assert.not.ok(matches(sm.spec.selector.matchLabels, cluster.metadata.labels), 'the selector needs the operator labels, not the chart labels of the RabbitmqCluster');

  for (const values of [{}, merge(MONITORING, { rabbitmq: { operator: { metrics: { enabled: false } } } })]) {
    assert.not.ok(ofKind(await renderObjects({ values }), 'ServiceMonitor').some((m) => m.metadata.name === 'conduit-rabbitmq'));
  }
});

test('RabbitMQ alerts read only what the aggregated endpoint serves', () => {
  // Per-object metrics repeat these names with vhost/queue labels and would double the sums: the alerts must not need them.
  for (const a of alertRules(loadRules()).filter((r) => /RabbitMQ/.test(r.name))) {
    for (const s of parsePromQL(a.expr).selectors)
      if (s.metric && s.metric !== 'up') assert.is(catalog.metrics.find((m) => m.name === s.metric)?.source, 'rabbitmq_prometheus', `${a.name}: ${s.metric}`);
    assert.not.match(a.expr, /\b(queue|vhost)\b(?!_)/, `${a.name} must not group by queue or vhost`);
  }
  // The catalog describes the endpoint the chart scrapes, so the catalog check refuses per-queue queries.
  for (const m of catalog.metrics.filter((x) => x.source === 'rabbitmq_prometheus'))
    assert.not.ok(
      m.labels.some((l) => l === 'queue' || l === 'vhost'),
      m.name,
    );
  // One Redis per exporter: redis_exporter adds no labels of its own to these series.
  for (const m of catalog.metrics.filter((x) => x.source === 'redis_exporter')) assert.equal(m.labels, [], m.name);
  for (const a of alertRules(loadRules()).filter((r) => /Redis/.test(r.name))) {
    for (const s of parsePromQL(a.expr).selectors) if (s.metric) assert.is(catalog.metrics.find((m) => m.name === s.metric)?.source, 'redis_exporter', `${a.name}: ${s.metric}`);
  }
});

test('CloudNativePG: the PodMonitor selects the instance pods on their metrics port (as the pinned operator names it)', async () => {
  const objs = await renderObjects({ values: MONITORING });
  const cluster = find(objs, 'Cluster', 'conduit-pg');
  const pm = find(objs, 'PodMonitor', 'conduit-pg');
  assert.equal(pm.spec.selector.matchLabels, { 'cnpg.io/cluster': cluster.metadata.name, 'cnpg.io/podRole': 'instance' });
  assert.equal(pm.metadata.labels!.release, 'kube-prometheus-stack');
  assert.is(pm.spec.podMetricsEndpoints[0].port, 'metrics');
  const dir = await moduleDir('github.com/cloudnative-pg/cloudnative-pg', 'v1.29.0');
  assert.match(fs.readFileSync(path.join(dir, 'pkg/specs/pods.go'), 'utf8'), /Name:\s+"metrics",\s*\n\s*ContainerPort:/);
  const labels = fs.readFileSync(path.join(dir, 'pkg/utils/labels_annotations.go'), 'utf8');
  assert.match(labels, /ClusterLabelName = MetadataNamespace \+ "\/cluster"/);
  assert.match(labels, /PodRoleLabelName = MetadataNamespace \+ "\/podRole"/);
});

test('NetworkPolicy: the monitoring namespace reaches every metrics port the monitors scrape', async () => {
  const objs = await renderObjects({ values: merge(MONITORING, { monitoring: { adminScrapeConfig: { enabled: true } } }) });
  const policies = ofKind(objs, 'NetworkPolicy');
  const monitoringNs = { 'kubernetes.io/metadata.name': 'monitoring' };
  const rabbit = find(objs, 'RabbitmqCluster', 'conduit-rabbitmq');
  // Pod labels of each scraped workload and the port number behind the monitor's port name.
  const targets: { what: string; labels: Record<string, string>; port: number; name: string }[] = [
    { what: 'redis exporter', labels: find(objs, 'StatefulSet', 'conduit-redis').spec.template.metadata.labels, port: 9121, name: 'metrics' },
    { what: 'api', labels: find(objs, 'Deployment', 'conduit-api').spec.template.metadata.labels, port: 8080, name: 'http' },
    { what: 'admin', labels: find(objs, 'Deployment', 'conduit-admin').spec.template.metadata.labels, port: 8080, name: 'http' },
    // The operator's pod labels: app.kubernetes.io/* of its own, other labels copied from the RabbitmqCluster.
    {
      what: 'rabbitmq',
      labels: {
        'app.kubernetes.io/name': rabbit.metadata.name,
        'app.kubernetes.io/component': 'rabbitmq',
        'app.kubernetes.io/part-of': 'rabbitmq',
        'helm.sh/chart': rabbit.metadata.labels!['helm.sh/chart'],
      },
      port: 15692,
      name: 'prometheus',
    },
    { what: 'postgresql', labels: { 'cnpg.io/cluster': 'conduit-pg', 'cnpg.io/podRole': 'instance', 'cnpg.io/instanceRole': 'primary' }, port: 9187, name: 'metrics' },
  ];
  for (const t of targets) {
    for (const np of policies.filter((p) => matches(p.spec.podSelector.matchLabels ?? {}, t.labels) && p.spec.policyTypes.includes('Ingress'))) {
      const allowed = (np.spec.ingress ?? []).some(
        (rule: { from?: { namespaceSelector?: { matchLabels?: Record<string, string> }; podSelector?: unknown }[]; ports?: { port: number | string }[] }) =>
          (rule.from ?? []).some((f) => f.namespaceSelector && !f.podSelector && matches(f.namespaceSelector.matchLabels ?? {}, monitoringNs)) &&
          (rule.ports ?? []).some((p) => p.port === t.port || p.port === t.name),
      );
      assert.ok(allowed, `${np.metadata.name} lets the monitoring namespace reach ${t.what} on ${t.port}`);
    }
  }
  // The Redis policy is the one that needed a new rule.
  assert.ok(policies.some((p) => p.metadata.name === 'conduit-redis'));
});

test('the catalog check passes over the rendered PrometheusRule (overrides and all)', async () => {
  const values = merge(MONITORING, {
    monitoring: {
      prometheusRule: { enabled: true, disabled: ['ConduitWatchdog'], overrides: { ConduitRedisDown: { severity: 'warning', for: '10m' } }, runbookBaseUrl: 'https://docs.example.org/runbooks' },
    },
  });
  const [rule] = ofKind(await renderObjects({ values }), 'PrometheusRule');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rendered-rules-'));
  try {
    const file = path.join(dir, 'rendered.rules.yaml');
    fs.writeFileSync(file, stringify({ groups: rule.spec.groups }));
    const groups = loadRules([file]);
    const queries = ruleQueries([file]);
    const shipped = loadRules().flatMap((g) => g.rules).length;
    assert.is(queries.length, shipped - 1, 'every shipped rule but the disabled one');
    const { problems } = checkAllQueries(catalog, queries, groups);
    assert.equal(problems, []);
    const redisDown = alertRules(groups).find((r) => r.name === 'ConduitRedisDown')!;
    assert.is(redisDown.labels.severity, 'warning');
    assert.match(redisDown.annotations.runbook_url, /^https:\/\/docs\.example\.org\/runbooks\/redis\.md#/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the rendered autoscalers only name catalogued gauges their pods serve; the WebUI has no default Pods metric', async () => {
  const withPods = { autoscaling: { enabled: true, maxReplicas: 3, pods: { enabled: true } } };
  const objs = await renderObjects({ values: merge(S3, WEBUI_ON, { api: withPods, admin: withPods, webui: { autoscaling: { enabled: true } } }) });
  const refs = hpaMetricNames(objs);
  assert.equal(refs.map((r) => `${r.origin} ${r.metric}`).sort(), [
    'HorizontalPodAutoscaler/conduit-admin http_server_active_requests',
    'HorizontalPodAutoscaler/conduit-api http_server_active_requests',
  ]);
  assert.equal(checkAutoscalingMetrics(catalog, refs), []);
  const webui = find(objs, 'HorizontalPodAutoscaler', 'conduit-webui');
  assert.equal(
    webui.spec.metrics.map((m: { type: string }) => m.type),
    ['Resource'],
  );
  // Switching the WebUI Pods metric on without a name is refused; naming an API metric is caught by the catalog check.
  assert.match(await renderError({ values: merge(WEBUI_ON, { webui: { autoscaling: { enabled: true, pods: { enabled: true } } } }) }), /webui\.autoscaling\.pods\.metricName is empty/);
  const wrong = await renderObjects({ values: merge(WEBUI_ON, { webui: { autoscaling: { enabled: true, pods: { enabled: true, metricName: 'http_server_active_requests' } } } }) });
  const problems = checkAutoscalingMetrics(catalog, hpaMetricNames(wrong));
  assert.is(problems.length, 1);
  assert.match(problems[0], /^HorizontalPodAutoscaler\/conduit-webui webui\.autoscaling\.pods: the webui pods do not serve http_server_active_requests/);
  assert.match(checkAutoscalingMetrics(catalog, [{ path: 'api.autoscaling.pods', metric: 'redis_up', origin: 'x' }])[0], /the api pods do not serve redis_up \(exported by redis_exporter/);
});

test.run();
