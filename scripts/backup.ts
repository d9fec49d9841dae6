#!/usr/bin/env -S npx zx
// backup.ts: backups of the ConduitLLM database (create, list, verify, restore, prune).
// The logic lives in lib/backups.ts; this file parses flags, shows plans and reports.
import readline from 'node:readline/promises';
import { runCommand } from './lib/cli.ts';
import { UserError, usageError } from './lib/errors.ts';
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
  type TableComparison,
} from './lib/backups.ts';
import { describeConnection, parseDatabaseUrl, type PgConnection } from './lib/pg.ts';
import { registerSecret } from './lib/redact.ts';
import { openStorage, type S3Options } from './lib/storage.ts';
import { formatMs, table, type Reporter } from './lib/ui.ts';

const spec = {
  name: 'backup.ts',
  summary: 'Create, list, verify, restore and prune PostgreSQL backups of ConduitLLM (local directory or S3).',
  usage: [
    'npx zx scripts/backup.ts create (--database-url URL | --database-url-env VAR | --cluster NAME) --to DEST',
    'npx zx scripts/backup.ts list --from DEST [--check]',
    'npx zx scripts/backup.ts verify --from DEST [--backup ID] [--scratch-url URL | --database-url URL]',
    'npx zx scripts/backup.ts restore --from DEST --backup ID --database-url URL [--clean] [--yes] [--dry-run]',
    'npx zx scripts/backup.ts prune --from DEST --keep-daily N --keep-weekly N --keep-monthly N [--dry-run]',
  ],
  verbs: {
    create: 'Dump the database (pg_dump custom format) inside one snapshot, with per-table row counts and checksums; manifest written last.',
    list: 'Show the backups in a destination with age, size and state (valid, incomplete, corrupt); --check recomputes checksums.',
    verify: 'Check the sha256, restore into a scratch database, compare every table with the manifest, drop the scratch database.',
    restore: 'Restore a backup into a database (checksum first; refuses a non-empty target without --clean).',
    prune: 'Delete backups the retention policy drops (see below); --dry-run shows the decision only.',
  },
  flags: {
    'database-url': { type: 'string' as const, arg: 'URL', description: 'postgresql://USER@HOST:PORT/DB (password: PGPASSWORD env, not the URL).' },
    'database-url-env': { type: 'string' as const, arg: 'VAR', description: 'Name of an environment variable holding the database URL (may include the password).' },
    cluster: { type: 'string' as const, arg: 'NAME', description: 'Take the database from a cluster of values/clusters.yaml (not available yet).' },
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
  ],
  notes: [
    'Secrets: passwords travel to pg_dump/pg_restore/psql in PGPASSWORD, never as arguments; URLs are shown without passwords.',
    'S3 credentials come from the standard AWS_* environment variables or the variables named by --s3-*-env.',
    '',
    RETENTION_POLICY_TEXT,
  ],
};

type Flags = Record<string, string | boolean | string[] | undefined>;

function s3Options(flags: Flags): S3Options {
  return {
    endpoint: flags['s3-endpoint'] as string | undefined,
    region: flags['s3-region'] as string | undefined,
    accessKeyEnv: flags['s3-access-key-env'] as string | undefined,
    secretKeyEnv: flags['s3-secret-key-env'] as string | undefined,
  };
}

function readUrl(flags: Flags, flag: string, envFlag: string, reporter: Reporter): PgConnection | undefined {
  const direct = flags[flag] as string | undefined;
  const envName = flags[envFlag] as string | undefined;
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

function requireFlag(flags: Flags, name: string, verb: string): string {
  const v = flags[name];
  if (typeof v !== 'string' || !v) throw usageError(`${verb} needs --${name}`, `Run: npx zx scripts/backup.ts --help`);
  return v;
}

function clusterNotAvailable(): never {
  throw new UserError('--cluster is not available yet: it needs the cluster registry (values/clusters.yaml) and kubectl port-forward', {
    hint: 'Port-forward the database yourself and pass --database-url postgresql://USER@127.0.0.1:PORT/DB with PGPASSWORD set.',
    exitCode: 2,
  });
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
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(question)).trim() === expected;
  } finally {
    rl.close();
  }
}

