// Fetching release files over HTTP(S) (or from a file:// mirror) and taking one binary out of a
// release archive. No external program: node's http/https, zlib and a small tar and zip reader.
// Every failure is a DownloadError whose kind says what went wrong (the caller decides whether to
// fall back) and whose message fits on one line.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

export type DownloadFailure =
  /** No connection: DNS, refused, no route, connect timeout. */
  | 'unreachable'
  /** The server answered, but not with the file (404 and other non-2xx statuses). */
  | 'missing'
  /** The transfer broke off or stalled. */
  | 'interrupted'
  | 'checksum'
  | 'archive'
  | 'version';

export class DownloadError extends Error {
  readonly kind: DownloadFailure;
  readonly host?: string;
  constructor(kind: DownloadFailure, message: string, host?: string) {
    super(message);
    this.name = 'DownloadError';
    this.kind = kind;
    this.host = host;
  }
}

export function isDownloadError(e: unknown): e is DownloadError {
  return e instanceof DownloadError;
}

export interface FetchOptions {
  /** How long to wait for the TCP (and TLS) connection; short, so that an offline machine gives up fast. */
  connectTimeoutMs?: number;
  /** How long the transfer may stall without a byte arriving. */
  idleTimeoutMs?: number;
  /** Called as bytes arrive (total when the server sent a length). */
  onProgress?: (received: number, total?: number) => void;
}

export const CONNECT_TIMEOUT_MS = 3000;
const IDLE_TIMEOUT_MS = 30_000;
const MAX_REDIRECTS = 5;
// Error codes that mean "no connection could be made" (as opposed to a transfer that broke off).
const UNREACHABLE_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'ETIMEDOUT', 'EADDRNOTAVAIL']);

function describeNetworkError(e: NodeJS.ErrnoException, host: string): string {
  switch (e.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
      return `${host}: name not resolved (${e.code})`;
    case 'ECONNREFUSED':
      return `${host}: connection refused`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENETDOWN':
    case 'EHOSTDOWN':
      return `${host}: no route (${e.code})`;
    default:
      return `${host}: ${e.code ?? ''} ${e.message}`.replace(/\s+/g, ' ').trim();
  }
}

/** The server's answer to GET url, after redirects; rejects with a DownloadError for anything but 2xx. */
async function openHttp(url: URL, o: FetchOptions): Promise<http.IncomingMessage> {
  let current = url;
  for (let hop = 0; ; hop++) {
    const res = await requestOnce(current, o);
    const status = res.statusCode ?? 0;
    if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
      res.resume();
      if (hop >= MAX_REDIRECTS) throw new DownloadError('missing', `${url.host}: more than ${MAX_REDIRECTS} redirects for ${url.pathname}`, url.host);
      current = new URL(res.headers.location, current);
      continue;
    }
    if (status < 200 || status > 299) {
      res.resume();
      throw new DownloadError('missing', `${current.host} answered HTTP ${status} for ${current.pathname}`, current.host);
    }
    return res;
  }
}

function requestOnce(url: URL, o: FetchOptions): Promise<http.IncomingMessage> {
  const connectMs = o.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
  const idleMs = o.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
    if (!mod) return reject(new DownloadError('missing', `unsupported URL scheme ${url.protocol} (${url.href})`));
    let connected = false;
    const req = mod.get(url, { headers: { 'user-agent': 'conduit-deploy-tools', accept: '*/*' } });
    const connectTimer = setTimeout(() => req.destroy(new DownloadError('unreachable', `${url.host}: no connection within ${connectMs / 1000}s`, url.host)), connectMs);
    req.on('socket', (socket) => {
      const up = () => {
        connected = true;
        clearTimeout(connectTimer);
      };
      if (!socket.connecting) up();
      else socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', up);
    });
    req.setTimeout(idleMs, () => req.destroy(new DownloadError(connected ? 'interrupted' : 'unreachable', `${url.host}: nothing received for ${idleMs / 1000}s`, url.host)));
    req.on('response', (res) => {
      clearTimeout(connectTimer);
      resolve(res);
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(connectTimer);
      if (e instanceof DownloadError) return reject(e);
      const kind = !connected || UNREACHABLE_CODES.has(e.code ?? '') ? 'unreachable' : 'interrupted';
      reject(new DownloadError(kind, describeNetworkError(e, url.host), url.host));
    });
  });
}

