// backup.ts with --cluster: a real PostgreSQL (services.ts) holds the data, the built-in local cluster
// runs the chart (api 2 replicas, admin 1) in a scratch namespace named by a registry file of its own.
// restore --cluster must stop api and admin while pg_restore runs (observed while pg_restore is held
// on a table lock), put 2/1 back afterwards - also when the restore fails -, hold the deploy lock,
// write an audit entry without secrets; --dry-run and a refused confirmation must change nothing.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { stringify as toYaml } from 'yaml';
import { executeDeploy, planDeploy } from '../../scripts/lib/engines/deploy.ts';
import { run, type RunResult } from '../../scripts/lib/core/exec.ts';
import type { Kube, KubeObject } from '../../scripts/lib/adapters/kube.ts';
import { acquireLock, readLock, releaseLock } from '../../scripts/lib/domain/lease.ts';
import { LOCAL_CONTEXT } from '../../scripts/lib/domain/target.ts';
import { parseDatabaseUrl, tableStats } from '../../scripts/lib/adapters/pg.ts';
import { CHART_DIR, REPO_ROOT, VALUES_DIR } from '../../scripts/lib/core/paths.ts';
import { tool } from '../../scripts/lib/adapters/tools.ts';
import { Reporter } from '../../scripts/lib/core/ui.ts';
import { BACKUP_SCRIPT, backupCli, loadDataset, SPOT_CHECK_SQL } from './backup-data.ts';
import { recordFault } from './support/faulttable.ts';
import { startPostgres, type PostgresServer } from './services.ts';
import { localCluster, sleep } from './support/localcluster.ts';

const t = suite('backup.ts --cluster');
let pg: PostgresServer;
let kube: Kube;
let namespace: string;
let registry: string;
let tmp: string;
let backupId: string;
let expected: Awaited<ReturnType<typeof tableStats>>;
let expectedSpot: string;
const outputs: string[] = [];
const WRONG_PASSWORD = 'not-the-db-password-4711';

type Deployment = KubeObject & { spec: { replicas: number } };
// Two API replicas need shared media storage; the simulated pods never reach it (nor read the Secret).
const MEDIA = { type: 's3', s3: { endpoint: 'https://s3.example.invalid', bucketName: 'media', existingSecret: 'media-s3' } };
const LAYERS = [path.join(VALUES_DIR, 'environments', 'local.yaml'), path.join(VALUES_DIR, 'clusters', 'local.yaml')];

async function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<RunResult & { json?: any }> {
  const r = await backupCli([...args, '--registry', registry], { ...pg.env, ...env });
  outputs.push(r.stdout, r.stderr);
  return r;
}
const restoreArgs = (cluster = 'e2e') => ['restore', '--from', path.join(tmp, 'backups'), '--backup', backupId, '--cluster', cluster, '--database-url', pg.url('conduit'), '--clean'];

