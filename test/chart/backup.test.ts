// In-cluster backups (values key `backup`): the dump CronJob of an external database, the
// CloudNativePG ScheduledBackup and object store, the pre-upgrade hook, their security contexts,
// NetworkPolicy, where secrets may appear, the render-time guards and the backup alerts' selectors.
import fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parsePromQL } from '../../scripts/lib/domain/promql.ts';
import { repoPath } from '../../scripts/lib/core/paths.ts';
import { alertRules, loadRules } from '../../scripts/lib/domain/rules.ts';
import { find, merge, ofKind, renderError, renderObjects, type K8sObject } from './helpers.ts';

const DEST = { url: 's3://conduit-backups/eu/', endpoint: 'https://minio.example.org:9000', existingSecret: 'backup-s3' };
const EXTERNAL = {
  database: { mode: 'external', auth: { existingSecret: 'pg-creds' }, external: { host: 'db.example.org', port: 5433 } },
  networkPolicy: { externalServices: { database: { cidrs: ['10.20.0.0/16'] } } },
};
const ON = { backup: { enabled: true, destination: DEST } };

/** Pod spec of the CronJob's jobs. */
const cronPod = (objs: K8sObject[], name = 'conduit-backup') => find(objs, 'CronJob', name).spec.jobTemplate.spec.template.spec;
const containersOf = (pod: any) => [...(pod.initContainers ?? []), ...pod.containers]; // eslint-disable-line @typescript-eslint/no-explicit-any
const envMap = (c: { env: { name: string; value?: string; valueFrom?: any }[] }) => new Map(c.env.map((e) => [e.name, e])); // eslint-disable-line @typescript-eslint/no-explicit-any

test('external database: a CronJob dumps with postgres, then uploads with rclone, from a script ConfigMap', async () => {
  const objs = await renderObjects({ values: merge(EXTERNAL, ON) });
  const cj = find(objs, 'CronJob', 'conduit-backup');
  assert.is(cj.spec.schedule, '17 3 * * *');
  assert.is(cj.spec.timeZone, 'Etc/UTC');
  assert.is(cj.spec.concurrencyPolicy, 'Forbid');
  assert.is(cj.spec.startingDeadlineSeconds, 3600);
  assert.is(cj.spec.successfulJobsHistoryLimit, 3);
  assert.is(cj.spec.failedJobsHistoryLimit, 3);
  assert.is(cj.spec.jobTemplate.spec.activeDeadlineSeconds, 7200);
  assert.is(cj.spec.jobTemplate.spec.backoffLimit, 1);
  const pod = cronPod(objs);
  assert.is(pod.restartPolicy, 'Never');
  const [dump] = pod.initContainers;
  const [upload] = pod.containers;
  assert.match(dump.image, /^docker\.io\/library\/postgres:\d+\.\d+-bookworm$/);
  assert.match(upload.image, /^docker\.io\/rclone\/rclone:\d+\.\d+\.\d+$/);
  assert.equal(dump.command, ['/bin/sh', '/scripts/backup.sh', 'dump']);
  assert.equal(upload.command, ['/bin/sh', '/scripts/backup.sh', 'upload']);
  const de = envMap(dump);
  assert.is(de.get('PGHOST')?.value, 'db.example.org');
  assert.is(de.get('PGPORT')?.value, '5433');
  assert.equal(de.get('PGPASSWORD')?.valueFrom, { secretKeyRef: { name: 'pg-creds', key: 'password' } });
  assert.is(de.get('BACKUP_KIND')?.value, 'cronjob');
  assert.not.ok(de.has('BACKUP_ID_TAG'));
  const ue = envMap(upload);
  assert.is(ue.get('BACKUP_DEST')?.value, 's3://conduit-backups/eu/dumps');
  assert.is(ue.get('AWS_ENDPOINT_URL')?.value, DEST.endpoint);
  assert.equal(ue.get('AWS_SECRET_ACCESS_KEY')?.valueFrom, { secretKeyRef: { name: 'backup-s3', key: 'secret-access-key' } });
  assert.equal(ue.get('AWS_ACCESS_KEY_ID')?.valueFrom, { secretKeyRef: { name: 'backup-s3', key: 'access-key-id' } });
  // Both steps share the emptyDir; the script comes from the ConfigMap, byte for byte.
  const scripts = pod.volumes.find((v: { name: string }) => v.name === 'scripts').configMap;
  // Decimal in the template: "0555" is octal to Go's YAML 1.1 parser but decimal 555 (invalid) to YAML 1.2 tools.
  assert.is(scripts.defaultMode, 0o555);
  const cmName = scripts.name;
  const cm = find(objs, 'ConfigMap', cmName);
  assert.is(cm.data['backup.sh'], fs.readFileSync(repoPath('chart', 'files', 'backup', 'backup.sh'), 'utf8').replace(/\n$/, ''));
  assert.is(cm.data['table-stats.sql'], fs.readFileSync(repoPath('chart', 'files', 'backup', 'table-stats.sql'), 'utf8').replace(/\n$/, ''));
  for (const c of [dump, upload])
    assert.ok(
      c.volumeMounts.some((m: { name: string; mountPath: string }) => m.name === 'backup' && m.mountPath === '/backup'),
      c.name,
    );
  assert.ok(pod.volumes.find((v: { name: string }) => v.name === 'backup').emptyDir.sizeLimit);
  // No CloudNativePG objects in external mode.
  assert.is(ofKind(objs, 'ScheduledBackup').length, 0);
  assert.is(ofKind(objs, 'Cluster').length, 0);
});

