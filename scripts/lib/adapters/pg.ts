// PostgreSQL access for the toolkit: connection URLs, the client programs (psql, pg_dump,
// pg_restore) and a long-lived psql session that holds a snapshot open while pg_dump reads it.
// Connection parameters travel as libpq environment variables (PGHOST, PGPORT, PGUSER, PGDATABASE,
// PGPASSWORD), never as process arguments, so `ps` and logs never show a password.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { toolError, UserError } from '../core/errors.ts';
import { run, withParentDeathSignal, type RunResult } from '../core/exec.ts';
import { redact, registerSecret } from '../core/redact.ts';
import { CHART_DIR, isExecutable } from '../core/paths.ts';

export interface PgConnection {
  host: string;
  port: number;
  user?: string;
  password?: string;
  database: string;
  /** Further libpq parameters from the URL query (sslmode, sslrootcert, ...). */
  params: Record<string, string>;
}

const PARAM_ENV: Record<string, string> = {
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  application_name: 'PGAPPNAME',
  target_session_attrs: 'PGTARGETSESSIONATTRS',
};

/** Parse postgres:// or postgresql:// URLs; the password (if any) is registered as a secret at once. */
export function parseDatabaseUrl(url: string, what = '--database-url'): PgConnection {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UserError(`${what} is not a URL`, { hint: 'Use postgresql://USER@HOST:PORT/DATABASE (put the password in PGPASSWORD or the URL).', exitCode: 2 });
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new UserError(`${what} must start with postgresql:// (got ${u.protocol}//)`, { hint: 'Use postgresql://USER@HOST:PORT/DATABASE.', exitCode: 2 });
  }
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  registerSecret(password);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!database) throw new UserError(`${what} names no database`, { hint: 'Add the database name as the URL path, e.g. postgresql://app@db:5432/conduit.', exitCode: 2 });
  const params: Record<string, string> = {};
  for (const [k, v] of u.searchParams) {
    if (!(k in PARAM_ENV)) throw new UserError(`${what}: unsupported URL parameter "${k}"`, { hint: `Supported: ${Object.keys(PARAM_ENV).join(', ')}.`, exitCode: 2 });
    params[k] = v;
  }
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost',
    port: u.port ? Number(u.port) : 5432,
    user: u.username ? decodeURIComponent(u.username) : undefined,
    password,
    database,
    params,
  };
}

/** The connection as shown to people: no password, ever. */
export function describeConnection(c: PgConnection): string {
  const host = c.host.includes(':') ? `[${c.host}]` : c.host;
  return `postgresql://${c.user ? `${encodeURIComponent(c.user)}@` : ''}${host}:${c.port}/${encodeURIComponent(c.database)}`;
}

export function withDatabase(c: PgConnection, database: string): PgConnection {
  return { ...c, database };
}

/** libpq environment for a child process. PGPASSWORD is only set when a password is known. */
export function connectionEnv(c: PgConnection): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {
    PGHOST: c.host,
    PGPORT: String(c.port),
    PGDATABASE: c.database,
    PGCONNECT_TIMEOUT: '15',
  };
  if (c.user) env.PGUSER = c.user;
  if (c.password !== undefined) env.PGPASSWORD = c.password;
  for (const [k, v] of Object.entries(c.params)) env[PARAM_ENV[k]] = v;
  return env;
}

// ---------------------------------------------------------------------------------------------
// Client programs

export type PgProgram = 'psql' | 'pg_dump' | 'pg_restore';

/**
 * Where a PostgreSQL client program is: CONDUIT_PG_BINDIR, else the newest Debian-style
 * /usr/lib/postgresql/<major>/bin, else PATH. pg_dump must be at least the server's major version.
 */
