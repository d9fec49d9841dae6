#!/usr/bin/env -S npx zx
// backup.ts: backups of the ConduitLLM database (create, list, verify, restore, prune).
// The logic lives in lib/backups.ts; this file parses flags, shows plans and reports.
import { askOnTerminal, runCommand, type ParsedFlags } from './lib/core/cli.ts';
import { UserError, usageError } from './lib/core/errors.ts';
import {
  createBackup,
  findBackup,
  formatBytes,
  listBackups,
  planCreate,
  planRestore,
  pruneBackups,
  restoreBackup,
  RETENTION_POLICY_TEXT,
  verifyBackup,
  type BackupInfo,
  type RestoreResult,
  type TableComparison,
} from './lib/engines/backup.ts';
import { durationSeconds } from './lib/core/duration.ts';
import { describeConnection, parseDatabaseUrl, type PgConnection } from './lib/adapters/pg.ts';
import { registerSecret } from './lib/core/redact.ts';
// What only --cluster needs (the registry, the Kubernetes and Helm clients, the cluster restore) is
// imported where it is used: a plain create, list or verify starts without loading it.
import type { Kube } from './lib/adapters/kube.ts';
import type { RunbookTarget } from './lib/engines/runbook.ts';
import { openStorage, type S3Options } from './lib/adapters/storage.ts';
import { formatMs, table, type Reporter } from './lib/core/ui.ts';