/** A readable stream of the file at url (http, https or file), with its length when known. */
async function openSource(url: string, o: FetchOptions): Promise<{ stream: Readable; total?: number; host: string }> {
  const u = new URL(url);
  if (u.protocol === 'file:') {
    const file = fileURLToPath(u);
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (!st?.isFile()) throw new DownloadError('missing', `${file} does not exist`);
    return { stream: fs.createReadStream(file), total: st.size, host: 'file' };
  }
  const res = await openHttp(u, o);
  const length = Number(res.headers['content-length']);
  return { stream: res, total: Number.isFinite(length) && length >= 0 && res.headers['content-length'] !== undefined ? length : undefined, host: u.host };
}

function formatBytes(n: number): string {
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * Download url into file (created new, never overwritten), hashing it on the way. The caller owns
 * the file: on failure it may hold a partial transfer and must be removed.
 */
export async function downloadToFile(url: string, file: string, o: FetchOptions = {}): Promise<{ sha256: string; bytes: number }> {
  const { stream, total, host } = await openSource(url, o);
  const hash = crypto.createHash('sha256');
  let received = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      received += chunk.length;
      o.onProgress?.(received, total);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(stream, meter, fs.createWriteStream(file, { flags: 'wx', mode: 0o600 }));
  } catch (e) {
    if (e instanceof DownloadError) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EEXIST' || err.code === 'ENOSPC' || err.code === 'EACCES') throw e;
    throw new DownloadError('interrupted', `transfer from ${host} broke off after ${formatBytes(received)}${total !== undefined ? ` of ${formatBytes(total)}` : ''}`, host);
  }
  if (total !== undefined && received !== total) {
    throw new DownloadError('interrupted', `transfer from ${host} ended after ${formatBytes(received)} of ${formatBytes(total)}`, host);
  }
  return { sha256: hash.digest('hex'), bytes: received };
}

