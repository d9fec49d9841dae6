// An upload killed mid-way never shows up as a valid backup (S3 multipart and directory).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseDatabaseUrl, PsqlSession } from '../../scripts/lib/adapters/pg.ts';
import { BACKUP_SCRIPT, backupCli } from './backup-data.ts';
import { startPostgres, startS3, type PostgresServer, type S3Server } from './services.ts';

const t = suite('backup interrupted');
let pg: PostgresServer;
let s3: S3Server;
let dir: string;

// About 120 MB of incompressible data: the dump takes seconds, long enough to be killed mid-way.
const BIG_SQL = `
CREATE EXTENSION pgcrypto;
CREATE TABLE blobs (id integer PRIMARY KEY, data bytea NOT NULL);
INSERT INTO blobs SELECT i, gen_random_bytes(1024) FROM generate_series(1, 120000) AS i;
`;

t.before(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  await pg.createDatabase('big');
  await pg.sql('big', BIG_SQL);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-interrupt-'));
});

t.after(async () => {
  await Promise.all([pg?.stop(), s3?.stop()]);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Start `backup.ts create` and SIGKILL it once its progress shows at least `minMiB` dumped. */
async function createAndKill(dest: string, minMiB: number): Promise<{ killedAtMiB: number; exitedByItself: boolean }> {
  const child = spawn(process.execPath, ['--import', 'tsx', BACKUP_SCRIPT, 'create', '--database-url', pg.url('big'), '--to', dest], {
    env: { ...process.env, ...pg.env, ...s3.env, CI: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  return new Promise((resolve, reject) => {
    let killedAt = -1;
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /dumped ([\d.]+) MiB/.exec(d.toString());
      if (killedAt < 0 && m && Number(m[1]) >= minMiB) {
        killedAt = Number(m[1]);
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`create ended by itself (code ${code}) before it could be killed:\n${stderr}`));
      else resolve({ killedAtMiB: killedAt, exitedByItself: false });
    });
  });
}

t('S3: a create killed mid-upload leaves no valid backup; a later create works', async () => {
  const dest = `s3://${s3.bucket}/interrupted`;
  const { killedAtMiB } = await createAndKill(dest, 20);
  assert.ok(killedAtMiB >= 20, 'killed after at least two 8 MiB parts were read');
  await new Promise((r) => setTimeout(r, 500));
  const listed = await backupCli(['list', '--from', dest, '--json'], s3.env);
  assert.is(listed.exitCode, 0, listed.stderr);
  assert.equal(
    listed.json.backups.filter((b: { state: string }) => b.state === 'valid'),
    [],
    'nothing valid',
  );
  // The multipart upload was never completed: no object at all, let alone a manifest.
  assert.equal(listed.json.backups, []);
  const verify = await backupCli(['verify', '--from', dest, '--scratch-url', pg.url('postgres')], { ...s3.env, ...pg.env });
  assert.is(verify.exitCode, 1);
  assert.match(verify.stderr, /no valid backup/);
  // The killed run's multipart upload is left on the server; prune aborts it once it is a day old.
  const args = ['prune', '--from', dest, '--keep-daily', '1', '--keep-weekly', '0', '--keep-monthly', '0', '--json'];
  const now = await backupCli(args, s3.env);
  assert.is(now.exitCode, 0, now.stderr);
  assert.equal(now.json.staleUploads, [], 'a young multipart upload may still be running');
  const later = await backupCli([...args, '--as-of', new Date(Date.now() + 25 * 3_600_000).toISOString()], s3.env);
  assert.is(later.exitCode, 0, later.stderr);
  assert.is(later.json.staleUploads.length, 1);
  assert.match(later.json.staleUploads[0], /^\d{8}T\d{6}Z-[0-9a-f]{6}\/dump\.pgc$/);
  const again = await backupCli([...args, '--as-of', new Date(Date.now() + 25 * 3_600_000).toISOString()], s3.env);
  assert.equal(again.json.staleUploads, [], 'aborted for good');
});

t('directory: a create killed mid-dump leaves an incomplete backup that list and restore reject', async () => {
  const dest = path.join(dir, 'interrupted');
  fs.mkdirSync(dest);
  await createAndKill(dest, 10);
  const listed = await backupCli(['list', '--from', dest, '--json']);
  assert.is(listed.exitCode, 0, listed.stderr);
  assert.is(listed.json.backups.length, 1);
  const b = listed.json.backups[0];
  assert.is(b.state, 'incomplete');
  assert.match(b.problems[0], /no manifest.json/);
  assert.not.ok(fs.existsSync(path.join(dest, b.id, 'dump.pgc')), 'only a .partial file was written');
  await pg.createDatabase('after_kill');
  const restore = await backupCli(['restore', '--from', dest, '--backup', b.id, '--database-url', pg.url('after_kill'), '--yes'], pg.env);
  assert.is(restore.exitCode, 1);
  assert.match(restore.stderr, new RegExp(`backup ${b.id} is incomplete`));
  // prune leaves a fresh incomplete backup alone (it may still be running) and removes it a day later.
  const fresh = await backupCli(['prune', '--from', dest, '--keep-daily', '1', '--keep-weekly', '0', '--keep-monthly', '0', '--json']);
  assert.equal(fresh.json.kept, [b.id]);
  const later = new Date(Date.now() + 25 * 3_600_000).toISOString();
  const pruned = await backupCli(['prune', '--from', dest, '--keep-daily', '1', '--keep-weekly', '0', '--keep-monthly', '0', '--as-of', later, '--json']);
  assert.equal(pruned.json.deleted, [b.id]);
  assert.equal(fs.readdirSync(dest), []);
});

/** Pids of the processes whose parent is `pid` and whose program is `comm` (Linux /proc). */
function childrenNamed(pid: number, comm: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .flatMap((d) => {
      try {
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        return ppid === pid && name === comm ? [Number(d)] : [];
      } catch {
        return []; // exited meanwhile
      }
    });
}

/** Whether a process still runs (not gone, not a zombie waiting to be reaped). */
function alive(pid: number): boolean {
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const withSetpriv = process.platform === 'linux' && fs.existsSync('/usr/bin/setpriv');

t('a create killed while pg_dump waits for a table lock takes pg_dump and psql with it', async () => {
  if (!withSetpriv) return; // the parent-death signal needs Linux and util-linux setpriv
  const holder = new PsqlSession(parseDatabaseUrl(pg.urlWithPassword('big')));
  await holder.query('BEGIN; LOCK TABLE blobs IN ACCESS EXCLUSIVE MODE;');
  const dest = path.join(dir, 'locked');
  fs.mkdirSync(dest);
  const child = spawn(process.execPath, ['--import', 'tsx', BACKUP_SCRIPT, 'create', '--database-url', pg.url('big'), '--to', dest], {
    env: { ...process.env, ...pg.env, CI: '1' },
    stdio: 'ignore',
  });
  const exited = new Promise((r) => child.once('exit', r));
  try {
    const waiting = async () => Number((await pg.sql('big', "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND wait_event_type = 'Lock';")).trim());
    for (let i = 0; i < 300 && (await waiting()) === 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.is(await waiting(), 1, 'pg_dump waits for the lock');
    const helpers = [...childrenNamed(child.pid!, 'pg_dump'), ...childrenNamed(child.pid!, 'psql')];
    assert.is(helpers.length, 2, 'pg_dump and the psql holding the snapshot');
    child.kill('SIGKILL');
    await exited;
    for (let i = 0; i < 50 && helpers.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(helpers.filter(alive), [], 'neither waits on for the lock after create is gone');
  } finally {
    child.kill('SIGKILL');
    await holder.query('ROLLBACK;');
    await holder.close();
  }
  const listed = await backupCli(['list', '--from', dest, '--json']);
  assert.equal(
    listed.json.backups.filter((b: { state: string }) => b.state === 'valid'),
    [],
  );
});

t.run();