const spec = {
  name: 'backup.ts',
  summary: 'Create, list, verify, restore and prune PostgreSQL backups of ConduitLLM (local directory or S3).',
  usage: [
    'npx zx scripts/backup.ts create (--database-url URL | --database-url-env VAR) [--cluster NAME] --to DEST',
    'npx zx scripts/backup.ts list --from DEST [--check]',
    'npx zx scripts/backup.ts verify --from DEST [--backup ID] [--scratch-url URL | --database-url URL]',
    'npx zx scripts/backup.ts restore --from DEST --backup ID (--database-url URL | --database-url-env VAR) [--cluster NAME [--pause-autoscaling]] [--clean] [--yes] [--dry-run]',
    'npx zx scripts/backup.ts prune --from DEST --keep-daily N --keep-weekly N --keep-monthly N [--dry-run]',
  ],
  verbs: {
    create: 'Dump the database (pg_dump custom format) inside one snapshot, with per-table row counts and checksums; manifest written last.',
    list: 'Show the backups in a destination with age, size and state (valid, incomplete, corrupt); --check recomputes checksums.',
    verify: 'Check the sha256, restore into a scratch database, compare every table with the manifest, drop the scratch database.',
    restore:
      'Restore a backup into a database (checksum first; refuses a non-empty target without --clean). With --cluster: api and admin are scaled to 0 meanwhile and back afterwards (also on failure), under the deploy lock, with an audit entry.',
    prune: 'Delete backups the retention policy drops (see below); --dry-run shows the decision only.',
  },
  flags: {
    'database-url': { type: 'string' as const, arg: 'URL', description: 'postgresql://USER@HOST:PORT/DB (password: PGPASSWORD env, not the URL).' },
    'database-url-env': { type: 'string' as const, arg: 'VAR', description: 'Name of an environment variable holding the database URL (may include the password).' },
    cluster: {
      type: 'string' as const,
      arg: 'NAME',
      description:
        'A cluster of the registry (values/clusters.yaml). create: records the chart release and revision in the manifest; restore: stops api/admin of the release meanwhile. The database is still reached through --database-url(-env).',
    },
    registry: { type: 'string' as const, arg: 'FILE', description: 'Cluster registry to read instead of values/clusters.yaml.' },
    'check-permissions': {
      type: 'boolean' as const,
      description: 'create/restore --cluster: only ask the API server whether this identity has every permission that needs (docs/rbac.md); exit 1 naming each missing one.',
    },
    'pause-autoscaling': {
      type: 'boolean' as const,
      description: 'restore --cluster: delete the HPAs of api/admin during the restore and re-create them from a saved copy afterwards (without it, an HPA makes the restore refuse).',
    },
    timeout: { type: 'string' as const, arg: 'DUR', description: 'restore --cluster: how long to wait for pods to stop and for the rollout afterwards (default 5m).' },
    helm: { type: 'string' as const, arg: '3|4', description: 'create --cluster: Helm major version for helm status (default 4, or CONDUIT_HELM_MAJOR).' },
    to: { type: 'string' as const, arg: 'DEST', description: 'create: a directory or s3://bucket/prefix.' },
    from: { type: 'string' as const, arg: 'DEST', description: 'list/verify/restore/prune: a directory or s3://bucket/prefix.' },
    backup: { type: 'string' as const, arg: 'ID', description: 'verify/restore: the backup id (verify default: the newest valid backup).' },
    'scratch-url': { type: 'string' as const, arg: 'URL', description: 'verify: server for the scratch database (default: --database-url server).' },
    'scratch-url-env': { type: 'string' as const, arg: 'VAR', description: 'verify: environment variable holding the scratch server URL.' },
    check: { type: 'boolean' as const, description: 'list: recompute every dump checksum (reads every dump).' },
    clean: { type: 'boolean' as const, description: 'restore: drop and recreate the objects of the backup in a non-empty target.' },
    yes: { type: 'boolean' as const, description: 'restore: do not ask for confirmation (required when stdin is not a terminal).' },
    'dry-run': { type: 'boolean' as const, description: 'create/restore/prune: show what would happen, change nothing.' },
    'keep-daily': { type: 'string' as const, arg: 'N', description: 'prune: days to keep one backup for.' },
    'keep-weekly': { type: 'string' as const, arg: 'N', description: 'prune: ISO weeks to keep one backup for.' },
    'keep-monthly': { type: 'string' as const, arg: 'N', description: 'prune: months to keep one backup for.' },
    'as-of': { type: 'string' as const, arg: 'TIME', description: 'prune: apply the policy as of this UTC time (ISO 8601) instead of now, e.g. to preview with --dry-run.' },
    's3-endpoint': { type: 'string' as const, arg: 'URL', description: 'S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS).' },
    's3-region': { type: 'string' as const, arg: 'REGION', description: 'S3 region (default: AWS_REGION, else us-east-1).' },
    's3-access-key-env': { type: 'string' as const, arg: 'VAR', description: 'Environment variable holding the S3 access key id (default: AWS_ACCESS_KEY_ID).' },
    's3-secret-key-env': { type: 'string' as const, arg: 'VAR', description: 'Environment variable holding the S3 secret key (default: AWS_SECRET_ACCESS_KEY).' },
  },
  examples: [
    'PGPASSWORD=... npx zx scripts/backup.ts create --database-url postgresql://conduit@db:5432/conduit --to /var/backups/conduit',
    'AWS_ENDPOINT_URL=https://s3.example.com npx zx scripts/backup.ts create --database-url-env DATABASE_URL --to s3://backups/conduit',
    'npx zx scripts/backup.ts verify --from s3://backups/conduit --scratch-url postgresql://postgres@db-scratch:5432/postgres',
    'npx zx scripts/backup.ts restore --from /var/backups/conduit --backup 20260301T020000Z-a1b2c3 --database-url postgresql://conduit@db/conduit --clean',
    'npx zx scripts/backup.ts prune --from s3://backups/conduit --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run',
    'kubectl port-forward -n conduit svc/conduit-pg-rw 15432:5432 &  PGPASSWORD=... npx zx scripts/backup.ts restore --cluster prod-eu --from s3://backups/conduit --backup 20260301T020000Z-a1b2c3 --database-url postgresql://conduit@127.0.0.1:15432/conduit --clean --dry-run',
  ],
  notes: [
    'Secrets: passwords travel to pg_dump/pg_restore/psql in PGPASSWORD, never as arguments; URLs are shown without passwords.',
    'S3 credentials come from the standard AWS_* environment variables or the variables named by --s3-*-env.',
    '--cluster does not reach the database by itself: pass --database-url/--database-url-env pointing at a host this machine',
    'reaches, usually your own `kubectl port-forward svc/RELEASE-conduit-pg-rw 15432:5432` (see docs/runbooks/restore.md).',
    'restore --cluster records the replica counts of api and admin, scales them to 0, waits for their pods to go, restores, and',
    'puts the counts back (also when the restore fails), holding the deploy Lease conduit-deploy-lock; it asks for confirmation',
    'on protected clusters (--yes without a terminal) and writes an audit entry to the ConfigMap conduit-audit.',
    '',
    RETENTION_POLICY_TEXT,
  ],
};