/** A small text file (checksums, release metadata); refuses anything over maxBytes. */
export async function fetchText(url: string, o: FetchOptions = {}, maxBytes = 1024 * 1024): Promise<string> {
  const { stream, host } = await openSource(url, o);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      size += (chunk as Buffer).length;
      if (size > maxBytes) {
        stream.destroy();
        throw new DownloadError('missing', `${url} is larger than ${formatBytes(maxBytes)}: not a checksum file`, host);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (e) {
    if (e instanceof DownloadError) throw e;
    throw new DownloadError('interrupted', `transfer of ${url} from ${host} broke off`, host);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// ---------------------------------------------------------------------------------------------
// Checksum files, in the formats the publishers serve.

const HEX64 = /^[0-9a-f]{64}$/;

/** A file holding just the digest of one file (dl.k8s.io's `<file>.sha256`); a trailing name is allowed. */
export function digestFromSingleFile(text: string): string | undefined {
  const first = text.trim().split(/\s+/)[0]?.toLowerCase() ?? '';
  return HEX64.test(first) ? first : undefined;
}

/**
 * `sha256sum` output: lines `<hex>  <name>` (a `*` before the name marks binary mode, `./` may
 * prefix it). Lines that are not of that shape are skipped, so a PGP clear-signed file (rclone's
 * SHA256SUMS) reads the same as a plain one.
 */
export function digestFromSumsFile(text: string, fileName: string): string | undefined {
  for (const line of text.split(/\r?\n/)) {
    const m = /^([0-9a-fA-F]{64})\s+\*?(?:\.\/)?(\S.*?)\s*$/.exec(line.trim());
    if (m && m[2] === fileName) return m[1].toLowerCase();
  }
  return undefined;
}

/** GitHub's release API document: every asset carries `digest: "sha256:<hex>"` (for assets uploaded since mid-2025). */
export function digestFromGithubRelease(text: string, fileName: string): string | undefined {
  let doc: { assets?: { name?: string; digest?: string | null }[] };
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  const digest = doc.assets?.find((a) => a.name === fileName)?.digest ?? '';
  const m = /^sha256:([0-9a-fA-F]{64})$/.exec(digest);
  return m ? m[1].toLowerCase() : undefined;
}

export async function sha256OfFile(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Archives: take one member out, written to dest (a new file, mode 0755).

const normalizeMember = (name: string) => name.replace(/^(\.\/)+/, '').replace(/\/+$/, '');

function corrupt(archive: string, why: string): DownloadError {
  return new DownloadError('archive', `${archive.split('/').pop()} is not a readable archive: ${why}`);
}

/** Reads a tar stream and writes the one wanted regular file to fd; everything else is skipped. */
class TarMember extends Writable {
  found = false;
  ended = false;
  private pending = Buffer.alloc(0);
  /** Bytes of the current entry's body still to come, and the padding after it. */
  private bodyLeft = 0;
  private padLeft = 0;
  private sink: 'skip' | 'member' | 'meta' = 'skip';
  private meta: Buffer[] = [];
  private metaType = '';
  private nextName?: string;

  private readonly member: string;
  private readonly fd: number;
  private readonly label: string;

  constructor(member: string, fd: number, label: string) {
    super();
    this.member = member;
    this.fd = fd;
    this.label = label;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    try {
      this.consume(chunk);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _final(cb: (e?: Error | null) => void): void {
    if (this.bodyLeft > 0) return cb(corrupt(this.label, 'it ends in the middle of an entry'));
    if (!this.ended && !this.found) return cb(corrupt(this.label, 'it ends without the end-of-archive marker'));
    cb();
  }

  private consume(chunk: Buffer): void {
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    while (buf.length) {
      if (this.ended) return;
      if (this.bodyLeft > 0) {
        const n = Math.min(this.bodyLeft, buf.length);
        const part = buf.subarray(0, n);
        if (this.sink === 'member') fs.writeSync(this.fd, part);
        else if (this.sink === 'meta') this.meta.push(Buffer.from(part));
        this.bodyLeft -= n;
        buf = buf.subarray(n);
        if (this.bodyLeft === 0) this.endOfBody();
        continue;
      }
      if (this.padLeft > 0) {
        const n = Math.min(this.padLeft, buf.length);
        this.padLeft -= n;
        buf = buf.subarray(n);
        continue;
      }
      if (buf.length < 512) {
        this.pending = Buffer.from(buf);
        return;
      }
      this.header(buf.subarray(0, 512));
      buf = buf.subarray(512);
    }
  }

  private header(h: Buffer): void {
    if (h.every((b) => b === 0)) {
      // The end-of-archive marker (two zero blocks; one is enough to stop reading).
      this.ended = true;
      return;
    }
    const field = (off: number, len: number) =>
      h
        .subarray(off, off + len)
        .toString('utf8')
        .replace(/\0.*$/s, '');
    const stored = parseInt(field(148, 8).trim() || 'x', 8);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
    if (!Number.isFinite(stored) || stored !== sum) throw corrupt(this.label, 'a header checksum does not match');
    const size = this.sizeField(h.subarray(124, 136));
    const type = String.fromCharCode(h[156] || 48);
    const prefix = h.subarray(257, 263).toString('latin1').startsWith('ustar') ? field(345, 155) : '';
    const name = normalizeMember(this.nextName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100)));
    this.bodyLeft = size;
    this.padLeft = (512 - (size % 512)) % 512;
    if (type === 'L' || type === 'x') {
      this.sink = 'meta';
      this.metaType = type;
      this.meta = [];
    } else {
      this.nextName = undefined;
      if (name === this.member && (type === '0' || type === '7')) {
        if (this.found) throw corrupt(this.label, `${this.member} appears twice`);
        this.found = true;
        this.sink = 'member';
      } else if (name === this.member && type !== '5') {
        throw new DownloadError('archive', `${this.member} in ${this.label} is not a regular file (tar type ${type})`);
      } else this.sink = 'skip';
    }
    if (size === 0) this.endOfBody();
  }

  private sizeField(f: Buffer): number {
    // GNU base-256 encoding for sizes over 8 GiB: never expected here.
    if (f[0] & 0x80) throw corrupt(this.label, 'an entry is larger than any release binary');
    const n = parseInt(f.toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
    if (!Number.isFinite(n) || n < 0) throw corrupt(this.label, 'an entry size is not a number');
    return n;
  }

  private endOfBody(): void {
    if (this.sink === 'meta') {
      const text = Buffer.concat(this.meta).toString('utf8');
      if (this.metaType === 'L') this.nextName = text.replace(/\0.*$/s, '');
      else {
        // pax records: "<len> key=value\n"
        for (const rec of text.split('\n')) {
          const m = /^\d+ path=(.*)$/.exec(rec);
          if (m) this.nextName = m[1];
        }
      }
    }
    this.sink = 'skip';
  }
}

/** Extract member (a path inside the archive, e.g. `linux-amd64/helm`) of a .tar.gz into dest. */
export async function extractFromTarGz(archive: string, member: string, dest: string): Promise<void> {
  const label = archive.split('/').pop() ?? archive;
  const fd = fs.openSync(dest, 'wx', 0o755);
  const reader = new TarMember(normalizeMember(member), fd, label);
  try {
    await pipeline(fs.createReadStream(archive), zlib.createGunzip(), reader);
  } catch (e) {
    if (e instanceof DownloadError) throw e;
    throw corrupt(archive, (e as Error).message.split('\n')[0]);
  } finally {
    fs.closeSync(fd);
  }
  if (!reader.found) throw new DownloadError('archive', `${label} has no ${member}`);
}

interface ZipEntry {
  method: number;
  flags: number;
  compressed: number;
  size: number;
  dataStart: number;
}

/** Find member in the zip's central directory and where its data starts. */
async function locateZipEntry(archive: string, member: string): Promise<ZipEntry> {
  const label = archive.split('/').pop() ?? archive;
  const fh = await fs.promises.open(archive, 'r');
  try {
    const { size: fileSize } = await fh.stat();
    const tailLen = Math.min(fileSize, 65_535 + 22);
    const tail = Buffer.alloc(tailLen);
    await fh.read(tail, 0, tailLen, fileSize - tailLen);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0 && eocd < 0; i--) if (tail.readUInt32LE(i) === 0x06054b50) eocd = i;
    if (eocd < 0) throw corrupt(archive, 'no end-of-central-directory record');
    const cdSize = tail.readUInt32LE(eocd + 12);
    const cdOffset = tail.readUInt32LE(eocd + 16);
    if (cdOffset === 0xffffffff || cdSize === 0xffffffff) throw corrupt(archive, 'zip64 archives are not supported');
    if (cdOffset + cdSize > fileSize) throw corrupt(archive, 'the central directory lies outside the file');
    const cd = Buffer.alloc(cdSize);
    await fh.read(cd, 0, cdSize, cdOffset);
    for (let p = 0; p + 46 <= cd.length;) {
      if (cd.readUInt32LE(p) !== 0x02014b50) throw corrupt(archive, 'a damaged central directory entry');
      const nameLen = cd.readUInt16LE(p + 28);
      const next = p + 46 + nameLen + cd.readUInt16LE(p + 30) + cd.readUInt16LE(p + 32);
      if (normalizeMember(cd.subarray(p + 46, p + 46 + nameLen).toString('utf8')) === member) {
        const flags = cd.readUInt16LE(p + 8);
        const method = cd.readUInt16LE(p + 10);
        const compressed = cd.readUInt32LE(p + 20);
        const size = cd.readUInt32LE(p + 24);
        const localOffset = cd.readUInt32LE(p + 42);
        if (flags & 1) throw corrupt(archive, `${member} is encrypted`);
        if (method !== 0 && method !== 8) throw corrupt(archive, `${member} uses compression method ${method}`);
        const local = Buffer.alloc(30);
        await fh.read(local, 0, 30, localOffset);
        if (local.readUInt32LE(0) !== 0x04034b50) throw corrupt(archive, 'a damaged local file header');
        const dataStart = localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
        if (dataStart + compressed > fileSize) throw corrupt(archive, `${member} runs past the end of the file`);
        return { method, flags, compressed, size, dataStart };
      }
      p = next;
    }
    throw new DownloadError('archive', `${label} has no ${member}`);
  } finally {
    await fh.close();
  }
}

/** Extract member of a .zip into dest (stored or deflated entries; no zip64, no encryption). */
export async function extractFromZip(archive: string, member: string, dest: string): Promise<void> {
  const e = await locateZipEntry(archive, normalizeMember(member));
  let written = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      written += chunk.length;
      cb(null, chunk);
    },
  });
  const out = fs.createWriteStream(dest, { flags: 'wx', mode: 0o755 });
  try {
    if (e.compressed === 0) await pipeline(Readable.from([]), counter, out);
    else {
      const data = fs.createReadStream(archive, { start: e.dataStart, end: e.dataStart + e.compressed - 1 });
      if (e.method === 8) await pipeline(data, zlib.createInflateRaw(), counter, out);
      else await pipeline(data, counter, out);
    }
  } catch (err) {
    throw corrupt(archive, `${member}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (written !== e.size) throw corrupt(archive, `${member} unpacked to ${written} bytes where the directory says ${e.size}`);
}