await runCommand(spec, async ({ flags, positionals, reporter }) => {
  const [verb, ...extra] = positionals;
  if (extra.length) throw usageError(`unexpected arguments: ${extra.join(' ')}`);
  const f = flags as unknown as Flags;

  if (verb === 'create') {
    if (f.cluster) clusterNotAvailable();
    const connection = readUrl(f, 'database-url', 'database-url-env', reporter);
    if (!connection) throw usageError('create needs --database-url, --database-url-env or --cluster');
    const storage = openStorage(requireFlag(f, 'to', 'create'), s3Options(f));
    const plan = planCreate({ connection, storage });
    if (f['dry-run']) {
      reporter.result(
        [`Would back up ${plan.server} to ${plan.destination}:`, ...plan.files.map((x) => `  ${x}`), `  via ${plan.dumpCommand.join(' ')}`].join('\n'),
        { ok: true, dryRun: true, plan },
      );
      return 0;
    }
    const { manifest, seconds } = await reporter.step(`backup ${plan.server} -> ${storage.display}`, (progress) =>
      createBackup({ connection, storage, progress, id: plan.id }),
    );
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

  if (verb === 'list') {
    const storage = openStorage(requireFlag(f, 'from', 'list'), s3Options(f));
    const all = await reporter.step(`list ${storage.display}`, (progress) => listBackups(storage, { checksums: Boolean(f.check), progress }));
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
        id: b.id, time: b.time.toISOString(), state: b.state, size: b.size, problems: b.problems, checksumChecked: b.checksumChecked, lastVerify: b.lastVerify,
        sha256: b.manifest?.dump.sha256, tables: b.manifest?.tables.length,
      })),
    });
    return f.check && bad > 0 ? 1 : 0;
  }

  if (verb === 'verify') {
    const storage = openStorage(requireFlag(f, 'from', 'verify'), s3Options(f));
    const scratch = readUrl(f, 'scratch-url', 'scratch-url-env', reporter) ?? readUrl(f, 'database-url', 'database-url-env', reporter);
    if (!scratch) throw usageError('verify needs a server for the scratch database', 'Pass --scratch-url (or --database-url) postgresql://USER@HOST:PORT/postgres; the user needs CREATEDB.');
    const backup = await findBackup(storage, f.backup as string | undefined);
    const result = await reporter.step(`verify ${backup.id} (scratch database on ${describeConnection(scratch)})`, (progress) =>
      verifyBackup({ storage, backup, scratch, progress }),
    );
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

  if (verb === 'restore') {
    if (f.cluster) clusterNotAvailable();
    const storage = openStorage(requireFlag(f, 'from', 'restore'), s3Options(f));
    const id = requireFlag(f, 'backup', 'restore');
    const target = readUrl(f, 'database-url', 'database-url-env', reporter);
    if (!target) throw usageError('restore needs --database-url or --database-url-env (the target database)');
    const backup = await findBackup(storage, id);
    const plan = planRestore(backup, target, Boolean(f.clean));
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
    const result = await reporter.step(`restore ${backup.id} into ${plan.target}`, (progress) => restoreBackup({ storage, backup, target, clean: Boolean(f.clean), progress }));
    reporter.result(
      [
        tablesReport(result.tables),
        '',
        `${result.passed ? 'Restored' : 'Restored, but tables DIFFER from the backup'}: ${result.id} into ${result.target} ` +
          `(checksum ${formatMs(result.seconds.checksum * 1000)}, restore ${formatMs(result.seconds.restore * 1000)}).`,
      ].join('\n'),
      { ok: result.passed, ...result },
    );
    return result.passed ? 0 : 1;
  }

  if (verb === 'prune') {
    const storage = openStorage(requireFlag(f, 'from', 'prune'), s3Options(f));
    const policy = {
      daily: Number(requireFlag(f, 'keep-daily', 'prune')),
      weekly: Number(requireFlag(f, 'keep-weekly', 'prune')),
      monthly: Number(requireFlag(f, 'keep-monthly', 'prune')),
    };
    for (const [k, v] of Object.entries(policy)) {
      if (!Number.isInteger(v) || v < 0) throw usageError(`--keep-${k} must be a whole number >= 0 (got "${f[`keep-${k}`]}")`);
    }
    const dryRun = Boolean(f['dry-run']);
    const now = f['as-of'] ? new Date(f['as-of'] as string) : new Date();
    if (Number.isNaN(now.getTime())) throw usageError(`--as-of "${f['as-of']}" is not a time`, 'Use ISO 8601, e.g. 2026-03-15T12:00:00Z.');
    const { decisions, deleted, staleUploads } = await reporter.step(`prune ${storage.display}${dryRun ? ' (dry run)' : ''}`, () => pruneBackups({ storage, policy, dryRun, now }));
    const kept = decisions.filter((d) => d.action === 'keep');
    const dropped = decisions.filter((d) => d.action === 'delete');
    reporter.result(
      [
        table(['id', 'action', 'why'], decisions.map((d) => [d.id, d.action === 'keep' ? 'keep' : dryRun ? 'would delete' : 'deleted', d.reasons.join(', ')])),
        '',
        `${kept.length} kept, ${dropped.length} ${dryRun ? 'would be deleted (dry run)' : 'deleted'}` +
          (staleUploads.length ? `; ${staleUploads.length} unfinished multipart upload(s) ${dryRun ? 'would be aborted' : 'aborted'} (${staleUploads.join(', ')})` : '') + '.',
      ].join('\n'),
      { ok: true, dryRun, asOf: now.toISOString(), policy, kept: kept.map((d) => d.id), deleted: dryRun ? [] : deleted, wouldDelete: dryRun ? dropped.map((d) => d.id) : [], staleUploads, decisions },
    );
    return 0;
  }

  throw usageError(verb ? `unknown verb "${verb}"` : 'no verb given', 'Verbs: create, list, verify, restore, prune (see --help).');
});
