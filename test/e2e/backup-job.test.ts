// The chart's in-cluster backup job script (chart/files/backup/backup.sh), run locally with a
// POSIX shell against the same real PostgreSQL and S3 server: `backup.ts verify` accepts its backup.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../scripts/lib/core/exec.ts';
import { repoPath } from '../../scripts/lib/core/paths.ts';
import { tool } from '../../scripts/lib/adapters/tools.ts';
import { backupCli, loadDataset } from './backup-data.ts';
import { postgresBinDir, startPostgres, startS3, type PostgresServer, type S3Server } from './services.ts';

const t = suite('backup job script');
const SCRIPT = repoPath('chart', 'files', 'backup', 'backup.sh');
let pg: PostgresServer;
let s3: S3Server;
let work: string;
let rcloneDir: string;

t.before(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  await loadDataset(pg, 'conduit');
  rcloneDir = path.dirname(await tool('rclone'));
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-job-'));
});

t.after(async () => {
  await Promise.all([pg?.stop(), s3?.stop()]);
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** Run a step of the job like its container would: POSIX sh (dash), a minimal PATH, env only. */
function step(name: 'dump' | 'upload', env: Record<string, string>) {
  // Only the variables a pod would get: no inherited AWS_/PG settings of this process.
  const clean: Record<string, string | undefined> = {};
  for (const k of Object.keys(process.env)) if (/^(PG|AWS_|RCLONE_|BACKUP_)/.test(k)) clean[k] = undefined;
  const PATH = name === 'dump' ? `${postgresBinDir()}:/usr/bin:/bin` : `${rcloneDir}:/usr/bin:/bin`;
  return run('/bin/dash', [SCRIPT, name], { env: { ...clean, PATH, ...env }, timeoutMs: 120_000 });
}

t('dump + upload produce a backup that list and verify accept', async () => {
  const emptyDir = path.join(work, 'emptydir');
  fs.mkdirSync(emptyDir);
  const dump = await step('dump', {
    PGHOST: '127.0.0.1',
    PGPORT: String(pg.port),
    PGUSER: pg.user,
    PGPASSWORD: pg.password,
    PGDATABASE: 'conduit',
    BACKUP_DIR: emptyDir,
    BACKUP_RELEASE: 'conduit',
    BACKUP_NAMESPACE: 'conduit-prod',
    BACKUP_REVISION: '7',
  });
  assert.is(dump.exitCode, 0, dump.stderr);
  const id = fs.readFileSync(path.join(emptyDir, 'backup-id'), 'utf8').trim();
  assert.match(id, /^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
  assert.not.ok(dump.stderr.includes(pg.password), 'the password is not logged');
  const manifest = JSON.parse(fs.readFileSync(path.join(emptyDir, id, 'manifest.json'), 'utf8'));
  assert.equal(manifest.source, { kind: 'cronjob', release: 'conduit', namespace: 'conduit-prod', revision: 7 });
  assert.is(manifest.dump.size, fs.statSync(path.join(emptyDir, id, 'dump.pgc')).size);

  const dest = `s3://${s3.bucket}/cluster/prod`;
  const before = await backupCli(['list', '--from', dest, '--json'], s3.env);
  assert.equal(before.json.backups, [], 'the dump step alone uploads nothing');

  const upload = await step('upload', { BACKUP_DIR: emptyDir, BACKUP_DEST: dest, ...s3.env });
  assert.is(upload.exitCode, 0, upload.stderr);
  assert.not.ok(upload.stderr.includes(s3.secretAccessKey), 'the S3 secret is not logged');

  const listed = await backupCli(['list', '--from', dest, '--check', '--json'], s3.env);
  assert.equal(
    listed.json.backups.map((b: { id: string; state: string }) => [b.id, b.state]),
    [[id, 'valid']],
  );
  const verified = await backupCli(['verify', '--from', dest, '--backup', id, '--scratch-url', pg.url('postgres'), '--json'], { ...s3.env, ...pg.env });
  assert.is(verified.exitCode, 0, verified.stdout + verified.stderr);
  assert.is(verified.json.passed, true);
  assert.is(verified.json.tables.length, 6);
});

t('the job fails clearly and uploads nothing when the dump fails', async () => {
  const emptyDir = path.join(work, 'failing');
  fs.mkdirSync(emptyDir);
  const dump = await step('dump', {
    PGHOST: '127.0.0.1',
    PGPORT: String(pg.port),
    PGUSER: pg.user,
    PGPASSWORD: 'not-the-password',
    PGDATABASE: 'conduit',
    BACKUP_DIR: emptyDir,
  });
  assert.is(dump.exitCode, 1);
  assert.match(dump.stderr, /backup: error: could not open a snapshot: .*password authentication failed/s);
  assert.not.ok(dump.stderr.includes('not-the-password'));
  const upload = await step('upload', { BACKUP_DIR: emptyDir, BACKUP_DEST: `s3://${s3.bucket}/cluster/failing`, ...s3.env });
  assert.is(upload.exitCode, 1);
  assert.match(upload.stderr, /no finished dump/);
});

t('a bad id tag or kind is refused before anything is dumped', async () => {
  const emptyDir = path.join(work, 'badtag');
  fs.mkdirSync(emptyDir);
  const base = { PGHOST: '127.0.0.1', PGPORT: String(pg.port), PGUSER: pg.user, PGPASSWORD: pg.password, PGDATABASE: 'conduit', BACKUP_DIR: emptyDir };
  const tag = await step('dump', { ...base, BACKUP_ID_TAG: 'Pre-Upgrade' });
  assert.is(tag.exitCode, 1);
  assert.match(tag.stderr, /BACKUP_ID_TAG must be lowercase letters only/);
  const long = await step('dump', { ...base, BACKUP_ID_TAG: 'preupgradexx' });
  assert.match(long.stderr, /BACKUP_ID_TAG must be at most 10 letters/);
  const kind = await step('dump', { ...base, BACKUP_KIND: 'manual' });
  assert.match(kind.stderr, /BACKUP_KIND must be cronjob or pre-upgrade/);
  assert.equal(fs.readdirSync(emptyDir), []);
});

t('the job script passes shellcheck as POSIX sh', async () => {
  // shellcheck comes from Debian's package of that name (installed by the CI script).
  const r = await run('shellcheck', ['--shell=sh', '--severity=style', SCRIPT]);
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
});

t.run();