export function pgProgram(name: PgProgram): string {
  const dirs: string[] = [];
  if (process.env.CONDUIT_PG_BINDIR) dirs.push(process.env.CONDUIT_PG_BINDIR);
  const debian = '/usr/lib/postgresql';
  if (fs.existsSync(debian)) {
    const majors = fs
      .readdirSync(debian)
      .filter((d) => /^\d+$/.test(d))
      .sort((a, b) => Number(b) - Number(a));
    dirs.push(...majors.map((m) => path.join(debian, m, 'bin')));
  }
  dirs.push(...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean));
  for (const d of dirs) {
    const p = path.join(d, name);
    if (isExecutable(p)) return p;
  }
  throw toolError(`${name} is not installed`, 'Install the PostgreSQL client programs (Debian: apt-get install postgresql-client), or set CONDUIT_PG_BINDIR to their directory.');
}

export async function programVersion(name: PgProgram): Promise<string> {
  const r = await run(pgProgram(name), ['--version']);
  return r.stdout.trim().replace(/^\S+ \(PostgreSQL\) /, '');
}

const PSQL_ARGS = ['--no-psqlrc', '--quiet', '--no-align', '--tuples-only', '--set', 'ON_ERROR_STOP=1'];

/** A failed client program as a user-facing error (the server said no, the password is wrong, ...). */
export function pgFailure(what: string, r: Pick<RunResult, 'exitCode' | 'stderr'>): UserError {
  const tail = redact(r.stderr.trim().split('\n').slice(-8).join('\n'));
  return new UserError(`${what} failed (exit ${r.exitCode})${tail ? `:\n${tail}` : ''}`);
}

/** Run SQL through psql (on stdin) and return its unaligned, tuples-only output. */
export async function psql(c: PgConnection, sql: string): Promise<string> {
  const r = await run(pgProgram('psql'), PSQL_ARGS, { env: connectionEnv(c), input: sql });
  if (r.exitCode !== 0) throw pgFailure(`psql on ${describeConnection(c)}`, r);
  return r.stdout;
}

/** Quote an identifier for SQL text. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

export async function serverVersion(c: PgConnection): Promise<string> {
  return (await psql(c, 'SHOW server_version;')).trim();
}

/** Relations (tables, views, sequences, ...) outside system schemas, plus large objects. */
export async function countUserObjects(c: PgConnection): Promise<{ relations: number; largeObjects: number }> {
  const out = await psql(
    c,
    `SELECT (SELECT count(*) FROM pg_catalog.pg_class cl JOIN pg_catalog.pg_namespace n ON n.oid = cl.relnamespace
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%')
       || ' ' || (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata);`,
  );
  const [relations, largeObjects] = out.trim().split(' ').map(Number);
  return { relations, largeObjects };
}

export async function databaseExists(c: PgConnection, name: string): Promise<boolean> {
  return (await psql(c, `SELECT 1 FROM pg_catalog.pg_database WHERE datname = ${quoteLiteral(name)};`)).trim() === '1';
}

export async function createDatabase(c: PgConnection, name: string): Promise<void> {
  await psql(c, `CREATE DATABASE ${quoteIdent(name)};`);
}

export async function dropDatabase(c: PgConnection, name: string): Promise<void> {
  await psql(c, `DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE);`);
}

// ---------------------------------------------------------------------------------------------
// Table statistics: the SQL is shared with the in-cluster backup job (chart/files/backup/).

export interface TableStats {
  schema: string;
  table: string;
  rows: number;
  checksum: string;
}

export const TABLE_STATS_SQL_FILE = path.join(CHART_DIR, 'files', 'backup', 'table-stats.sql');

export function tableStatsSql(): string {
  return fs.readFileSync(TABLE_STATS_SQL_FILE, 'utf8');
}

export function parseTableStats(output: string): TableStats[] {
  const line = output.trim().split('\n').filter(Boolean).pop() ?? '[]';
  // Fixed key order in manifests (the SQL builds jsonb, whose keys come out sorted by length).
  return (JSON.parse(line) as TableStats[]).map((t) => ({ schema: t.schema, table: t.table, rows: Number(t.rows), checksum: t.checksum }));
}

