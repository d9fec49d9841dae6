// Backups of the ConduitLLM PostgreSQL database: create, list, verify, restore and prune.
//
// Layout in a destination (a directory or s3://bucket/prefix), shared with the in-cluster job:
//   <id>/dump.pgc        pg_dump custom format (compressed)
//   <id>/manifest.json   written LAST: a backup without it is incomplete and never valid
//   <id>/verify.json     optional: the result of the last `verify` of this backup
// The id is the UTC start time YYYYMMDDTHHMMSSZ plus a short random suffix, so ids sort by time.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UserError } from '../core/errors.ts';
import {
  checksumKindOf,
  countUserObjects,
  createDatabase,
  describeConnection,
  dropDatabase,
  openSnapshot,
  parseTableStats,
  programVersion,
  restoreDump,
  startDump,
  type DumpProcess,
  tableStats,
  tableStatsSql,
  withDatabase,
  type PgConnection,
  type TableStats,
} from '../adapters/pg.ts';
import type { BackupStorage, StoredObject } from '../adapters/storage.ts';

export const MANIFEST_FORMAT = 'conduit-backup/v1';
export const DUMP_FILE = 'dump.pgc';
export const MANIFEST_FILE = 'manifest.json';
export const VERIFY_FILE = 'verify.json';

export interface BackupSource {
  /** `script` (backup.ts create), `cronjob` (the chart's backup job) or `pre-upgrade` (its Helm hook). */
  kind: 'script' | 'cronjob' | 'pre-upgrade';
  /** The server as people see it (never a password). */
  server?: string;
  cluster?: string;
  namespace?: string;
  release?: string;
  revision?: number;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  id: string;
  database: string;
  serverVersion: string;
  pgDumpVersion: string;
  startedAt: string;
  finishedAt: string;
  dump: { file: string; format: 'custom'; size: number; sha256: string };
  tables: TableStats[];
  source: BackupSource;
}

// ---------------------------------------------------------------------------------------------
// Ids

const ID_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-([a-z0-9]{4,16})$/;

