// The shipped rules are plain files without Helm templating. Scraped series carry the stable job
// labels the chart's monitors set (conduit-<component>); kube-state-metrics series carry object
// names. Render the chart (several release names, a fullnameOverride) and check that every pattern
// the alerts use matches the jobs and names the chart really produces.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parsePromQL } from '../../scripts/lib/domain/promql.ts';
import { alertRules, loadRules } from '../../scripts/lib/domain/rules.ts';
import { parse as parseYaml } from 'yaml';
import { ofKind, renderError, renderObjects, WEBUI_ON, type K8sObject } from './helpers.ts';

const alerts = alertRules(loadRules());

/** The regex (Prometheus: fully anchored) of `label` in the first selector of `metric` in an alert. */
function pattern(alert: string, metric: string, label: string): RegExp {
  const a = alerts.find((x) => x.name === alert);
  assert.ok(a, alert);
  const sel = parsePromQL(a!.expr).selectors.find((s) => s.metric === metric);
  const m = sel?.matchers.find((x) => x.label === label && x.op === '=~');
  assert.ok(m, `${alert}: ${metric}{${label}=~...}`);
  return new RegExp(`^(?:${m!.value})$`);
}

const VALUES = {
  monitoring: { serviceMonitor: { enabled: true }, adminScrapeConfig: { enabled: true }, prometheusRule: { enabled: true } },
  api: { autoscaling: { enabled: true } },
  database: { cnpg: { monitoring: { podMonitor: true } } },
  mediaStorage: { type: 's3', s3: { endpoint: 'https://s3.example.org', bucketName: 'media', existingSecret: 'media-s3' } },
  ...WEBUI_ON,
};

/** The job label of the Admin API's plain scrape config (adminScrapeConfig): the relabeled one. */
function adminJob(objs: K8sObject[]): string {
  const secret = ofKind(objs, 'Secret').find((s) => s.metadata.name.endsWith('-admin-scrape-config'))!;
  const [job] = parseYaml(secret.stringData['scrape-configs.yaml']) as { relabel_configs: { target_label?: string; replacement?: string }[] }[];
  return job.relabel_configs.filter((r) => r.target_label === 'job').at(-1)!.replacement!;
}

const names = (objs: K8sObject[], kind: string) => ofKind(objs, kind).map((o) => o.metadata.name as string);

/** The job label the targets of a ServiceMonitor/PodMonitor get: the relabeled one, else what prometheus-operator derives. */
function jobOf(monitor: K8sObject, namespace: string): string {
  const endpoints = monitor.spec.endpoints ?? monitor.spec.podMetricsEndpoints;
  const jobs = new Set<string>(
    endpoints.map((e: { relabelings?: { targetLabel?: string; replacement?: string; action?: string }[] }) => {
      const r = (e.relabelings ?? []).filter((x) => x.targetLabel === 'job' && (x.action ?? 'replace') === 'replace').at(-1);
      // Without relabeling: ServiceMonitor -> the Service name (selected by labels), PodMonitor -> "<namespace>/<name>".
      return r?.replacement ?? (monitor.kind === 'PodMonitor' ? `${namespace}/${monitor.metadata.name}` : '(Service name)');
    }),
  );
  assert.is(jobs.size, 1, `${monitor.kind}/${monitor.metadata.name}: one job for all endpoints`);
  return [...jobs][0];
}