type Flags = ParsedFlags<typeof spec.flags>;
/** Flags that take a string value. */
type StringFlag = { [K in keyof Flags]: Flags[K] extends string | undefined ? K : never }[keyof Flags];

function s3Options(flags: Flags): S3Options {
  return { endpoint: flags['s3-endpoint'], region: flags['s3-region'], accessKeyEnv: flags['s3-access-key-env'], secretKeyEnv: flags['s3-secret-key-env'] };
}

function readUrl(flags: Flags, flag: 'database-url' | 'scratch-url', envFlag: 'database-url-env' | 'scratch-url-env', reporter: Reporter): PgConnection | undefined {
  const direct = flags[flag];
  const envName = flags[envFlag];
  if (direct && envName) throw usageError(`--${flag} and --${envFlag} exclude each other`);
  registerSecret(process.env.PGPASSWORD);
  if (envName) {
    const v = process.env[envName];
    if (!v) throw usageError(`--${envFlag} ${envName}: the variable is not set`, `export ${envName}=postgresql://USER:PASSWORD@HOST:PORT/DB`);
    return parseDatabaseUrl(v, `$${envName}`);
  }
  if (!direct) return undefined;
  const c = parseDatabaseUrl(direct, `--${flag}`);
  if (c.password) reporter.warn(`--${flag} contains a password, which other users can see in the process list; use PGPASSWORD or --${envFlag} instead.`);
  return c;
}

function requireFlag(flags: Flags, name: StringFlag, verb: string): string {
  const v = flags[name];
  if (typeof v !== 'string' || !v) throw usageError(`${verb} needs --${name}`, `Run: npx zx scripts/backup.ts --help`);
  return v;
}

/**
 * The registry entry of --cluster as a kube target, and a client for it (API server checked; with
 * `use`, every permission that needs too, before anything is read or changed: docs/rbac.md).
 */
async function clusterTarget(f: Flags, use?: 'backup create' | 'backup restore'): Promise<{ target: RunbookTarget; kube: Kube }> {
  const [{ loadRegistry, selectClusters }, { connectKube, resolveTarget }] = await Promise.all([import('./lib/domain/clusters.ts'), import('./lib/domain/target.ts')]);
  const [cluster] = selectClusters(loadRegistry(f.registry), { cluster: f.cluster });
  const target: RunbookTarget = resolveTarget(cluster);
  const kube = await connectKube({ context: target.context, kubeconfig: target.kubeconfig });
  if (!(await kube.reachable(10_000))) {
    throw new UserError(`the API server of context ${target.context} is not reachable`, {
      hint: cluster.name === 'local' ? 'Start it: npx zx scripts/cluster.ts up' : 'Check the kube context and your connection.',
    });
  }
  if (use) await (await import('./lib/domain/permission-check.ts')).requirePermissions(kube, use, target);
  return { target, kube };
}

/** --check-permissions: whether this identity may run create/restore --cluster; changes nothing. */
async function checkClusterPermissions(verb: string | undefined, f: Flags, reporter: Reporter): Promise<number> {
  if (!f.cluster || (verb !== 'create' && verb !== 'restore'))
    throw usageError('--check-permissions goes with create or restore and --cluster NAME', 'e.g. npx zx scripts/backup.ts restore --cluster prod-eu --check-permissions');
  const { target, kube } = await clusterTarget(f);
  return (await import('./lib/domain/permission-check.ts')).reportPermissions(kube, `backup ${verb}`, target, reporter);
}

async function explainKube(e: unknown, what: string, t: RunbookTarget): Promise<never> {
  const { explainKubeError, isKubeError } = await import('./lib/adapters/kube.ts');
  if (isKubeError(e)) throw explainKubeError(e, `${what} on ${t.cluster}`, { context: t.context, kubeconfig: t.kubeconfig });
  throw e;
}

function stateLabel(b: BackupInfo): string {
  if (b.state !== 'valid') return b.state;
  const v = b.lastVerify ? (b.lastVerify.passed ? ', verify passed' : ', VERIFY FAILED') : '';
  return `valid${b.checksumChecked ? ' (checksum ok)' : ''}${v}`;
}