async function replicas(): Promise<{ api: number; admin: number; pods: number; generations: string }> {
  const api = (await kube.get<Deployment>('deployment', 'conduit-api', { namespace }))!;
  const admin = (await kube.get<Deployment>('deployment', 'conduit-admin', { namespace }))!;
  const pods = (await kube.list('pods', { namespace, selector: 'app.kubernetes.io/instance=conduit,app.kubernetes.io/component in (api,admin)' })).length;
  return { api: api.spec.replicas, admin: admin.spec.replicas, pods, generations: `${api.metadata.generation}/${admin.metadata.generation}` };
}
async function auditEntries(): Promise<Record<string, any>[]> {
  const cm = await kube.get<KubeObject & { data?: Record<string, string> }>('configmap', 'conduit-audit', { namespace });
  return Object.keys(cm?.data ?? {})
    .sort()
    .map((k) => JSON.parse(cm!.data![k]));
}
async function auditText(): Promise<string> {
  return JSON.stringify((await kube.get('configmap', 'conduit-audit', { namespace })) ?? {});
}
async function untilPods(n: number): Promise<void> {
  for (let i = 0; i < 120 && (await replicas()).pods !== n; i++) await sleep(500);
}
/** Hold an ACCESS SHARE lock on app.users, so pg_restore --clean waits inside its transaction until released. */
async function blockUsersTable(): Promise<() => Promise<void>> {
  const blocker = pg.sql('conduit', "SET application_name = 'e2e-blocker'; BEGIN; LOCK TABLE app.users IN ACCESS SHARE MODE; SELECT pg_sleep(600);").catch(() => 'terminated');
  for (
    let i = 0;
    i < 100 &&
    (
      await pg.sql('conduit', "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'e2e-blocker' AND l.granted AND l.relation = 'app.users'::regclass;")
    ).trim() !== '1';
    i++
  )
    await sleep(100);
  return async () => {
    await pg.sql('postgres', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'e2e-blocker';");
    await blocker;
  };
}
/** Whether a session other than the blocker waits on a lock in the database (pg_restore held by it). */
async function restoreWaiting(): Promise<boolean> {
  return (await pg.sql('conduit', "SELECT count(*) FROM pg_stat_activity WHERE datname = 'conduit' AND wait_event_type = 'Lock' AND application_name <> 'e2e-blocker';")).trim() !== '0';
}
const stats = () => tableStats(parseDatabaseUrl(pg.urlWithPassword('conduit')));

t.before(async () => {
  [pg, kube] = await Promise.all([startPostgres(), localCluster()]);
  await loadDataset(pg, 'conduit');
  namespace = `e2e-restore-${Date.now().toString(36)}`;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-restore-'));
  fs.mkdirSync(path.join(tmp, 'backups'));
  registry = path.join(tmp, 'clusters.yaml');
  for (const l of LAYERS) {
    const to = path.join(tmp, path.relative(VALUES_DIR, l));
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.copyFileSync(l, to);
  }
  const entry = {
    description: 'e2e scratch namespace',
    context: LOCAL_CONTEXT,
    namespace,
    release: 'conduit',
    environment: 'local',
    layers: LAYERS.map((l) => path.relative(VALUES_DIR, l)),
    kubeVersion: '1.36',
  };
  fs.writeFileSync(registry, toYaml({ clusters: { e2e: { ...entry, protected: false }, 'e2e-protected': { ...entry, protected: true } } }));
  const helm = await tool('helm');
  const plan = planDeploy(
    {
      target: { cluster: 'e2e', context: LOCAL_CONTEXT, kubeconfig: kube.target.kubeconfig, namespace, release: 'conduit', protected: false },
      chartDir: CHART_DIR,
      valuesFiles: LAYERS,
      overrides: { api: { replicaCount: 2 }, admin: { replicaCount: 1 }, mediaStorage: MEDIA },
      helmMajor: 4,
      timeout: '3m',
      actor: 'e2e@restore',
    },
    helm,
  );
  await executeDeploy(plan, kube, Object.assign(new Reporter({ quiet: true }), { confirm: async () => false }), { yes: false });
  await untilPods(3);
  assert.equal(await replicas().then((r) => [r.api, r.admin, r.pods]), [2, 1, 3], 'the release runs api 2, admin 1');
});

t.after(async () => {
  await kube?.delete('namespace', namespace, { wait: false }).catch(() => false);
  await pg?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

t('create --cluster records the release and its revision in the manifest', async () => {
  const r = await cli(['create', '--cluster', 'e2e', '--database-url', pg.url('conduit'), '--to', path.join(tmp, 'backups'), '--json']);
  assert.is(r.exitCode, 0, r.stderr);
  const { kind, cluster, release, revision } = r.json.manifest.source;
  assert.equal({ kind, cluster, namespace: r.json.manifest.source.namespace, release, revision }, { kind: 'script', cluster: 'e2e', namespace, release: 'conduit', revision: 1 });
  backupId = r.json.id;
  expected = await stats();
  expectedSpot = await pg.sql('conduit', SPOT_CHECK_SQL);
});

t('--dry-run prints the plan with the replica counts and changes nothing', async () => {
  const before = await replicas();
  const audit = await auditText();
  const r = await cli([...restoreArgs(), '--dry-run', '--json']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.equal(r.json.plan.replicas, { api: 2, admin: 1 });
  assert.ok(
    r.json.plan.after.some((s: string) => s.includes('api 2, admin 1')),
    JSON.stringify(r.json.plan.after),
  );
  const human = await cli([...restoreArgs(), '--dry-run']);
  assert.match(human.stdout, /Dry run: nothing was changed/);
  assert.match(human.stdout, /scale deployment\/conduit-api and deployment\/conduit-admin to 0 \(now: api 2, admin 1\)/);
  assert.match(human.stdout, /hold the deploy lock conduit-deploy-lock/);
  assert.equal(await replicas(), before, 'generation and replicas unchanged');
  assert.is(await auditText(), audit, 'no audit entry');
});

t('a protected cluster without --yes (no terminal) refuses and changes nothing', async () => {
  const before = await replicas();
  const audit = await auditText();
  const r = await cli(restoreArgs('e2e-protected'));
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /on the protected cluster e2e-protected .* pass --yes/);
  assert.equal(await replicas(), before);
  assert.is(await auditText(), audit);
});

t('a held deploy lock makes the restore fail fast, nothing scaled', async () => {
  const before = await replicas();
  const lock = await acquireLock(kube, { namespace, holder: 'someone-deploying', durationSeconds: 120, reason: 'deploy in progress' });
  try {
    const r = await cli([...restoreArgs(), '--yes']);
    assert.is(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, /someone-deploying/);
  } finally {
    await releaseLock(kube, lock);
  }
  assert.equal(await replicas(), before);
  assert.is((await auditEntries()).at(-1)?.result, 'refused');
});

t('restore --cluster: api/admin are at 0 while pg_restore runs, the data matches the backup, 2/1 afterwards', async () => {
  await pg.sql('conduit', "INSERT INTO app.audit (what) VALUES ('written after the backup'); UPDATE app.users SET display_name = 'changed' WHERE id = 7;");
  assert.not.equal(await stats(), expected);
  const unblock = await blockUsersTable();
  const restore = cli([...restoreArgs(), '--yes', '--json']);
  let during: Awaited<ReturnType<typeof replicas>> | undefined;
  let lockedOut: Error | undefined;
  for (let i = 0; i < 600; i++) {
    if (await restoreWaiting()) {
      during = await replicas();
      // A deploy starting now fails fast: the restore holds the deploy lock.
      lockedOut = await acquireLock(kube, { namespace, holder: 'e2e-deploy', durationSeconds: 30 }).then(
        async (l) => (await releaseLock(kube, l), undefined),
        (e: Error) => e,
      );
      break;
    }
    await sleep(200);
  }
  await unblock();
  const r = await restore;
  assert.ok(during, `pg_restore never waited on the lock:\n${r.stderr}`);
  assert.equal({ api: during!.api, admin: during!.admin, pods: during!.pods }, { api: 0, admin: 0, pods: 0 }, 'while pg_restore ran, api and admin were scaled to 0 with no pod left');
  assert.is(lockedOut?.name, 'LockHeldError', 'the deploy lock was held during the restore');
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.json.passed, true);
  assert.equal(await stats(), expected, 'the database matches the backup');
  assert.is(await pg.sql('conduit', SPOT_CHECK_SQL), expectedSpot);
  await untilPods(3);
  const after = await replicas();
  assert.equal([after.api, after.admin, after.pods], [2, 1, 3], 'replica counts and pods are back');
  const entry = (await auditEntries()).at(-1)!;
  assert.is(entry.action, 'restore');
  assert.is(entry.result, 'succeeded');
  assert.equal(entry.details.replicas, { api: 2, admin: 1 });
  const steps = entry.details.steps.map((s: { step: string }) => s.step);
  assert.is(steps[0], 'saved the replica counts in conduit.dev/restore-saved');
  assert.equal(steps.slice(1, 3), ['scaled deployment/conduit-api from 2 to 0', 'scaled deployment/conduit-admin from 1 to 0']);
  assert.ok(steps.includes('removed conduit.dev/restore-saved'), steps.join('; '));
  assert.ok(steps.includes('scaled deployment/conduit-api back to 2') && steps.includes('scaled deployment/conduit-admin back to 1'), steps.join('; '));
  assert.ok(steps.indexOf('no pod of admin left') < steps.indexOf('scaled deployment/conduit-api back to 2'));
});

t('a failing restore (pg_restore refused after scaling) still brings api/admin back to 2/1 and exits 1', async () => {
  const url = pg.urlWithPassword('conduit').replace(`:${pg.password}@`, `:${WRONG_PASSWORD}@`);
  const r = await cli([...restoreArgs().filter((a, i, all) => a !== '--database-url' && all[i - 1] !== '--database-url'), '--database-url-env', 'TARGET_DB', '--yes'], {
    TARGET_DB: url,
    PGPASSWORD: undefined,
  });
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(r.stderr, /password authentication failed/);
  await untilPods(3);
  const after = await replicas();
  assert.equal([after.api, after.admin, after.pods], [2, 1, 3]);
  const entry = (await auditEntries()).at(-1)!;
  assert.is(entry.result, 'failed');
  const steps = entry.details.steps.map((s: { step: string }) => s.step);
  assert.ok(steps.includes('scaled deployment/conduit-api from 2 to 0'), 'it had scaled down before pg_restore failed');
  assert.ok(steps.includes('scaled deployment/conduit-api back to 2') && steps.includes('scaled deployment/conduit-admin back to 1'));
  assert.equal(await stats(), expected, 'the database is unchanged');
});

t('a restore killed with SIGKILL while pg_restore runs: the next plain restore puts 2/1 back and restores the data', async () => {
  await pg.sql('conduit', "INSERT INTO app.audit (what) VALUES ('written before the killed restore');");
  const unblock = await blockUsersTable();
  const child = spawn(process.execPath, ['--import', 'tsx', BACKUP_SCRIPT, ...restoreArgs(), '--yes', '--registry', registry], {
    env: { ...process.env, ...pg.env, CI: '1' },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise((r) => child.on('close', r));
  for (let i = 0; i < 600 && !(await restoreWaiting()); i++) await sleep(200);
  assert.ok(await restoreWaiting(), `pg_restore never waited on the lock:\n${out}`);
  // The runner vanishes: the restore, pg_restore and every other process of the group die at once.
  process.kill(-child.pid!, 'SIGKILL');
  await exited;
  await unblock();
  const left = await replicas();
  assert.equal([left.api, left.admin], [0, 0], 'the killed restore left api and admin scaled down');
  const saved = (await kube.get<Deployment>('deployment', 'conduit-api', { namespace }))!.metadata.annotations?.['conduit.dev/restore-saved'];
  assert.equal(JSON.parse(saved ?? '{}'), { replicas: 2 }, 'the counts to go back to are kept in the cluster');
  const lock = await readLock(kube, namespace);
  assert.ok(lock.holderGone, `the lock is held by a dead pid: ${JSON.stringify(lock)}`);
  const stateLeft = `api/admin at 0/0 (saved 2/1 in conduit.dev/restore-saved); lock held by a dead pid; the database as before (pg_restore's single transaction rolled back)`;
  const kept = await pg.sql('conduit', "SELECT count(*) FROM app.audit WHERE what = 'written before the killed restore';");
  assert.is(kept.trim(), '1', 'the single transaction of the killed pg_restore was rolled back: the database is as before');

  const started = performance.now();
  const r = await cli([...restoreArgs(), '--yes', '--json']);
  const ms = performance.now() - started;
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stderr + r.stdout, /left at 0 by an interrupted restore: it goes back to its saved 2/);
  assert.equal(await stats(), expected, 'the database matches the backup');
  await untilPods(3);
  const after = await replicas();
  assert.equal([after.api, after.admin, after.pods], [2, 1, 3], 'the saved counts are back, not the zeros the killed restore left');
  assert.is((await kube.get<Deployment>('deployment', 'conduit-api', { namespace }))!.metadata.annotations?.['conduit.dev/restore-saved'], undefined);
  assert.ok((await readLock(kube, namespace)).free);
  assert.is((await auditEntries()).at(-1)!.result, 'succeeded');
  assert.not.ok(out.includes(pg.password) || r.stderr.includes(pg.password) || (await auditText()).includes(pg.password), 'no password in output or audit');
  recordFault({
    fault: 'SIGKILL of the restore process group',
    phase: 'restore --cluster, while pg_restore runs',
    stateLeft,
    recoveredBy: 'the same restore command again (saved counts put back)',
    recoverMs: ms,
    recovered: true,
  });
});

t('an HPA on admin: refused without --pause-autoscaling; with it, deleted for the restore and re-created as it was', async () => {
  const hpa = {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name: 'conduit-admin', namespace, labels: { 'app.kubernetes.io/instance': 'conduit', 'app.kubernetes.io/component': 'admin' }, annotations: { 'conduit.test/kept': 'yes' } },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'conduit-admin' },
      minReplicas: 1,
      maxReplicas: 2,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }],
    },
  };
  const created = await kube.create(hpa as unknown as KubeObject, { namespace });
  const before = await replicas();
  const refused = await cli([...restoreArgs(), '--yes']);
  assert.is(refused.exitCode, 1, refused.stderr);
  assert.match(refused.stderr, /HorizontalPodAutoscaler\/conduit-admin \(min 1, max 2\) would scale admin back up/);
  assert.match(refused.stderr, /--pause-autoscaling/);
  assert.equal(await replicas(), before, 'nothing changed');

  const r = await cli([...restoreArgs(), '--yes', '--pause-autoscaling', '--json']);
  assert.is(r.exitCode, 0, r.stderr);
  const steps = r.json.steps.map((s: { step: string }) => s.step);
  assert.is(steps[0], 'saved the replica counts and HPA copies in conduit.dev/restore-saved');
  assert.is(steps[1], 'deleted HorizontalPodAutoscaler/conduit-admin (saved: min 1, max 2)');
  assert.ok(steps.includes('created HorizontalPodAutoscaler/conduit-admin again'), steps.join('; '));
  const again = (await kube.get<KubeObject & { spec: unknown }>('hpa', 'conduit-admin', { namespace }))!;
  assert.not.equal(again.metadata.uid, created.metadata.uid, 'a new object');
  assert.equal(again.spec, (created as unknown as { spec: unknown }).spec, 'with the same spec');
  assert.is(again.metadata.annotations?.['conduit.test/kept'], 'yes');
  await untilPods(3);
  const after = await replicas();
  assert.equal([after.api, after.admin], [2, 1]);
  assert.equal(await stats(), expected);
  await kube.delete('hpa', 'conduit-admin', { namespace });
});

