// Real services for end-to-end tests, on 127.0.0.1 and free ports, stopped by the test:
// - PostgreSQL (Debian's postgresql package): initdb into a temp dir, password auth over TCP.
// - An S3-compatible server: `rclone serve s3` with the pinned rclone (lib/tools.ts).
// Reusable by every e2e test: `const pg = await startPostgres(); ... await pg.stop();`
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { run, runChecked } from '../../scripts/lib/core/exec.ts';
import { tool } from '../../scripts/lib/adapters/tools.ts';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} did not come up within ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// Stop everything a test started even when it throws or forgets (process exit).
const cleanups = new Set<() => void>();
process.once('exit', () => {
  for (const c of cleanups) {
    try {
      c();
    } catch {
      /* best effort */
    }
  }
});

// ---------------------------------------------------------------------------------------------
// PostgreSQL

export function postgresBinDir(): string {
  if (process.env.CONDUIT_PG_BINDIR) return process.env.CONDUIT_PG_BINDIR;
  const base = '/usr/lib/postgresql';
  const majors = fs.existsSync(base) ? fs.readdirSync(base).filter((d) => /^\d+$/.test(d) && fs.existsSync(path.join(base, d, 'bin', 'initdb'))) : [];
  if (!majors.length) throw new Error('PostgreSQL server binaries not found: apt-get install postgresql (or set CONDUIT_PG_BINDIR)');
  return path.join(base, majors.sort((a, b) => Number(b) - Number(a))[0], 'bin');
}

export interface PostgresServer {
  host: string;
  port: number;
  user: string;
  password: string;
  /** postgresql://user@host:port/db, without the password (tests pass it in PGPASSWORD). */
  url(database?: string): string;
  /** The same with the password inside (for --database-url-env style tests). */
  urlWithPassword(database?: string): string;
  /** Environment for child processes: PGPASSWORD. */
  env: Record<string, string>;
  /** Run SQL as the superuser in a database; returns psql's unaligned tuples-only output. */
  sql(database: string, sql: string): Promise<string>;
  createDatabase(name: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBinDir();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-pg-'));
  const data = path.join(dir, 'data');
  const password = crypto.randomBytes(12).toString('hex');
  const user = 'postgres';
  const asRoot = process.getuid?.() === 0;
  // initdb and postgres refuse to run as root: run them as the postgres system user then.
  const wrap = (cmd: string, args: string[]): [string, string[]] => (asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]);
  fs.writeFileSync(path.join(dir, 'pw'), password + '\n', { mode: 0o600 });
  if (asRoot) {
    await runChecked('chown', ['-R', 'postgres:postgres', dir]);
  }
  const port = await freePort();
  {
    const [c, a] = wrap(path.join(bin, 'initdb'), [
      '-D',
      data,
      '-U',
      user,
      `--pwfile=${path.join(dir, 'pw')}`,
      '--auth-host=scram-sha-256',
      '--auth-local=trust',
      '-E',
      'UTF8',
      '--locale=C.UTF-8',
      '--no-sync',
    ]);
    await runChecked(c, a);
  }
  fs.rmSync(path.join(dir, 'pw'));
  const opts = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50`;
  {
    const [c, a] = wrap(path.join(bin, 'pg_ctl'), ['-D', data, '-l', path.join(dir, 'server.log'), '-o', opts, '-w', '-t', '60', 'start']);
    await runChecked(c, a);
  }
  const stopSync = () => {
    const [c, a] = wrap(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', 'stop']);
    spawnSyncQuiet(c, a);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  cleanups.add(stopSync);
  const env = { PGPASSWORD: password };
  const psql = path.join(bin, 'psql');
  const server: PostgresServer = {
    host: '127.0.0.1',
    port,
    user,
    password,
    url: (db = 'postgres') => `postgresql://${user}@127.0.0.1:${port}/${db}`,
    urlWithPassword: (db = 'postgres') => `postgresql://${user}:${password}@127.0.0.1:${port}/${db}`,
    env,
    async sql(database, sql) {
      const r = await run(psql, ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', user, '-d', database], { env, input: sql });
      if (r.exitCode !== 0) throw new Error(`psql failed: ${r.stderr}`);
      return r.stdout;
    },
    async createDatabase(name) {
      await server.sql('postgres', `CREATE DATABASE "${name}";`);
    },
    async stop() {
      cleanups.delete(stopSync);
      const [c, a] = wrap(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', 'stop']);
      await run(c, a);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await waitFor('PostgreSQL', async () => (await server.sql('postgres', 'SELECT 1;')).trim() === '1');
  return server;
}

function spawnSyncQuiet(cmd: string, args: string[]): void {
  // Used from the process 'exit' handler, where only synchronous work runs.
  spawnSync(cmd, args, { stdio: 'ignore' });
}

// ---------------------------------------------------------------------------------------------
// S3 (rclone serve s3)

export interface S3Server {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Where the served files live (a bucket is a directory below it). */
  root: string;
  /** Environment for the AWS SDK (and the backup script) to reach this server. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startS3(bucket = 'backups'): Promise<S3Server> {
  const rclone = await tool('rclone');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-s3-'));
  fs.mkdirSync(path.join(root, bucket));
  const port = await freePort();
  const accessKeyId = `test${crypto.randomBytes(4).toString('hex')}`;
  const secretAccessKey = crypto.randomBytes(16).toString('hex');
  // Credentials go through rclone's environment twin of --auth-key, not the command line.
  const child: ChildProcess = spawn(rclone, ['serve', 's3', '--addr', `127.0.0.1:${port}`, '--config', '/dev/null', root], {
    // rclone reads list flags from env as CSV: quote the pair so its comma stays inside one entry.
    env: { ...process.env, RCLONE_AUTH_KEY: `"${accessKeyId},${secretAccessKey}"` },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const kill = () => {
    child.kill('SIGTERM');
    fs.rmSync(root, { recursive: true, force: true });
  };
  cleanups.add(kill);
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitFor('rclone serve s3', async () => {
      if (child.exitCode !== null) throw new Error(`rclone exited: ${log}`);
      return new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.end();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
    });
  } catch (e) {
    kill();
    throw new Error(`${(e as Error).message}\n${log}`);
  }
  return {
    endpoint,
    bucket,
    accessKeyId,
    secretAccessKey,
    root,
    env: { AWS_ENDPOINT_URL: endpoint, AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_REGION: 'us-east-1' },
    async stop() {
      cleanups.delete(kill);
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
