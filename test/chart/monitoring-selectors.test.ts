// The shipped rules are plain files without Helm templating, so they find a release's series by
// name patterns. Render the chart (two release names) and check that every pattern the alerts use
// matches the names the chart really gives its objects.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parsePromQL } from '../../scripts/lib/promql.ts';
import { alertRules, loadRules } from '../../scripts/lib/rules.ts';
import { ofKind, renderObjects, type K8sObject } from './helpers.ts';

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
  monitoring: { serviceMonitor: { enabled: true, admin: { enabled: true } }, prometheusRule: { enabled: true } },
  api: { autoscaling: { enabled: true } },
  database: { cnpg: { monitoring: { podMonitor: true } } },
  mediaStorage: { type: 's3', s3: { endpoint: 'https://s3.example.org', bucketName: 'media', existingSecret: 'media-s3' } },
};

const names = (objs: K8sObject[], kind: string) => ofKind(objs, kind).map((o) => o.metadata.name as string);

for (const release of ['conduit', 'prod']) {
  test(`release "${release}": alert selectors match the chart's object names`, async () => {
    const objs = await renderObjects({ release, values: VALUES });
    // ServiceMonitor targets get job = Service name.
    const monitored = ofKind(objs, 'ServiceMonitor').map((sm) => sm.metadata.name as string);
    assert.ok(monitored.length === 2, 'API and Admin ServiceMonitors');
    const api = monitored.filter((n) => n.endsWith('-api'));
    assert.ok(api.length === 1 && pattern('ConduitApiAbsent', 'up', 'job').test(api[0]), `API job ${api}`);
    for (const n of monitored) {
      assert.ok(names(objs, 'Service').includes(n), `ServiceMonitor ${n} selects Service ${n}`);
      assert.ok(pattern('ConduitTargetDown', 'up', 'job').test(n), n);
      assert.ok(pattern('ConduitThreadPoolStarvation', 'dotnet_thread_pool_queue_length', 'job').test(n), n);
    }
    // Pods of the Deployments (name + ReplicaSet hash + pod suffix).
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
    // RabbitMQ and Redis: a ServiceMonitor on the broker's / exporter's Service gets that Service's name as job.
    const [rmq] = names(objs, 'RabbitmqCluster');
    assert.ok(rmq && pattern('ConduitRabbitMQDown', 'up', 'job').test(rmq), `RabbitmqCluster ${rmq}`);
    const redis = names(objs, 'Service').find((n) => n.includes('redis'));
    assert.ok(redis && pattern('ConduitRedisDown', 'redis_up', 'job').test(`${redis}-metrics`), `Redis ${redis}`);
    // Backups: the CronJob, when the chart renders one.
    for (const cj of names(objs, 'CronJob')) if (/backup/.test(cj)) assert.ok(pattern('ConduitBackupStale', 'kube_cronjob_status_last_successful_time', 'cronjob').test(cj), cj);
  });
}

test('the selectors do not match other applications', () => {
  assert.not.ok(pattern('ConduitApiAbsent', 'up', 'job').test('shop-api'));
  assert.not.ok(pattern('ConduitPodCrashLooping', 'kube_pod_container_status_waiting_reason', 'pod').test('shop-api-6f7c9d8b4-abcde'));
  assert.not.ok(pattern('ConduitApiAbsent', 'up', 'job').test('conduit-admin'));
});

test.run();