t('Ctrl-C during pg_restore (SIGINT to the process group, as a terminal sends it) still brings api/admin back', async () => {
  await pg.sql('conduit', "INSERT INTO app.audit (what) VALUES ('kept: the interrupted restore rolls back');");
  const before = await stats();
  const unblock = await blockUsersTable();
  // Its own process group, so the signal reaches backup.ts and its pg_restore like a terminal's Ctrl-C.
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'scripts', 'backup.ts'), ...restoreArgs(), '--yes', '--registry', registry], {
    cwd: REPO_ROOT,
    detached: true,
    env: { ...process.env, CI: '1', ...pg.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number>((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : -1))));
  let sawZero = false;
  for (let i = 0; i < 600 && !sawZero; i++) {
    if (await restoreWaiting()) sawZero = (await replicas()).pods === 0;
    else await sleep(200);
  }
  process.kill(-child.pid!, 'SIGINT');
  const code = await exited;
  await unblock();
  outputs.push(stdout, stderr);
  assert.ok(sawZero, `pg_restore never waited with the pods gone:\n${stderr}`);
  assert.is(code, 1, stderr);
  assert.match(stderr, /interrupted: putting api 2, admin 1 back first/);
  await untilPods(3);
  const after = await replicas();
  assert.equal([after.api, after.admin, after.pods], [2, 1, 3]);
  assert.equal(await stats(), before, 'the interrupted restore changed nothing in the database');
  assert.is((await auditEntries()).at(-1)!.result, 'failed');
});

t('no secret in any output or audit entry', async () => {
  const audit = await auditText();
  for (const secret of [pg.password, WRONG_PASSWORD]) {
    assert.not.ok(
      outputs.some((o) => o.includes(secret)),
      'a secret appeared in the output',
    );
    assert.not.ok(audit.includes(secret), 'a secret appeared in the audit trail');
  }
  assert.ok(audit.includes(pg.url('conduit')), 'the target is named, without its password');
});

t.run();