function age(t: Date, now = Date.now()): string {
  const s = Math.max(0, (now - t.getTime()) / 1000);
  if (s < 120) return `${Math.round(s)}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

function tablesReport(tables: TableComparison[]): string {
  return table(
    ['table', 'rows (backup)', 'rows (restored)', 'checksum', 'result'],
    tables.map((t) => [`${t.schema}.${t.table}`, t.expectedRows ?? '-', t.actualRows ?? '-', t.checksumMatch ? 'match' : 'DIFFERS', t.passed ? 'pass' : 'FAIL']),
  );
}

async function confirm(question: string, expected: string): Promise<boolean> {
  return (await askOnTerminal(question)) === expected;
}

function restoreSummary(result: RestoreResult): string {
  return [
    tablesReport(result.tables),
    '',
    `${result.passed ? 'Restored' : 'Restored, but tables DIFFER from the backup'}: ${result.id} into ${result.target} ` +
      `(checksum ${formatMs(result.seconds.checksum * 1000)}, restore ${formatMs(result.seconds.restore * 1000)}).`,
  ].join('\n');
}

/** restore --cluster: the restore with the release's writers stopped (see lib/restorecluster.ts). */
async function restoreOnCluster(f: Flags, reporter: Reporter): Promise<number> {
  const storage = openStorage(requireFlag(f, 'from', 'restore'), s3Options(f));
  const id = requireFlag(f, 'backup', 'restore');
  const target = readUrl(f, 'database-url', 'database-url-env', reporter);
  if (!target) {
    throw usageError(
      'restore --cluster needs --database-url or --database-url-env as well',
      'Reach the database from here first, e.g. kubectl port-forward svc/RELEASE-conduit-pg-rw 15432:5432, then --database-url postgresql://USER@127.0.0.1:15432/DB with PGPASSWORD set.',
    );
  }
  const timeoutSeconds = durationSeconds(f.timeout ?? '5m');
  const backup = await findBackup(storage, id);
  const { target: cluster, kube } = await clusterTarget(f, f['dry-run'] ? undefined : 'backup restore');
  const { describeClusterRestore, planClusterRestore, readWorkload, runClusterRestore } = await import('./lib/engines/backup-cluster.ts');
  try {
    const workload = await readWorkload(kube, cluster);
    const cplan = planClusterRestore(cluster, workload, { pauseAutoscaling: f['pause-autoscaling'] });
    const plan = planRestore(backup, target, f.clean, { describe: () => cplan.before, before: async () => undefined, after: async () => undefined });
    const lines = describeClusterRestore(
      cplan,
      plan.steps.map((s, i) => `${i + 1}. ${s}`),
    );
    const planText = [`Restore ${plan.id} into ${plan.target} ${lines[0]}`, ...lines.slice(1).map((l) => `  ${l}`)].join('\n');
    const planJson = {
      ...plan,
      cluster: { name: cluster.cluster, context: cluster.context, namespace: cluster.namespace, release: cluster.release, protected: cluster.protected },
      lock: cplan.lock,
      replicas: Object.fromEntries(workload.deployments.map((d) => [d.component, d.replicas])),
      hpas: workload.hpas.map((h) => ({ name: h.name, component: h.component, min: h.min, max: h.max })),
      after: cplan.after,
    };
    if (f['dry-run']) {
      reporter.result(`Dry run: nothing was changed.\n\n${planText}`, { ok: true, dryRun: true, plan: planJson });
      return 0;
    }
    await confirmClusterRestore(f, reporter, { planText, database: target.database, cluster });
    const back = workload.deployments.map((d) => `${d.component} ${d.replicas}`).join(', ');
    const out = await whileGuardingInterrupts(reporter, back, () =>
      reporter.step(`restore ${backup.id} into ${plan.target} with ${workload.deployments.map((d) => d.component).join(' and ')} of ${cluster.release} stopped`, (progress) =>
        runClusterRestore({ kube, plan: cplan, storage, backup, target, clean: f.clean, timeoutSeconds, progress }),
      ),
    );
    reporter.result(
      `${restoreSummary(out.result)}\nReplicas back to ${back}${workload.hpas.length ? `; ${workload.hpas.length} HPA(s) re-created` : ''}; audit entry written to conduit-audit in ${cluster.namespace}.`,
      {
        ok: out.result.passed,
        ...out.result,
        cluster: cluster.cluster,
        replicas: planJson.replicas,
        steps: out.steps,
      },
    );
    return out.result.passed ? 0 : 1;
  } catch (e) {
    return explainKube(e, 'restore', cluster);
  }
}

/** restore --cluster: --yes, or the database name typed on a terminal (the plan is shown either way). */
async function confirmClusterRestore(f: Flags, reporter: Reporter, o: { planText: string; database: string; cluster: RunbookTarget }): Promise<void> {
  if (!f.yes) {
    const where = o.cluster.protected ? ` on the protected cluster ${o.cluster.cluster}` : '';
    if (!process.stdin.isTTY)
      throw usageError(
        `restore${where} stops the application and changes its database, and stdin is not a terminal: pass --yes to confirm`,
        'Review the plan with --dry-run first. Nothing was changed.',
      );
    reporter.info(o.planText);
    if (!(await confirm(`Type the database name (${o.database}) to restore into it${where}: `, o.database))) {
      throw new UserError('not confirmed; nothing was changed', { exitCode: 1 });
    }
  }
  if (f.yes) reporter.info(o.planText);
}

/**
 * Ctrl-C must not leave the application at zero: the first one only stops pg_restore (the terminal
 * signals it too; its transaction rolls back), the replica counts are still put back; a second one exits.
 */
async function whileGuardingInterrupts<T>(reporter: Reporter, replicas: string, fn: () => Promise<T>): Promise<T> {
  let interrupts = 0;
  const onInterrupt = () => {
    if (++interrupts > 1) process.exit(130);
    reporter.warn(`interrupted: putting ${replicas} back first (Ctrl-C again to exit at once and scale by hand)`);
  };
  process.on('SIGINT', onInterrupt);
  return fn().finally(() => process.off('SIGINT', onInterrupt));
}

/** create --cluster: the release and revision the data belongs to (read only; works in --dry-run too). */
async function releaseSource(f: Flags): Promise<{ source: Record<string, unknown>; line: string }> {
  const { target } = await clusterTarget(f, 'backup create');
  const [{ helmClient }, { helmScopeOf, requireRelease }, { helmMajor }] = await Promise.all([import('./lib/domain/target.ts'), import('./lib/engines/runbook.ts'), import('./lib/adapters/helm.ts')]);
  const helm = await helmClient(helmMajor(f.helm), helmScopeOf(target));
  const rel = await requireRelease({ target, helm }).catch((e) => explainKube(e, 'helm status', target));
  return {
    source: { cluster: target.cluster, namespace: target.namespace, release: rel.name, revision: rel.version },
    line: `source: release ${rel.name} revision ${rel.version} in ${target.namespace} (${target.cluster})`,
  };
}

async function createVerb(f: Flags, reporter: Reporter): Promise<number> {
  const connection = readUrl(f, 'database-url', 'database-url-env', reporter);
  if (!connection) throw usageError('create needs --database-url, --database-url-env or --cluster');
  const storage = openStorage(requireFlag(f, 'to', 'create'), s3Options(f));
  const plan = planCreate({ connection, storage });
  let source: Record<string, unknown> | undefined;
  if (f.cluster) {
    const found = await releaseSource(f);
    source = found.source;
    plan.files.push(found.line);
  }
  if (f['dry-run']) {
    reporter.result([`Would back up ${plan.server} to ${plan.destination}:`, ...plan.files.map((x) => `  ${x}`), `  via ${plan.dumpCommand.join(' ')}`].join('\n'), { ok: true, dryRun: true, plan });
    return 0;
  }
  const { manifest, seconds } = await reporter.step(`backup ${plan.server} -> ${storage.display}`, (progress) => createBackup({ connection, storage, progress, id: plan.id, source }));
  const rows = manifest.tables.reduce((n, t) => n + t.rows, 0);
  reporter.result(
    [
      `Backup ${manifest.id} created in ${storage.display}`,
      `  ${formatBytes(manifest.dump.size)} in ${seconds.toFixed(1)}s (${(manifest.dump.size / 1e6 / Math.max(seconds, 0.001)).toFixed(1)} MB/s), sha256 ${manifest.dump.sha256}`,
      `  ${manifest.tables.length} tables, ${rows} rows; PostgreSQL ${manifest.serverVersion}, pg_dump ${manifest.pgDumpVersion}`,
    ].join('\n'),
    { ok: true, id: manifest.id, seconds, manifest },
  );
  return 0;
}

async function listVerb(f: Flags, reporter: Reporter): Promise<number> {
  const storage = openStorage(requireFlag(f, 'from', 'list'), s3Options(f));
  const all = await reporter.step(`list ${storage.display}`, (progress) => listBackups(storage, { checksums: f.check, progress }));
  const human = all.length
    ? table(
        ['id', 'age', 'size', 'tables', 'state'],
        all.map((b) => [b.id, age(b.time), formatBytes(b.size), b.manifest ? b.manifest.tables.length : '-', stateLabel(b) + (b.problems.length ? `: ${b.problems.join('; ')}` : '')]),
      )
    : `No backups in ${storage.display}.`;
  const bad = all.filter((b) => b.state === 'corrupt').length;
  reporter.result(human, {
    ok: bad === 0,
    backups: all.map((b) => ({
      id: b.id,
      time: b.time.toISOString(),
      state: b.state,
      size: b.size,
      problems: b.problems,
      checksumChecked: b.checksumChecked,
      lastVerify: b.lastVerify,
      sha256: b.manifest?.dump.sha256,
      tables: b.manifest?.tables.length,
    })),
  });
  return f.check && bad > 0 ? 1 : 0;
}

async function verifyVerb(f: Flags, reporter: Reporter): Promise<number> {
  const storage = openStorage(requireFlag(f, 'from', 'verify'), s3Options(f));
  const scratch = readUrl(f, 'scratch-url', 'scratch-url-env', reporter) ?? readUrl(f, 'database-url', 'database-url-env', reporter);
  if (!scratch) throw usageError('verify needs a server for the scratch database', 'Pass --scratch-url (or --database-url) postgresql://USER@HOST:PORT/postgres; the user needs CREATEDB.');
  const backup = await findBackup(storage, f.backup);
  const result = await reporter.step(`verify ${backup.id} (scratch database on ${describeConnection(scratch)})`, (progress) => verifyBackup({ storage, backup, scratch, progress }));
  const failed = result.tables.filter((t) => !t.passed);
  reporter.result(
    [
      tablesReport(result.tables),
      '',
      `${result.passed ? 'PASS' : 'FAIL'}: backup ${result.id}: checksum ok, ${result.tables.length - failed.length}/${result.tables.length} tables match` +
        ` (checksum ${formatMs(result.seconds.checksum * 1000)}, restore ${formatMs(result.seconds.restore * 1000)}, compare ${formatMs(result.seconds.compare * 1000)}); scratch database dropped.`,
    ].join('\n'),
    { ok: result.passed, ...result },
  );
  return result.passed ? 0 : 1;
}

async function restoreVerb(f: Flags, reporter: Reporter): Promise<number> {
  if (f.cluster) return restoreOnCluster(f, reporter);
  const storage = openStorage(requireFlag(f, 'from', 'restore'), s3Options(f));
  const id = requireFlag(f, 'backup', 'restore');
  const target = readUrl(f, 'database-url', 'database-url-env', reporter);
  if (!target) throw usageError('restore needs --database-url or --database-url-env (the target database)');
  const backup = await findBackup(storage, id);
  const plan = planRestore(backup, target, f.clean);
  const planText = [`Restore ${plan.id} into ${plan.target}:`, ...plan.steps.map((s, i) => `  ${i + 1}. ${s}`)].join('\n');
  if (f['dry-run']) {
    reporter.result(planText, { ok: true, dryRun: true, plan });
    return 0;
  }
  if (!f.yes) {
    if (!process.stdin.isTTY) throw usageError('restore changes a database and stdin is not a terminal: pass --yes to confirm', 'Review the plan with --dry-run first.');
    reporter.info(planText);
    if (!(await confirm(`Type the database name (${target.database}) to restore into it: `, target.database))) {
      throw new UserError('not confirmed; nothing was restored', { exitCode: 1 });
    }
  }
  const result = await reporter.step(`restore ${backup.id} into ${plan.target}`, (progress) => restoreBackup({ storage, backup, target, clean: f.clean, progress }));
  reporter.result(restoreSummary(result), { ok: result.passed, ...result });
  return result.passed ? 0 : 1;
}

const KEEP_FLAGS = { daily: 'keep-daily', weekly: 'keep-weekly', monthly: 'keep-monthly' } as const;

/** The retention policy of prune's --keep-* flags (whole numbers >= 0). */
function retentionPolicy(f: Flags): { daily: number; weekly: number; monthly: number } {
  const policy = {
    daily: Number(requireFlag(f, KEEP_FLAGS.daily, 'prune')),
    weekly: Number(requireFlag(f, KEEP_FLAGS.weekly, 'prune')),
    monthly: Number(requireFlag(f, KEEP_FLAGS.monthly, 'prune')),
  };
  for (const k of Object.keys(KEEP_FLAGS) as (keyof typeof KEEP_FLAGS)[]) {
    if (!Number.isInteger(policy[k]) || policy[k] < 0) throw usageError(`--keep-${k} must be a whole number >= 0 (got "${f[KEEP_FLAGS[k]]}")`);
  }
  return policy;
}

async function pruneVerb(f: Flags, reporter: Reporter): Promise<number> {
  const storage = openStorage(requireFlag(f, 'from', 'prune'), s3Options(f));
  const policy = retentionPolicy(f);
  const dryRun = f['dry-run'];
  const now = f['as-of'] ? new Date(f['as-of']) : new Date();
  if (Number.isNaN(now.getTime())) throw usageError(`--as-of "${f['as-of']}" is not a time`, 'Use ISO 8601, e.g. 2026-03-15T12:00:00Z.');
  const { decisions, deleted, staleUploads } = await reporter.step(`prune ${storage.display}${dryRun ? ' (dry run)' : ''}`, () => pruneBackups({ storage, policy, dryRun, now }));
  const kept = decisions.filter((d) => d.action === 'keep');
  const dropped = decisions.filter((d) => d.action === 'delete');
  reporter.result(
    [
      table(
        ['id', 'action', 'why'],
        decisions.map((d) => [d.id, d.action === 'keep' ? 'keep' : dryRun ? 'would delete' : 'deleted', d.reasons.join(', ')]),
      ),
      '',
      `${kept.length} kept, ${dropped.length} ${dryRun ? 'would be deleted (dry run)' : 'deleted'}` +
        (staleUploads.length ? `; ${staleUploads.length} unfinished multipart upload(s) ${dryRun ? 'would be aborted' : 'aborted'} (${staleUploads.join(', ')})` : '') +
        '.',
    ].join('\n'),
    { ok: true, dryRun, asOf: now.toISOString(), policy, kept: kept.map((d) => d.id), deleted: dryRun ? [] : deleted, wouldDelete: dryRun ? dropped.map((d) => d.id) : [], staleUploads, decisions },
  );
  return 0;
}

const VERBS: Record<string, (f: Flags, reporter: Reporter) => Promise<number>> = {
  create: createVerb,
  list: listVerb,
  verify: verifyVerb,
  restore: restoreVerb,
  prune: pruneVerb,
};

await runCommand(spec, async ({ flags, positionals, reporter }) => {
  const [verb, ...extra] = positionals;
  if (extra.length) throw usageError(`unexpected arguments: ${extra.join(' ')}`);
  if (!flags.cluster) {
    const stray = (['registry', 'pause-autoscaling', 'timeout', 'helm'] as const).filter((k) => flags[k] !== undefined && flags[k] !== false);
    if (stray.length) throw usageError(`${stray.map((k) => `--${k}`).join(', ')} only go${stray.length === 1 ? 'es' : ''} with --cluster NAME`, 'See npx zx scripts/backup.ts --help.');
  }
  if (flags['check-permissions']) return checkClusterPermissions(verb, flags, reporter);
  const run = verb !== undefined && Object.hasOwn(VERBS, verb) ? VERBS[verb] : undefined;
  if (!run) throw usageError(verb ? `unknown verb "${verb}"` : 'no verb given', 'Verbs: create, list, verify, restore, prune (see --help).');
  return run(flags, reporter);
});