for (const [release, extra] of [
  ['conduit', {}],
  ['prod', {}],
  ['llm', { fullnameOverride: 'gateway-conduit' }],
] as const) {
  test(`release "${release}"${'fullnameOverride' in extra ? ` (fullnameOverride ${extra.fullnameOverride})` : ''}: alert selectors match the chart's jobs and object names`, async () => {
    const objs = await renderObjects({ release, values: { ...VALUES, ...extra } });
    const monitors = [...ofKind(objs, 'ServiceMonitor'), ...ofKind(objs, 'PodMonitor')];
    const jobs = new Map(monitors.map((m) => [m.metadata.labels!['app.kubernetes.io/component'], jobOf(m, 'conduit')]));
    jobs.set('admin', adminJob(objs));
    // Stable job labels, whatever the release or object names.
    assert.equal(Object.fromEntries(jobs), { api: 'conduit-api', admin: 'conduit-admin', redis: 'conduit-redis', rabbitmq: 'conduit-rabbitmq', database: 'conduit-postgresql' });
    assert.ok(pattern('ConduitApiAbsent', 'up', 'job').test(jobs.get('api')!), 'API job');
    for (const c of ['api', 'admin']) {
      assert.ok(pattern('ConduitThreadPoolStarvation', 'dotnet_thread_pool_queue_length', 'job').test(jobs.get(c)!), c);
      assert.ok(pattern('ConduitApiHighLatencyP99', 'http_server_request_duration_seconds_bucket', 'job').test(jobs.get(c)!), c);
    }
    for (const j of jobs.values()) assert.ok(pattern('ConduitTargetDown', 'up', 'job').test(j), j);
    assert.ok(pattern('ConduitRedisDown', 'redis_up', 'job').test(jobs.get('redis')!), 'Redis job');
    assert.ok(pattern('ConduitRabbitMQDown', 'up', 'job').test(jobs.get('rabbitmq')!), 'RabbitMQ job');
    assert.ok(pattern('ConduitRabbitMQQueueBacklog', 'rabbitmq_queue_messages_ready', 'job').test(jobs.get('rabbitmq')!), 'RabbitMQ job');
    // Pods of the Deployments (name + ReplicaSet hash + pod suffix), from kube-state-metrics.
    const deployments = names(objs, 'Deployment');
    assert.equal(deployments.length, 3);
    for (const d of deployments) {
      assert.ok(pattern('ConduitPodCrashLooping', 'kube_pod_container_status_waiting_reason', 'pod').test(`${d}-7d9f8c6b5-x2kq9`), d);
      assert.ok(pattern('ConduitPodNotReady', 'kube_pod_status_ready', 'pod').test(`${d}-7d9f8c6b5-x2kq9`), d);
    }
    for (const h of names(objs, 'HorizontalPodAutoscaler')) assert.ok(pattern('ConduitHpaAtMaxReplicas', 'kube_horizontalpodautoscaler_status_desired_replicas', 'horizontalpodautoscaler').test(h), h);
    // CloudNativePG instance pods are <cluster>-<n>.
    const [pg] = names(objs, 'Cluster');
    assert.ok(pg && pattern('ConduitPostgresDown', 'cnpg_collector_up', 'pod').test(`${pg}-1`), `CNPG cluster ${pg}`);
    // Backups: the CronJob, when the chart renders one.
    for (const cj of names(objs, 'CronJob')) if (/backup/.test(cj)) assert.ok(pattern('ConduitBackupStale', 'kube_cronjob_status_last_successful_time', 'cronjob').test(cj), cj);
  });
}

test('a fullnameOverride without "conduit" is refused while the shipped rules are on (their name-based selectors would miss)', async () => {
  const err = await renderError({ values: { ...VALUES, fullnameOverride: 'llm-gateway' } });
  assert.match(err, /monitoring\.prometheusRule\.enabled is true, but the object names \(fullnameOverride "llm-gateway"\) do not contain "conduit"/);
  // Without the rules the name is fine, and the scrape jobs stay the same.
  const objs = await renderObjects({ values: { ...VALUES, fullnameOverride: 'llm-gateway', monitoring: { ...VALUES.monitoring, prometheusRule: { enabled: false } } } });
  assert.equal(
    ofKind(objs, 'ServiceMonitor')
      .map((m) => jobOf(m, 'conduit'))
      .sort(),
    ['conduit-api', 'conduit-rabbitmq', 'conduit-redis'],
  );
  assert.is(adminJob(objs), 'conduit-admin');
});

test('the selectors do not match other applications', () => {
  assert.not.ok(pattern('ConduitApiAbsent', 'up', 'job').test('shop-api'));
  assert.not.ok(pattern('ConduitPodCrashLooping', 'kube_pod_container_status_waiting_reason', 'pod').test('shop-api-6f7c9d8b4-abcde'));
  assert.not.ok(pattern('ConduitApiAbsent', 'up', 'job').test('conduit-admin'));
});

test.run();