/**
 * Which row hash the table checksums use (see table-stats.sql): `auto` gives `rec:` checksums to the
 * tables whose column types allow it; `text` hashes every row's text form, as manifests written
 * before `rec:` existed do.
 */
export type ChecksumKind = 'auto' | 'text';

/** The checksum kind that reproduces the checksums of a manifest's tables. */
export function checksumKindOf(tables: TableStats[]): ChecksumKind {
  return tables.some((t) => t.checksum.startsWith('rec:')) ? 'auto' : 'text';
}

export async function tableStats(c: PgConnection, kind: ChecksumKind = 'auto'): Promise<TableStats[]> {
  return parseTableStats(await psql(c, `\\set stats_checksum ${kind}\n${tableStatsSql()}`));
}

// ---------------------------------------------------------------------------------------------
// A psql session kept open across several statements (to hold a transaction and its snapshot).

export class PsqlSession {
  private readonly child: ChildProcess;
  private buffer = '';
  private stderr = '';
  private exited: { code: number | null } | undefined;
  private waiter: { marker: string; resolve: (out: string) => void; reject: (e: Error) => void } | undefined;
  private seq = 0;
  readonly connection: PgConnection;

  constructor(c: PgConnection) {
    this.connection = c;
    // psql notices our end of its stdin only between statements: should this process die while a
    // statement waits (e.g. for a lock), psql is told to stop instead of waiting on alone.
    const [program, argv] = withParentDeathSignal(pgProgram('psql'), PSQL_ARGS, 'SIGTERM');
    this.child = spawn(program, argv, { env: { ...process.env, ...connectionEnv(c) }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8');
    this.child.stderr!.setEncoding('utf8');
    this.child.stdout!.on('data', (d: string) => {
      this.buffer += d;
      this.check();
    });
    this.child.stderr!.on('data', (d: string) => (this.stderr += d));
    this.child.stdin!.on('error', () => undefined); // a dead psql is reported through 'exit'
    // 'close', not 'exit': only then has all of stderr been read (the error message we report).
    this.child.on('close', (code) => {
      this.exited = { code };
      if (this.waiter) {
        this.waiter.reject(pgFailure(`psql session on ${describeConnection(c)}`, { exitCode: code ?? 1, stderr: this.stderr }));
        this.waiter = undefined;
      }
    });
    this.child.on('error', (e) => {
      this.exited = { code: 1 };
      this.waiter?.reject(e);
      this.waiter = undefined;
    });
  }

  private check(): void {
    if (!this.waiter) return;
    const i = this.buffer.indexOf(this.waiter.marker + '\n');
    if (i < 0) return;
    const out = this.buffer.slice(0, i);
    this.buffer = this.buffer.slice(i + this.waiter.marker.length + 1);
    const w = this.waiter;
    this.waiter = undefined;
    w.resolve(out);
  }

  /** Run SQL (one or more statements) and return psql's output for it. */
  query(sql: string): Promise<string> {
    if (this.exited) return Promise.reject(pgFailure(`psql session on ${describeConnection(this.connection)}`, { exitCode: this.exited.code ?? 1, stderr: this.stderr }));
    if (this.waiter) return Promise.reject(new Error('PsqlSession: one query at a time'));
    const marker = `__conduit_end_${process.pid}_${++this.seq}__`;
    return new Promise((resolve, reject) => {
      this.waiter = { marker, resolve, reject };
      this.child.stdin!.write(`${sql.trimEnd()}\n\\echo ${marker}\n`);
    });
  }

  /** End the session (COMMIT/ROLLBACK is the caller's business; an open transaction is rolled back). */
  async close(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((r) => this.child.once('close', () => r()));
    this.child.stdin!.end('\\q\n');
    const timer = setTimeout(() => this.child.kill('SIGTERM'), 10_000);
    await done;
    clearTimeout(timer);
  }
}

/**
 * Open a REPEATABLE READ transaction and export its snapshot, for `pg_dump --snapshot` and for
 * table statistics that describe exactly the dumped data.
 */
export async function openSnapshot(c: PgConnection): Promise<{ session: PsqlSession; snapshot: string; serverVersion: string; databaseBytes: number }> {
  const session = new PsqlSession(c);
  try {
    // One round trip: the dump waits for it.
    const out = await session.query(
      "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSELECT pg_catalog.pg_export_snapshot(), pg_catalog.current_setting('server_version'), pg_catalog.pg_database_size(pg_catalog.current_database());",
    );
    const [snapshot = '', serverVersion = '', size = ''] = (out.trim().split('\n').pop() ?? '').split('|');
    if (!/^[0-9A-F-]+$/i.test(snapshot)) throw new UserError(`could not export a snapshot (got "${snapshot}")`);
    return { session, snapshot, serverVersion, databaseBytes: Number(size) || 0 };
  } catch (e) {
    await session.close();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// pg_dump and pg_restore

export interface DumpProcess {
  argv: string[];
  stdout: Readable;
  /** Resolves when pg_dump exits 0; rejects with its stderr otherwise. */
  done: Promise<void>;
  kill(): void;
}

export interface DumpOptions {
  snapshot?: string;
  compressLevel?: number;
  /** Write the archive to this file (seekable: its table of contents gets the data offsets that a parallel pg_restore needs) instead of stdout. */
  file?: string;
}

export function dumpArgs(options: DumpOptions): string[] {
  return [
    '--format=custom',
    ...(options.compressLevel !== undefined ? [`--compress=${options.compressLevel}`] : []),
    '--no-password',
    ...(options.snapshot ? [`--snapshot=${options.snapshot}`] : []),
    ...(options.file ? [`--file=${options.file}`] : []),
  ];
}

/** Start pg_dump (custom format) writing to a pipe, or to `file`. */
export function startDump(c: PgConnection, options: DumpOptions = {}): DumpProcess {
  const bin = pgProgram('pg_dump');
  const args = dumpArgs(options);
  // Should this process die (SIGKILL), pg_dump stops too: once it writes, our closed pipe stops it
  // anyway, but before that (reading the catalog, waiting for a table lock) it would hang on alone.
  const [program, argv] = withParentDeathSignal(bin, args, 'SIGTERM');
  const child = spawn(program, argv, { env: { ...process.env, ...connectionEnv(c) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (stderr += d));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(pgFailure(`pg_dump of ${describeConnection(c)}`, { exitCode: code ?? (signal ? 128 : 1), stderr: stderr || `killed by ${signal}` }));
    });
  });
  done.catch(() => undefined); // the caller awaits it; avoid an unhandled rejection in between
  return { argv: [bin, ...args], stdout: child.stdout, done, kill: () => child.kill('SIGTERM') };
}

export interface RestoreOptions {
  clean: boolean;
  /** Restore in one transaction: on any error nothing is left behind. */
  singleTransaction: boolean;
}

export function restoreArgs(database: string, file: string, o: RestoreOptions): string[] {
  return [
    '--format=custom',
    '--no-password',
    '--exit-on-error',
    '--no-owner',
    '--no-privileges',
    ...(o.singleTransaction ? ['--single-transaction'] : []),
    ...(o.clean ? ['--clean', '--if-exists'] : []),
    // pg_restore only connects when given a database; the name is no secret, the rest comes by env.
    `--dbname=${database}`,
    file,
  ];
}

/** pg_restore a custom-format file into the connection's database. */
export async function restoreDump(c: PgConnection, file: string, o: RestoreOptions): Promise<RunResult> {
  const r = await run(pgProgram('pg_restore'), restoreArgs(c.database, file, o), { env: connectionEnv(c) });
  if (r.exitCode !== 0) throw pgFailure(`pg_restore into ${describeConnection(c)}`, r);
  return r;
}