test('backup pods meet Pod Security restricted: postgres as UID 999, rclone as a non-root UID with writable emptyDirs', async () => {
  const objs = await renderObjects({ values: merge(EXTERNAL, ON, { backup: { job: { rcloneUser: 4242 } } }) });
  for (const pod of [cronPod(objs), find(objs, 'Job', 'conduit-backup-pre-upgrade').spec.template.spec]) {
    assert.is(pod.securityContext.runAsNonRoot, true);
    assert.is(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
    assert.is(pod.automountServiceAccountToken, false);
    for (const c of containersOf(pod)) {
      const sc = c.securityContext;
      assert.is(sc.runAsNonRoot, true, c.name);
      assert.is(sc.allowPrivilegeEscalation, false, c.name);
      assert.is(sc.readOnlyRootFilesystem, true, c.name);
      assert.equal(sc.capabilities.drop, ['ALL'], c.name);
      assert.is(sc.seccompProfile.type, 'RuntimeDefault', c.name);
      assert.ok(
        c.volumeMounts.some((m: { mountPath: string }) => m.mountPath === '/tmp'),
        `${c.name} has a writable /tmp`,
      );
      assert.is(envMap(c).get('HOME')?.value, '/tmp', c.name);
    }
    assert.is(pod.initContainers[0].securityContext.runAsUser, 999);
    assert.is(pod.containers[0].securityContext.runAsUser, 4242);
  }
});

test('no secret in a ConfigMap, a command line or a plain env value', async () => {
  // An inline database password makes the chart write a Secret: it must appear nowhere else.
  const password = 'Inl1nePassw0rdForTheBackupTest';
  const objs = await renderObjects({ values: merge(EXTERNAL, ON, { database: { auth: { existingSecret: '', password } } }) });
  for (const o of objs) if (o.kind !== 'Secret') assert.not.ok(JSON.stringify(o).includes(password), `${o.kind}/${o.metadata.name} holds the password`);
  const pods = [cronPod(objs), find(objs, 'Job', 'conduit-backup-pre-upgrade').spec.template.spec];
  for (const pod of pods) {
    for (const c of containersOf(pod)) {
      assert.is(c.args, undefined, `${c.name} has no args`);
      assert.not.match(c.command.join(' '), /\$\(|PASSWORD|SECRET|KEY/, `${c.name}: no secret in argv`);
      for (const e of c.env) if (/PASSWORD|SECRET|ACCESS_KEY/.test(e.name)) assert.ok(e.valueFrom?.secretKeyRef && e.value === undefined, `${c.name} ${e.name} comes from a Secret`);
    }
  }
  for (const cm of ofKind(objs, 'ConfigMap').filter((c) => c.metadata.labels?.['app.kubernetes.io/component'] === 'backup')) {
    assert.equal(Object.keys(cm.data).sort(), ['backup.sh', 'table-stats.sql']);
  }
});

test('CloudNativePG: a ScheduledBackup and the Cluster object store, no CronJob', async () => {
  const objs = await renderObjects({ values: merge(ON, { backup: { schedule: '30 1 * * *', retention: '14d' } }) });
  const sb = find(objs, 'ScheduledBackup', 'conduit-backup');
  assert.is(sb.spec.schedule, '0 30 1 * * *', 'CloudNativePG cron has a leading seconds field');
  assert.is(sb.spec.cluster.name, 'conduit-pg');
  assert.is(sb.spec.method, 'barmanObjectStore');
  assert.is(sb.spec.backupOwnerReference, 'self');
  const backup = find(objs, 'Cluster', 'conduit-pg').spec.backup;
  assert.is(backup.retentionPolicy, '14d');
  assert.is(backup.barmanObjectStore.destinationPath, 's3://conduit-backups/eu/cnpg');
  assert.is(backup.barmanObjectStore.endpointURL, DEST.endpoint);
  assert.equal(backup.barmanObjectStore.s3Credentials, {
    accessKeyId: { name: 'backup-s3', key: 'access-key-id' },
    secretAccessKey: { name: 'backup-s3', key: 'secret-access-key' },
  });
  assert.is(ofKind(objs, 'CronJob').length, 0);
  // Descriptors pass unchanged; without backups the Cluster has no backup section.
  assert.is(find(await renderObjects({ values: merge(ON, { backup: { schedule: '@daily' } }) }), 'ScheduledBackup', 'conduit-backup').spec.schedule, '@daily');
  assert.is(find(await renderObjects(), 'Cluster', 'conduit-pg').spec.backup, undefined);
});

test('the pre-upgrade hook: on in production, a failed one stays, its id is marked', async () => {
  const objs = await renderObjects({ values: ON });
  const job = find(objs, 'Job', 'conduit-backup-pre-upgrade');
  const a = job.metadata.annotations!;
  assert.is(a['helm.sh/hook'], 'pre-upgrade');
  assert.is(a['helm.sh/hook-delete-policy'], 'before-hook-creation,hook-succeeded');
  const cm = find(objs, 'ConfigMap', 'conduit-backup-pre-upgrade');
  assert.is(cm.metadata.annotations!['helm.sh/hook'], 'pre-upgrade');
  assert.ok(Number(cm.metadata.annotations!['helm.sh/hook-weight']) < Number(a['helm.sh/hook-weight']), 'its script exists before the Job');
  const pod = job.spec.template.spec;
  assert.is(pod.volumes.find((v: { name: string }) => v.name === 'scripts').configMap.name, cm.metadata.name);
  const env = envMap(pod.initContainers[0]);
  assert.is(env.get('BACKUP_ID_TAG')?.value, 'preupgrade');
  assert.is(env.get('BACKUP_KIND')?.value, 'pre-upgrade');
  assert.is(env.get('PGHOST')?.value, 'conduit-pg-rw.conduit.svc', 'CloudNativePG mode dumps through the rw Service');
  // In CloudNativePG mode the hook's pods may reach the instances.
  const np = find(objs, 'NetworkPolicy', 'conduit-backup');
  assert.ok(np.spec.egress.some((r: any) => r.to[0].podSelector?.matchLabels?.['cnpg.io/cluster'] === 'conduit-pg' && r.ports[0].port === 5432)); // eslint-disable-line @typescript-eslint/no-explicit-any

  const hooks = async (values: Record<string, unknown>) => ofKind(await renderObjects({ values }), 'Job').map((j) => j.metadata.name);
  assert.equal(await hooks(merge(ON, { global: { environment: 'staging' } })), []);
  assert.equal(await hooks(merge(ON, { global: { environment: 'staging' }, backup: { preUpgrade: { mode: 'always' } } })), ['conduit-backup-pre-upgrade']);
  assert.equal(await hooks(merge(ON, { backup: { preUpgrade: { mode: 'never' } } })), []);
  assert.equal(await hooks({}), [], 'nothing without backup.enabled');
});

test('NetworkPolicy: DNS, the external database port and the S3 endpoint port only', async () => {
  const ports = async (values: Record<string, unknown>) =>
    find(await renderObjects({ values: merge(EXTERNAL, ON, values) }), 'NetworkPolicy', 'conduit-backup').spec.egress.map((r: { ports: { port: number }[] }) => r.ports.map((p) => p.port));
  assert.equal(await ports({}), [[53, 53], [5433], [9000]]);
  assert.equal(await ports({ backup: { destination: { endpoint: '' } } }), [[53, 53], [5433], [443]]);
  assert.equal(await ports({ backup: { destination: { endpoint: 'http://minio.storage.svc' } } }), [[53, 53], [5433], [80]]);
  const np = find(await renderObjects({ values: merge(EXTERNAL, ON) }), 'NetworkPolicy', 'conduit-backup');
  assert.equal(np.spec.ingress, []);
  assert.equal(np.spec.podSelector.matchLabels['app.kubernetes.io/component'], 'backup');
});

test('guards: missing destination or credentials, bad schedule or retention', async () => {
  assert.match(
    await renderError({ values: { backup: { enabled: true } } }),
    /^conduit: backup\.enabled is true but backup\.destination\.url is empty\. Set backup\.destination\.url to s3:\/\/bucket\/prefix/,
  );
  assert.match(
    await renderError({ values: { backup: { enabled: true, destination: { url: 's3://conduit-backups/x' } } } }),
    /^conduit: backup\.enabled is true but backup\.destination\.existingSecret is empty\..*set backup\.destination\.existingSecret/,
  );
  assert.match(
    await renderError({ values: { global: { environment: 'staging' }, backup: { preUpgrade: { mode: 'always' } } } }),
    /^conduit: backup\.preUpgrade\.mode is always but backup\.enabled is false/,
  );
  // The schema refuses shapes before the templates run; its message names the key.
  assert.match(await renderError({ values: merge(ON, { backup: { schedule: 'every night' } }) }), /\/backup\/schedule/);
  assert.match(await renderError({ values: merge(ON, { backup: { schedule: '0 3 * *' } }) }), /\/backup\/schedule/);
  assert.match(await renderError({ values: merge(ON, { backup: { retention: '30' } }) }), /\/backup\/retention/);
  assert.match(await renderError({ values: merge(ON, { backup: { retention: '0d' } }) }), /\/backup\/retention/);
  assert.match(await renderError({ values: merge(ON, { backup: { destination: { url: 'https://bucket/x' } } }) }), /\/backup\/destination\/url/);
});

/** The regex (fully anchored, as Prometheus applies it) of `label` in an alert's selector of `metric`. */
function selector(alert: string, metric: string, label: string): RegExp {
  const a = alertRules(loadRules()).find((x) => x.name === alert);
  const m =
    a &&
    parsePromQL(a.expr)
      .selectors.find((s) => s.metric === metric)
      ?.matchers.find((x) => x.label === label && x.op === '=~');
  assert.ok(m, `${alert}: ${metric}{${label}=~...}`);
  return new RegExp(`^(?:${m!.value})$`);
}

for (const release of ['conduit', 'prod']) {
  test(`release "${release}": the backup alerts select the CronJob, its Jobs and the pre-upgrade Job`, async () => {
    const objs = await renderObjects({ release, values: merge(EXTERNAL, ON) });
    const [cj] = ofKind(objs, 'CronJob').map((o) => o.metadata.name);
    assert.ok(cj && selector('ConduitBackupStale', 'kube_cronjob_status_last_successful_time', 'cronjob').test(cj), cj);
    const failed = selector('ConduitBackupJobFailed', 'kube_job_status_failed', 'job_name');
    assert.ok(failed.test(`${cj}-29412345`), 'a Job the CronJob creates (name + scheduled minute)');
    for (const j of ofKind(objs, 'Job')) assert.ok(failed.test(j.metadata.name), j.metadata.name);
    assert.not.ok(failed.test('shop-backup-29412345'), "another application's backup");
    assert.not.ok(failed.test('conduit-migrate-29412345'), 'a Job that is no backup');
  });
}

test.run();