export function newBackupId(now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${crypto.randomBytes(3).toString('hex')}`;
}

/** The time an id encodes, or undefined for names that are not backup ids (left alone by prune). */
export function backupTime(id: string): Date | undefined {
  const m = ID_RE.exec(id);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number);
  const t = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  return Number.isNaN(t.getTime()) || t.getUTCMonth() !== mo - 1 ? undefined : t;
}

export function isBackupId(id: string): boolean {
  return backupTime(id) !== undefined;
}

// ---------------------------------------------------------------------------------------------
// Manifest validation (the manifest may come from the shell job, another version, or be damaged)

export function manifestProblems(value: unknown, id: string): string[] {
  const p: string[] = [];
  const m = value as Partial<Manifest> | null;
  if (!m || typeof m !== 'object') return ['manifest is not a JSON object'];
  if (m.format !== MANIFEST_FORMAT) p.push(`format is ${JSON.stringify(m.format)}, expected "${MANIFEST_FORMAT}"`);
  if (m.id !== id) p.push(`id is ${JSON.stringify(m.id)}, but the backup folder is "${id}"`);
  for (const k of ['database', 'serverVersion', 'pgDumpVersion', 'startedAt', 'finishedAt'] as const) {
    if (typeof m[k] !== 'string' || !m[k]) p.push(`${k} missing`);
  }
  const d = m.dump;
  if (!d || typeof d !== 'object') p.push('dump missing');
  else {
    if (d.file !== DUMP_FILE) p.push(`dump.file is ${JSON.stringify(d.file)}, expected "${DUMP_FILE}"`);
    if (!Number.isInteger(d.size) || d.size < 0) p.push('dump.size is not a byte count');
    if (typeof d.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(d.sha256)) p.push('dump.sha256 is not a sha256 hex digest');
  }
  if (!Array.isArray(m.tables)) p.push('tables missing');
  else {
    m.tables.forEach((t, i) => {
      if (!t || typeof t.schema !== 'string' || typeof t.table !== 'string' || !Number.isInteger(t.rows) || typeof t.checksum !== 'string') {
        p.push(`tables[${i}] is not {schema, table, rows, checksum}`);
      }
    });
  }
  return p;
}

function parseManifest(raw: Buffer, id: string): { manifest?: Manifest; problems: string[] } {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    return { problems: [`manifest.json is not JSON: ${(e as Error).message}`] };
  }
  const problems = manifestProblems(value, id);
  return problems.length ? { problems } : { manifest: value as Manifest, problems };
}

// ---------------------------------------------------------------------------------------------
// Progress and hashing

export type Progress = (note: string) => void;

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** "dumped 12.5 MiB, 13.1 MB/s": bytes so far and the rate since `started` (a performance.now() time). */
function rateNote(label: string, bytes: number, started: number): string {
  const s = (performance.now() - started) / 1000;
  return `${label} ${formatBytes(bytes)}, ${(bytes / 1e6 / Math.max(s, 0.001)).toFixed(1)} MB/s`;
}

/** Blocks a Meter passes on to a file: a file write per small chunk costs far more than copying. */
const METER_BLOCK = 1 << 20;

/**
 * Bytes passing through (passed on in blocks of at least `block` bytes; 0: as they come), their
 * sha256, and a progress note (size and MB/s) at most once a second.
 */
class Meter extends Transform {
  bytes = 0;
  private readonly hash = crypto.createHash('sha256');
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly started = performance.now();
  private lastReport = -Infinity; // the first chunk reports at once, then at most once a second
  private readonly progress?: Progress;
  private readonly label: string;
  private readonly flushCheck?: () => Promise<void>;
  private readonly block: number;

  constructor(label: string, progress?: Progress, flushCheck?: () => Promise<void>, block = 0) {
    // The readable side holds up to 16 MiB: pg_dump does not stall while a consumer that is still
    // setting up (an S3 upload whose SDK is loading) catches up.
    super({ writableHighWaterMark: 1 << 20, readableHighWaterMark: 16 << 20 });
    this.label = label;
    this.progress = progress;
    this.flushCheck = flushCheck;
    this.block = block;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null, d?: Buffer) => void): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    const now = performance.now();
    if (this.progress && now - this.lastReport > 1000) {
      this.lastReport = now;
      this.progress(this.note());
    }
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < this.block) return cb();
    cb(null, this.takePending());
  }

  private takePending(): Buffer {
    const block = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    return block;
  }

  // The stream ends only once the producer is known to have succeeded (e.g. pg_dump exited 0):
  // otherwise a truncated dump would complete its upload.
  override _flush(cb: (e?: Error | null) => void): void {
    const done = () => {
      if (this.pendingBytes) this.push(this.takePending());
      this.progress?.(this.note()); // the final size and rate
      cb();
    };
    if (!this.flushCheck) return done();
    this.flushCheck().then(done, (e: Error) => cb(e));
  }

  note(): string {
    return rateNote(this.label, this.bytes, this.started);
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

// ---------------------------------------------------------------------------------------------
// create

export interface CreateOptions {
  connection: PgConnection;
  storage: BackupStorage;
  source?: Partial<BackupSource>;
  progress?: Progress;
  signal?: AbortSignal;
  /** For tests and imports only: a fixed id (must be a valid id). */
  id?: string;
}

export interface CreatePlan {
  id: string;
  database: string;
  server: string;
  destination: string;
  files: string[];
  dumpCommand: string[];
}

export function planCreate(o: Pick<CreateOptions, 'connection' | 'storage' | 'id'>, now = new Date()): CreatePlan {
  const id = o.id ?? newBackupId(now);
  return {
    id,
    database: o.connection.database,
    server: describeConnection(o.connection),
    destination: o.storage.display,
    files: [`${id}/${DUMP_FILE}`, `${id}/${MANIFEST_FILE} (last)`],
    dumpCommand: ['pg_dump', '--format=custom', '--no-password', '--snapshot=<exported snapshot>'],
  };
}

export async function createBackup(o: CreateOptions): Promise<{ manifest: Manifest; seconds: number }> {
  const startedAt = new Date();
  const id = o.id ?? newBackupId(startedAt);
  if (!isBackupId(id)) throw new UserError(`"${id}" is not a backup id (YYYYMMDDTHHMMSSZ-suffix)`, { exitCode: 2 });
  const pgDumpVersionPromise = programVersion('pg_dump');
  pgDumpVersionPromise.catch(() => undefined);
  const { session, snapshot, serverVersion: server, databaseBytes } = await openSnapshot(o.connection);
  try {
    // Table statistics run in the exporting transaction, i.e. on exactly the data pg_dump sees,
    // on another connection at the same time as the dump.
    const statsPromise = session.query(tableStatsSql()).then(parseTableStats);
    statsPromise.catch(() => undefined);
    // The database's size bounds the dump's well enough to size S3 parts.
    const dump = await writeDump(o, `${id}/${DUMP_FILE}`, snapshot, databaseBytes);
    const pgDumpVersion = await pgDumpVersionPromise;
    const tables = await statsPromise;
    await session.query('COMMIT;');
    const finishedAt = new Date();
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      id,
      database: o.connection.database,
      serverVersion: server,
      pgDumpVersion,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      dump: { file: DUMP_FILE, format: 'custom', ...dump },
      tables,
      source: { kind: 'script', server: describeConnection(o.connection), ...o.source },
    };
    if (o.signal?.aborted) throw new UserError('backup interrupted before its manifest was written');
    await o.storage.put(`${id}/${MANIFEST_FILE}`, JSON.stringify(manifest, null, 2) + '\n');
    return { manifest, seconds: (finishedAt.getTime() - startedAt.getTime()) / 1000 };
  } catch (e) {
    // No manifest was written: the backup is incomplete. Remove what was uploaded (best effort;
    // prune removes leftovers of killed runs later).
    await o.storage.deletePrefix(`${id}/`).catch(() => undefined);
    throw e;
  } finally {
    await session.close();
  }
}

/**
 * pg_dump on the exported snapshot into the destination: its size and sha256, once pg_dump exited 0
 * and the destination has the whole archive. A directory gets pg_dump's own file (written as
 * `pg_dump -f` writes it: nothing passes through this process while it runs, and the archive is
 * seekable, so a parallel pg_restore can use it); the sha256 is read back from it afterwards. S3
 * gets the archive streamed once through the sha256 into parts uploaded as they fill.
 */
async function writeDump(o: CreateOptions, key: string, snapshot: string, expectedBytes: number): Promise<{ size: number; sha256: string }> {
  if (o.storage.writeLocal) {
    return o.storage.writeLocal(key, async (file) => {
      await runDump(o, startDump(o.connection, { snapshot, file }), (dump) => watchFile(file, dump.done, o.progress));
      return sha256Of(fs.createReadStream(file, { highWaterMark: 1 << 20 }));
    });
  }
  // pg_dump starts before the storage client is even loaded (the S3 SDK holds this thread for about
  // 0.1 s): it reads the catalog meanwhile, and its first output waits in the pipe.
  const dump = startDump(o.connection, { snapshot });
  // No blocks of its own: the upload gathers its parts anyway.
  const meter = new Meter('dumped', o.progress, () => dump.done);
  await runDump(o, dump, () => o.storage.upload(key, dump.stdout.pipe(meter), o.signal, expectedBytes));
  return { size: meter.bytes, sha256: meter.digest() };
}

/** Waits for pg_dump and for `store` (what takes its output); on an error or abort, pg_dump is stopped before the caller removes what it wrote. */
async function runDump(o: CreateOptions, dump: DumpProcess, store: (dump: DumpProcess) => Promise<unknown>): Promise<void> {
  const onAbort = () => dump.kill();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await Promise.all([store(dump), dump.done]);
  } catch (e) {
    dump.kill();
    await dump.done.catch(() => undefined);
    throw e;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
}

/** Progress of a file being written (its size, once a second) until `done` settles. */
async function watchFile(file: string, done: Promise<void>, progress?: Progress): Promise<void> {
  if (!progress) return;
  const started = performance.now();
  const size = () => (fs.existsSync(file) ? fs.statSync(file).size : 0);
  const timer = setInterval(() => progress(rateNote('dumped', size(), started)), 1000);
  try {
    await done.catch(() => undefined);
  } finally {
    clearInterval(timer);
  }
  progress(rateNote('dumped', size(), started));
}

// ---------------------------------------------------------------------------------------------
// list

export type BackupState = 'valid' | 'incomplete' | 'corrupt';

export interface BackupInfo {
  id: string;
  time: Date;
  state: BackupState;
  /** Why a backup is not valid. */
  problems: string[];
  size: number;
  manifest?: Manifest;
  /** Whether the sha256 of the dump was recomputed by this listing. */
  checksumChecked: boolean;
  /** Result of the last `verify` recorded next to the backup, if any. */
  lastVerify?: { passed: boolean; at: string };
  /** When the newest object of the backup was written (tells a running upload from an old leftover). */
  lastModified: Date;
}

async function sha256Of(stream: Readable, progress?: Progress, label = 'read'): Promise<{ sha256: string; size: number }> {
  const meter = new Meter(label, progress);
  await pipeline(stream, meter, async function* (src) {
    for await (const _ of src) {
      /* drain */
    }
  });
  return { sha256: meter.digest(), size: meter.bytes };
}

/** Every backup folder in the destination, oldest first. `checksums` recomputes each dump's sha256. */
export async function listBackups(storage: BackupStorage, options: { checksums?: boolean; progress?: Progress } = {}): Promise<BackupInfo[]> {
  const groups = new Map<string, StoredObject[]>();
  for (const o of await storage.list()) {
    const slash = o.key.indexOf('/');
    if (slash < 0) continue;
    const id = o.key.slice(0, slash);
    if (!isBackupId(id)) continue;
    groups.set(id, [...(groups.get(id) ?? []), o]);
  }
  const out: BackupInfo[] = [];
  for (const [id, objects] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    const find = (name: string) => objects.find((o) => o.key === `${id}/${name}`);
    const dump = find(DUMP_FILE);
    const info: BackupInfo = {
      id,
      time: backupTime(id)!,
      state: 'valid',
      problems: [],
      size: objects.reduce((n, o) => n + o.size, 0),
      checksumChecked: false,
      lastModified: new Date(Math.max(...objects.map((o) => o.modified.getTime()))),
    };
    out.push(info);
    if (!find(MANIFEST_FILE)) {
      info.state = 'incomplete';
      info.problems.push('no manifest.json (interrupted or still running)');
      continue;
    }
    const { manifest, problems } = parseManifest((await storage.get(`${id}/${MANIFEST_FILE}`)) ?? Buffer.alloc(0), id);
    info.manifest = manifest;
    info.problems.push(...problems);
    if (manifest) {
      if (!dump) info.problems.push(`${DUMP_FILE} is missing`);
      else if (dump.size !== manifest.dump.size) info.problems.push(`${DUMP_FILE} has ${dump.size} bytes, the manifest says ${manifest.dump.size}`);
      else if (options.checksums) {
        const { sha256 } = await sha256Of(await storage.read(`${id}/${DUMP_FILE}`), options.progress, `checking ${id}:`);
        info.checksumChecked = true;
        if (sha256 !== manifest.dump.sha256) info.problems.push(`sha256 of ${DUMP_FILE} is ${sha256}, the manifest says ${manifest.dump.sha256}`);
      }
    }
    if (info.problems.length) info.state = 'corrupt';
    const v = await storage.get(`${id}/${VERIFY_FILE}`).catch(() => undefined);
    if (v && manifest) {
      try {
        const r = JSON.parse(v.toString('utf8')) as { passed?: boolean; at?: string; sha256?: string };
        if (r.sha256 === manifest.dump.sha256 && typeof r.passed === 'boolean') info.lastVerify = { passed: r.passed, at: String(r.at) };
      } catch {
        /* an unreadable verify record is ignored */
      }
    }
  }
  return out;
}

export async function findBackup(storage: BackupStorage, id: string | undefined): Promise<BackupInfo> {
  const all = await listBackups(storage);
  if (!id || id === 'latest') {
    const valid = all.filter((b) => b.state === 'valid');
    if (!valid.length) throw new UserError(`no valid backup in ${storage.display}`, { hint: 'Run `backup.ts list --from ...` to see what is there.' });
    return valid[valid.length - 1];
  }
  const b = all.find((x) => x.id === id);
  if (!b) {
    throw new UserError(`backup "${id}" not found in ${storage.display}`, {
      hint: all.length
        ? `Known backups: ${all
            .slice(-5)
            .map((x) => x.id)
            .join(', ')}${all.length > 5 ? ', ...' : ''}.`
        : 'The destination holds no backups.',
    });
  }
  if (b.state !== 'valid') throw new UserError(`backup ${id} is ${b.state}: ${b.problems.join('; ')}`, { hint: 'Pick a valid backup (see `backup.ts list`).' });
  return b;
}

// ---------------------------------------------------------------------------------------------
// Fetching a dump with its checksum verified (before anything is restored)

export interface FetchedDump {
  file: string;
  sha256: string;
  seconds: number;
  cleanup(): void;
}

export async function fetchVerifiedDump(storage: BackupStorage, backup: BackupInfo, progress?: Progress): Promise<FetchedDump> {
  const m = backup.manifest!;
  const started = performance.now();
  const local = storage.localPath(`${backup.id}/${DUMP_FILE}`);
  let file: string;
  let cleanup = () => undefined as void;
  let sha256: string;
  if (local) {
    file = local;
    sha256 = (await sha256Of(fs.createReadStream(local, { highWaterMark: 1 << 20 }), progress, 'checksum')).sha256;
  } else {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-restore-'));
    cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
    file = path.join(dir, DUMP_FILE);
    // Written to a file: in blocks.
    const meter = new Meter('downloaded', progress, undefined, METER_BLOCK);
    try {
      await pipeline(await storage.read(`${backup.id}/${DUMP_FILE}`), meter, fs.createWriteStream(file));
    } catch (e) {
      cleanup();
      throw e;
    }
    sha256 = meter.digest();
  }
  if (sha256 !== m.dump.sha256) {
    cleanup();
    throw new UserError(`backup ${backup.id} is corrupt: sha256 of ${DUMP_FILE} is ${sha256}, the manifest says ${m.dump.sha256}`, {
      hint: 'Nothing was restored. Use another backup (see `backup.ts list --from ... --check`).',
      details: { id: backup.id, expected: m.dump.sha256, actual: sha256 },
    });
  }
  return { file, sha256, seconds: (performance.now() - started) / 1000, cleanup };
}

// ---------------------------------------------------------------------------------------------
// verify

export interface TableComparison {
  schema: string;
  table: string;
  expectedRows: number | null;
  actualRows: number | null;
  rowsMatch: boolean;
  checksumMatch: boolean;
  passed: boolean;
}

export function compareTables(expected: TableStats[], actual: TableStats[]): TableComparison[] {
  const key = (t: TableStats) => `${t.schema}.${t.table}`;
  const e = new Map(expected.map((t) => [key(t), t]));
  const a = new Map(actual.map((t) => [key(t), t]));
  const names = [...new Set([...e.keys(), ...a.keys()])].sort();
  return names.map((n) => {
    const x = e.get(n);
    const y = a.get(n);
    const rowsMatch = Boolean(x && y && x.rows === y.rows);
    const checksumMatch = Boolean(x && y && x.checksum === y.checksum);
    return {
      schema: (x ?? y)!.schema,
      table: (x ?? y)!.table,
      expectedRows: x?.rows ?? null,
      actualRows: y?.rows ?? null,
      rowsMatch,
      checksumMatch,
      passed: rowsMatch && checksumMatch,
    };
  });
}

export interface VerifyResult {
  id: string;
  passed: boolean;
  checksum: 'ok';
  scratchDatabase: string;
  tables: TableComparison[];
  seconds: { checksum: number; restore: number; compare: number; total: number };
}

export async function verifyBackup(o: { storage: BackupStorage; backup: BackupInfo; scratch: PgConnection; progress?: Progress; record?: boolean }): Promise<VerifyResult> {
  const started = performance.now();
  const m = o.backup.manifest!;
  const fetched = await fetchVerifiedDump(o.storage, o.backup, o.progress);
  const scratchName = `conduit_verify_${o.backup.id.toLowerCase().replace(/[^a-z0-9]/g, '_')}_${crypto.randomBytes(3).toString('hex')}`;
  let restoreSeconds = 0;
  let compareSeconds = 0;
  let tables: TableComparison[];
  try {
    o.progress?.(`restoring into scratch database ${scratchName}`);
    await createDatabase(o.scratch, scratchName);
    try {
      const t0 = performance.now();
      await restoreDump(withDatabase(o.scratch, scratchName), fetched.file, { clean: false, singleTransaction: true });
      restoreSeconds = (performance.now() - t0) / 1000;
      o.progress?.('comparing row counts and checksums');
      const t1 = performance.now();
      tables = compareTables(m.tables, await tableStats(withDatabase(o.scratch, scratchName), checksumKindOf(m.tables)));
      compareSeconds = (performance.now() - t1) / 1000;
    } finally {
      await dropDatabase(o.scratch, scratchName);
    }
  } finally {
    fetched.cleanup();
  }
  const result: VerifyResult = {
    id: o.backup.id,
    passed: tables.every((t) => t.passed),
    checksum: 'ok',
    scratchDatabase: scratchName,
    tables,
    seconds: { checksum: fetched.seconds, restore: restoreSeconds, compare: compareSeconds, total: (performance.now() - started) / 1000 },
  };
  if (o.record !== false) {
    const record = { passed: result.passed, at: new Date().toISOString(), sha256: m.dump.sha256, failedTables: tables.filter((t) => !t.passed).map((t) => `${t.schema}.${t.table}`) };
    await o.storage.put(`${o.backup.id}/${VERIFY_FILE}`, JSON.stringify(record, null, 2) + '\n').catch(() => undefined);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// restore

/**
 * Steps around a restore that depend on where the database runs. The plain variant does nothing;
 * the cluster variant (scale the API and Admin to zero, restore their replica counts afterwards,
 * also on failure, and write an audit entry) plugs in here.
 */
export interface RestoreHooks {
  describe(): string[];
  before(): Promise<void>;
  after(outcome: { ok: boolean; error?: unknown }): Promise<void>;
}

export const noRestoreHooks: RestoreHooks = { describe: () => [], before: async () => undefined, after: async () => undefined };

export interface RestorePlan {
  id: string;
  target: string;
  clean: boolean;
  steps: string[];
}

export function planRestore(backup: BackupInfo, target: PgConnection, clean: boolean, hooks: RestoreHooks = noRestoreHooks): RestorePlan {
  return {
    id: backup.id,
    target: describeConnection(target),
    clean,
    steps: [
      `verify the sha256 of ${backup.id}/${DUMP_FILE} (${formatBytes(backup.manifest!.dump.size)}) against the manifest`,
      clean ? 'target may hold data: objects of the dump are dropped and recreated (--clean --if-exists)' : 'check that the target database is empty',
      ...hooks.describe(),
      `pg_restore --single-transaction --exit-on-error --no-owner --no-privileges${clean ? ' --clean --if-exists' : ''} into ${describeConnection(target)}`,
      `compare row counts of ${backup.manifest!.tables.length} tables with the manifest`,
    ],
  };
}

export interface RestoreResult {
  id: string;
  target: string;
  tables: TableComparison[];
  passed: boolean;
  seconds: { checksum: number; restore: number; total: number };
}

export async function restoreBackup(o: { storage: BackupStorage; backup: BackupInfo; target: PgConnection; clean: boolean; hooks?: RestoreHooks; progress?: Progress }): Promise<RestoreResult> {
  const started = performance.now();
  const hooks = o.hooks ?? noRestoreHooks;
  // 1. Checksum first: a corrupt backup never touches the target.
  const fetched = await fetchVerifiedDump(o.storage, o.backup, o.progress);
  try {
    // 2. Refuse a non-empty target unless --clean.
    if (!o.clean) {
      const n = await countUserObjects(o.target);
      if (n.relations > 0 || n.largeObjects > 0) {
        throw new UserError(`target database ${describeConnection(o.target)} is not empty (${n.relations} relations, ${n.largeObjects} large objects); nothing was restored`, {
          hint: 'Restore into an empty database, or pass --clean to drop and recreate the objects the backup contains.',
        });
      }
    }
    let restoreSeconds = 0;
    // after() runs whatever happens once before() started (also when before() itself failed half-way),
    // so a cluster variant always gets its workloads back.
    try {
      await hooks.before();
      const t0 = performance.now();
      o.progress?.(`pg_restore into ${describeConnection(o.target)}`);
      await restoreDump(o.target, fetched.file, { clean: o.clean, singleTransaction: true });
      restoreSeconds = (performance.now() - t0) / 1000;
    } catch (e) {
      await hooks.after({ ok: false, error: e });
      throw e;
    }
    await hooks.after({ ok: true });
    const expected = o.backup.manifest!.tables;
    const tables = compareTables(expected, await tableStats(o.target, checksumKindOf(expected)));
    return {
      id: o.backup.id,
      target: describeConnection(o.target),
      tables,
      passed: tables.every((t) => t.passed),
      seconds: { checksum: fetched.seconds, restore: restoreSeconds, total: (performance.now() - started) / 1000 },
    };
  } finally {
    fetched.cleanup();
  }
}

// ---------------------------------------------------------------------------------------------
// prune: the retention policy as a pure function

export interface RetentionPolicy {
  daily: number;
  weekly: number;
  monthly: number;
}

export interface RetentionCandidate {
  id: string;
  time: Date;
  state: BackupState;
  /** Whether a `verify` of this backup passed (recorded in verify.json). */
  verified?: boolean;
  lastModified?: Date;
}

export interface RetentionDecision {
  id: string;
  action: 'keep' | 'delete';
  reasons: string[];
}

/** ISO 8601 week of a UTC time, e.g. "2026-W05" (weeks start on Monday; week 1 holds January 4th). */
export function isoWeek(t: Date): string {
  const d = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate()));
  const day = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - day); // the Thursday of this week decides its year
  const year = d.getUTCFullYear();
  const week = Math.ceil(((d.getTime() - Date.UTC(year, 0, 1)) / 86_400_000 + 1) / 7);
  return `${year}-W${String(week).padStart(2, '0')}`;
}

export const INCOMPLETE_GRACE_MS = 24 * 60 * 60 * 1000;

export const RETENTION_POLICY_TEXT = [
  'Retention policy (all times UTC, taken from the backup id):',
  '  Only valid backups (manifest present, dump size as recorded) count.',
  '  --keep-daily N:   for each of the N most recent calendar days that have a valid backup, keep the newest backup of that day.',
  '  --keep-weekly N:  the same per ISO week (Monday to Sunday), for the N most recent weeks with a valid backup.',
  '  --keep-monthly N: the same per calendar month, for the N most recent months with a valid backup.',
  '  A backup kept by any rule is kept. The newest valid backup, and the newest one whose `verify` passed, are always kept.',
  '  Every other valid backup is deleted.',
  '  Incomplete and corrupt backups are deleted when they are older than 24 hours (younger ones may still be uploading);',
  '  so are unfinished S3 multipart uploads older than 24 hours.',
  '  Folders whose name is not a backup id are never touched.',
].join('\n');

/** Decide which backups to keep and which to delete. Pure: same input, same answer. */
export function planRetention(backups: readonly RetentionCandidate[], policy: RetentionPolicy, now: Date): RetentionDecision[] {
  for (const [k, v] of Object.entries(policy)) {
    if (!Number.isInteger(v) || v < 0) throw new UserError(`--keep-${k} must be a whole number >= 0 (got ${v})`, { exitCode: 2 });
  }
  const reasons = new Map<string, string[]>();
  const keep = (id: string, why: string) => reasons.set(id, [...(reasons.get(id) ?? []), why]);
  const valid = backups.filter((b) => b.state === 'valid').sort((a, b) => b.time.getTime() - a.time.getTime() || b.id.localeCompare(a.id));

  const bucketRule = (n: number, label: string, bucketOf: (t: Date) => string) => {
    const seen = new Set<string>();
    for (const b of valid) {
      const bucket = bucketOf(b.time);
      if (seen.has(bucket)) continue;
      if (seen.size >= n) break;
      seen.add(bucket);
      keep(b.id, `${label} ${bucket}`);
    }
  };
  bucketRule(policy.daily, 'daily', (t) => t.toISOString().slice(0, 10));
  bucketRule(policy.weekly, 'weekly', isoWeek);
  bucketRule(policy.monthly, 'monthly', (t) => t.toISOString().slice(0, 7));
  if (valid[0]) keep(valid[0].id, 'newest valid backup');
  const newestVerified = valid.find((b) => b.verified);
  if (newestVerified) keep(newestVerified.id, 'newest verified backup');

  return [...backups]
    .sort((a, b) => a.time.getTime() - b.time.getTime() || a.id.localeCompare(b.id))
    .map((b): RetentionDecision => {
      if (b.state !== 'valid') {
        const age = now.getTime() - Math.max(b.time.getTime(), b.lastModified?.getTime() ?? 0);
        return age > INCOMPLETE_GRACE_MS
          ? { id: b.id, action: 'delete', reasons: [`${b.state}, older than 24h`] }
          : { id: b.id, action: 'keep', reasons: [`${b.state}, younger than 24h (may still be running)`] };
      }
      const r = reasons.get(b.id);
      return r ? { id: b.id, action: 'keep', reasons: r } : { id: b.id, action: 'delete', reasons: ['not selected by any keep rule'] };
    });
}

export async function pruneBackups(o: {
  storage: BackupStorage;
  policy: RetentionPolicy;
  dryRun: boolean;
  now?: Date;
}): Promise<{ decisions: RetentionDecision[]; deleted: string[]; staleUploads: string[] }> {
  const all = await listBackups(o.storage);
  const now = o.now ?? new Date();
  const decisions = planRetention(
    all.map((b) => ({ id: b.id, time: b.time, state: b.state, verified: b.lastVerify?.passed === true, lastModified: b.lastModified })),
    o.policy,
    now,
  );
  const deleted: string[] = [];
  if (!o.dryRun) {
    for (const d of decisions.filter((x) => x.action === 'delete')) {
      await o.storage.deletePrefix(`${d.id}/`);
      deleted.push(d.id);
    }
  }
  // Multipart uploads of killed runs: never visible as backups, but they take space.
  const staleUploads = await o.storage.staleUploads(new Date(now.getTime() - INCOMPLETE_GRACE_MS), o.dryRun);
  return { decisions, deleted, staleUploads };
}
