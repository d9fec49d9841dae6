// Backup destinations behind one interface: a local directory or an S3-compatible bucket
// (s3://bucket/prefix, AWS or any S3 server, through the same AWS SDK code path).
// Keys are relative to the destination root and use '/' separators ("<id>/dump.pgc").
// Writes are atomic from a reader's side: a streamed upload either completes whole or leaves
// nothing a reader would mistake for a finished file (a directory write goes to a .partial file
// renamed at the end; an S3 multipart upload is aborted on failure and invisible until completed).
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
// The AWS SDK is loaded only for s3:// destinations: it takes a noticeable part of a second to load,
// which directory destinations should not pay.
import type { S3Client, S3ClientConfig, UploadPartCommand } from '@aws-sdk/client-s3';
import { UserError, usageError } from '../core/errors.ts';
import { registerSecret } from '../core/redact.ts';

export interface StoredObject {
  key: string;
  size: number;
  modified: Date;
}

export interface BackupStorage {
  /** Where this is, for people (no credentials). */
  readonly display: string;
  list(): Promise<StoredObject[]>;
  /** Stream a body into key; on error or abort nothing readable is left under key. */
  upload(key: string, body: Readable, signal?: AbortSignal, expectedBytes?: number): Promise<void>;
  /**
   * Directories only: `write` makes the object as a local file at the path it is given; the object
   * appears under key, durable, once `write` resolved, and nothing is left when it throws.
   */
  writeLocal?<T>(key: string, write: (file: string) => Promise<T>): Promise<T>;
  /** Write a small object at once (atomic). */
  put(key: string, data: Buffer | string): Promise<void>;
  /** Read a small object; undefined when it does not exist. */
  get(key: string): Promise<Buffer | undefined>;
  read(key: string): Promise<Readable>;
  /** A local file path for key when the storage is a directory (saves a copy before pg_restore). */
  localPath(key: string): string | undefined;
  /** Delete every object whose key starts with prefix; returns how many were deleted. */
  deletePrefix(prefix: string): Promise<number>;
  /**
   * Unfinished uploads started before `before` (S3 multipart uploads of killed runs, invisible to
   * list but billed); aborted unless dryRun. Returns their keys.
   */
  staleUploads(before: Date, dryRun: boolean): Promise<string[]>;
}

export interface S3Options {
  /** Endpoint of an S3-compatible server; default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS. */
  endpoint?: string;
  region?: string;
  /** Names of environment variables holding the access key id and secret (never the values). */
  accessKeyEnv?: string;
  secretKeyEnv?: string;
  /** Path-style addressing (default: on when a custom endpoint is used). */
  forcePathStyle?: boolean;
}

// ---------------------------------------------------------------------------------------------

async function fsyncFile(p: string): Promise<void> {
  const fh = await fs.promises.open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class DirectoryStorage implements BackupStorage {
  readonly root: string;
  readonly display: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.display = this.root;
  }

  private file(key: string): string {
    const p = path.resolve(this.root, key);
    if (!p.startsWith(this.root + path.sep)) throw new Error(`key outside the destination: ${key}`);
    return p;
  }

  async list(): Promise<StoredObject[]> {
    if (!fs.existsSync(this.root)) {
      throw new UserError(`backup directory ${this.root} does not exist`, { hint: 'Check --from/--to, or create the directory.' });
    }
    const out: StoredObject[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile()) {
          const st = fs.statSync(p);
          out.push({ key: path.relative(this.root, p).split(path.sep).join('/'), size: st.size, modified: st.mtime });
        }
      }
    };
    walk(this.root);
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }

  async upload(key: string, body: Readable, signal?: AbortSignal): Promise<void> {
    await this.writeLocal(key, (partial) => pipeline(body, fs.createWriteStream(partial, { highWaterMark: 1 << 20 }), { signal }));
  }

  async writeLocal<T>(key: string, write: (file: string) => Promise<T>): Promise<T> {
    const target = this.file(key);
    const partial = `${target}.partial`;
    fs.mkdirSync(path.dirname(target), { recursive: true });
    try {
      const result = await write(partial);
      // Durable before it gets its final name (and before the manifest is written after it),
      // as pg_dump -f does for its own output.
      await fsyncFile(partial);
      fs.renameSync(partial, target);
      await fsyncFile(path.dirname(target));
      return result;
    } catch (e) {
      fs.rmSync(partial, { force: true });
      throw e;
    }
  }

  async put(key: string, data: Buffer | string): Promise<void> {
    const target = this.file(key);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const tmp = `${target}.partial`;
    fs.writeFileSync(tmp, data);
    await fsyncFile(tmp);
    fs.renameSync(tmp, target);
    await fsyncFile(path.dirname(target));
  }

  async get(key: string): Promise<Buffer | undefined> {
    const p = this.file(key);
    return fs.existsSync(p) ? fs.readFileSync(p) : undefined;
  }

  async read(key: string): Promise<Readable> {
    return fs.createReadStream(this.file(key), { highWaterMark: 1 << 20 });
  }

  localPath(key: string): string | undefined {
    return this.file(key);
  }

  async staleUploads(): Promise<string[]> {
    return []; // a killed directory write leaves a .partial file inside its incomplete backup folder
  }

  async deletePrefix(prefix: string): Promise<number> {
    const dir = this.file(prefix.replace(/\/$/, ''));
    if (!fs.existsSync(dir)) return 0;
    const n = (await this.list()).filter((o) => o.key.startsWith(prefix)).length;
    fs.rmSync(dir, { recursive: true, force: true });
    return n;
  }
}

// ---------------------------------------------------------------------------------------------

/** S3 allows 10 000 parts per upload, each at most 5 GiB. */
const MAX_PARTS = 10_000;
const MIN_PART = 8 * 1024 * 1024;
const MAX_PART = 5 * 1024 * 1024 * 1024;

/**
 * The part size of a multipart upload whose size is known only roughly beforehand: 8 MiB, or larger
 * (whole MiB) so that twice the expected size still fits in S3's 10 000 parts. With 8 MiB parts
 * alone an upload would end at about 80 GB.
 */
export function multipartPartSize(expectedBytes = 0): number {
  const needed = Math.ceil((2 * expectedBytes) / MAX_PARTS / (1024 * 1024)) * 1024 * 1024;
  return Math.min(MAX_PART, Math.max(MIN_PART, needed));
}

type S3Sdk = typeof import('@aws-sdk/client-s3');

/**
 * Sends a part without hashing its body into the request signature (the signature still covers the
 * request itself). The dump's integrity rests on the manifest's sha256, which is signed with the
 * manifest and checked by `list --check`, `verify` and `restore` before anything is restored; over
 * HTTPS, TLS protects each part in transit as well. Hashing every part for the signature would cost
 * this process and the server one more pass over the whole dump.
 */
function unsignedPayload(command: UploadPartCommand): void {
  command.middlewareStack.add(
    (next) => (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request?.headers) request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(args);
    },
    { step: 'build', name: 'conduitUnsignedPayload' },
  );
}

/** How many parts are on their way at once (each holds one buffer of the part size). */
const PARTS_IN_FLIGHT = 2;

/**
 * Streams `body` into one S3 object. A body smaller than one part goes up in a single PutObject;
 * a larger one as a multipart upload whose parts leave as they fill, PARTS_IN_FLIGHT at a time,
 * while the next part fills. The part buffers (PARTS_IN_FLIGHT + 1 of them) are allocated once and
 * reused: the stream's chunks are copied into them once, and nothing else is allocated per byte
 * (a general-purpose uploader that concatenates chunks into new parts costs a dump on the same
 * machine noticeably more CPU). Each part is a Buffer, so the SDK's own retries can resend it.
 * On any failure or abort the in-flight requests are cancelled and the multipart upload aborted:
 * no object appears under the key.
 */
async function uploadInParts(client: S3Client, s3: S3Sdk, target: { Bucket: string; Key: string }, body: Readable, o: { partSize: number; signal?: AbortSignal }): Promise<void> {
  const cancel = new AbortController();
  const onAbort = () => {
    cancel.abort();
    body.destroy(Object.assign(new Error('upload aborted'), { name: 'AbortError' }));
  };
  if (o.signal?.aborted) onAbort();
  else o.signal?.addEventListener('abort', onAbort, { once: true });
  const cancellable = { abortSignal: cancel.signal };
  const free: Buffer[] = [];
  let buffers = 0;
  const take = async (): Promise<Buffer> => {
    if (free.length === 0 && buffers <= PARTS_IN_FLIGHT) {
      buffers++;
      return Buffer.allocUnsafe(o.partSize);
    }
    while (free.length === 0) {
      // A failed part keeps its buffer: with nothing left in flight, the failure is the answer.
      if (failure || inFlight.size === 0) throw failure ?? new Error('no part buffer free and no part in flight');
      await Promise.race(inFlight);
    }
    return free.pop()!;
  };
  const inFlight = new Set<Promise<void>>();
  const parts: { PartNumber: number; ETag?: string }[] = [];
  let uploadId: string | undefined;
  let failure: unknown;
  let partNumber = 0;
  const sendPart = (buffer: Buffer, length: number) => {
    const PartNumber = ++partNumber;
    if (PartNumber > MAX_PARTS) throw new UserError(`${target.Key} outgrew ${MAX_PARTS} parts of ${o.partSize} bytes (S3's limit)`);
    const command = new s3.UploadPartCommand({ ...target, UploadId: uploadId, PartNumber, Body: buffer.subarray(0, length), ContentLength: length });
    unsignedPayload(command);
    const part: Promise<void> = client
      .send(command, cancellable)
      .then(
        (r) => {
          parts.push({ PartNumber, ETag: r.ETag });
          free.push(buffer);
        },
        (e) => {
          // The first failure stops the rest at once: the other parts, and the reading (whoever
          // feeds the body learns it). Parts failing because of that stop say nothing new.
          if (cancel.signal.aborted) return;
          failure = e;
          cancel.abort();
          body.destroy(e as Error);
        },
      )
      .finally(() => inFlight.delete(part));
    inFlight.add(part);
  };
  try {
    let current = await take();
    let filled = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      for (let at = 0; at < chunk.length;) {
        const n = chunk.copy(current, filled, at, Math.min(chunk.length, at + o.partSize - filled));
        filled += n;
        at += n;
        if (filled < o.partSize) continue;
        uploadId ??= (await client.send(new s3.CreateMultipartUploadCommand({ ...target, ContentType: 'application/octet-stream' }), cancellable)).UploadId;
        if (failure) throw failure;
        sendPart(current, filled);
        current = await take();
        if (failure) throw failure;
        filled = 0;
      }
    }
    if (uploadId === undefined) {
      await client.send(new s3.PutObjectCommand({ ...target, Body: current.subarray(0, filled), ContentLength: filled, ContentType: 'application/octet-stream' }), cancellable);
      return;
    }
    if (filled > 0) sendPart(current, filled);
    await Promise.all(inFlight);
    if (failure) throw failure;
    parts.sort((a, b) => a.PartNumber - b.PartNumber);
    await client.send(new s3.CompleteMultipartUploadCommand({ ...target, UploadId: uploadId, MultipartUpload: { Parts: parts } }), cancellable);
  } catch (e) {
    failure ??= e;
    cancel.abort();
    await Promise.allSettled([...inFlight]);
    if (uploadId !== undefined) await client.send(new s3.AbortMultipartUploadCommand({ ...target, UploadId: uploadId })).catch(() => undefined);
    throw failure;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
}

export class S3Storage implements BackupStorage {
  readonly bucket: string;
  readonly prefix: string;
  readonly display: string;
  private readonly config: S3ClientConfig;
  private sdk?: Promise<{ client: S3Client; s3: S3Sdk }>;

  constructor(bucket: string, prefix: string, options: S3Options = {}) {
    this.bucket = bucket;
    this.prefix = prefix.replace(/^\/+|\/+$/g, '');
    const endpoint = options.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
    this.display = `s3://${bucket}${this.prefix ? `/${this.prefix}` : ''}${endpoint ? ` (endpoint ${endpoint})` : ''}`;
    const config: S3ClientConfig = {
      region: options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      forcePathStyle: options.forcePathStyle ?? Boolean(endpoint),
      // Only send/expect checksums where the API requires them: S3-compatible servers differ in
      // their support of the newer default checksum headers.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    };
    if (endpoint) config.endpoint = endpoint;
    if (options.accessKeyEnv || options.secretKeyEnv) {
      const id = options.accessKeyEnv ? process.env[options.accessKeyEnv] : undefined;
      const secret = options.secretKeyEnv ? process.env[options.secretKeyEnv] : undefined;
      if (!id || !secret) {
        throw usageError(
          `S3 credentials: ${[!id && `$${options.accessKeyEnv ?? '(--s3-access-key-env not given)'}`, !secret && `$${options.secretKeyEnv ?? '(--s3-secret-key-env not given)'}`].filter(Boolean).join(' and ')} not set`,
          'Name both environment variables with --s3-access-key-env and --s3-secret-key-env, and export them.',
        );
      }
      registerSecret(secret);
      config.credentials = { accessKeyId: id, secretAccessKey: secret };
    }
    registerSecret(process.env.AWS_SECRET_ACCESS_KEY);
    registerSecret(process.env.AWS_SESSION_TOKEN);
    this.config = config;
  }

  private load() {
    this.sdk ??= (async () => {
      // The SDK warns on every run that future versions need Node 22; the toolkit supports Node 20.
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      // require(), not import(): the SDK is CommonJS, and import() would first scan its large
      // bundles for their export names (half the load's CPU).
      const s3 = createRequire(import.meta.url)('@aws-sdk/client-s3') as S3Sdk;
      return { client: new s3.S3Client(this.config), s3 };
    })();
    return this.sdk;
  }

  private key(k: string): string {
    return this.prefix ? `${this.prefix}/${k}` : k;
  }

  private wrap(e: unknown, what: string): never {
    const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    if (err?.name === 'AbortError') throw e;
    const status = err?.$metadata?.httpStatusCode;
    throw new UserError(`S3 ${what} on ${this.display} failed: ${err?.name ?? 'error'}${status ? ` (HTTP ${status})` : ''}: ${err?.message ?? String(e)}`, {
      hint: 'Check the bucket, the endpoint (--s3-endpoint or AWS_ENDPOINT_URL) and the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).',
    });
  }

  async list(): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    let token: string | undefined;
    const base = this.prefix ? `${this.prefix}/` : '';
    const { client, s3 } = await this.load();
    try {
      do {
        const r = await client.send(new s3.ListObjectsV2Command({ Bucket: this.bucket, Prefix: base, ContinuationToken: token }));
        for (const o of r.Contents ?? []) {
          if (!o.Key) continue;
          out.push({ key: o.Key.slice(base.length), size: o.Size ?? 0, modified: o.LastModified ?? new Date(0) });
        }
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
    } catch (e) {
      this.wrap(e, 'list');
    }
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }

  async upload(key: string, body: Readable, signal?: AbortSignal, expectedBytes?: number): Promise<void> {
    const { client, s3 } = await this.load();
    try {
      await uploadInParts(client, s3, { Bucket: this.bucket, Key: this.key(key) }, body, { partSize: multipartPartSize(expectedBytes), signal });
    } catch (e) {
      if ((e as Error)?.name === 'AbortError' || signal?.aborted) throw e;
      if (e instanceof UserError) throw e;
      this.wrap(e, `upload of ${key}`);
    }
  }

  async put(key: string, data: Buffer | string): Promise<void> {
    const { client, s3 } = await this.load();
    try {
      await client.send(new s3.PutObjectCommand({ Bucket: this.bucket, Key: this.key(key), Body: data, ContentType: key.endsWith('.json') ? 'application/json' : undefined }));
    } catch (e) {
      this.wrap(e, `put ${key}`);
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    const { client, s3 } = await this.load();
    try {
      const r = await client.send(new s3.GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
      return Buffer.from(await r.Body!.transformToByteArray());
    } catch (e) {
      const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (err?.name === 'NoSuchKey' || err?.$metadata?.httpStatusCode === 404) return undefined;
      this.wrap(e, `get ${key}`);
    }
  }

  async read(key: string): Promise<Readable> {
    const { client, s3 } = await this.load();
    try {
      const r = await client.send(new s3.GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
      return r.Body as Readable;
    } catch (e) {
      this.wrap(e, `get ${key}`);
    }
  }

  localPath(): undefined {
    return undefined;
  }

  async staleUploads(before: Date, dryRun: boolean): Promise<string[]> {
    const { client, s3 } = await this.load();
    const base = this.prefix ? `${this.prefix}/` : '';
    const stale: { Key: string; UploadId: string }[] = [];
    try {
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      do {
        const r = await client.send(new s3.ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: base, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
        for (const u of r.Uploads ?? []) {
          if (u.Key && u.UploadId && u.Initiated && u.Initiated < before) stale.push({ Key: u.Key, UploadId: u.UploadId });
        }
        keyMarker = r.IsTruncated ? r.NextKeyMarker : undefined;
        uploadIdMarker = r.IsTruncated ? r.NextUploadIdMarker : undefined;
      } while (keyMarker);
      if (!dryRun) {
        for (const u of stale) await client.send(new s3.AbortMultipartUploadCommand({ Bucket: this.bucket, ...u }));
      }
    } catch (e) {
      // Some S3-compatible servers answer a listing without uploads with NoSuchUpload, others do
      // not implement the call at all: there is nothing to clean up then.
      const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (!(err?.name === 'NoSuchUpload' || err?.name === 'NotImplemented' || err?.$metadata?.httpStatusCode === 501)) this.wrap(e, 'multipart upload cleanup');
    }
    return stale.map((u) => u.Key.slice(base.length));
  }

  async deletePrefix(prefix: string): Promise<number> {
    const keys = (await this.list()).filter((o) => o.key.startsWith(prefix)).map((o) => this.key(o.key));
    const { client, s3 } = await this.load();
    for (let i = 0; i < keys.length; i += 1000) {
      try {
        const r = await client.send(new s3.DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true } }));
        if (r.Errors?.length) throw new UserError(`S3 delete on ${this.display}: ${r.Errors.map((x) => `${x.Key}: ${x.Code}`).join(', ')}`);
      } catch (e) {
        if (e instanceof UserError) throw e;
        this.wrap(e, 'delete');
      }
    }
    return keys.length;
  }
}

/** A destination from --to/--from: s3://bucket/prefix, file:///path or a directory path. */
export function openStorage(dest: string, s3: S3Options = {}): BackupStorage {
  if (!dest) throw usageError('no backup destination given', 'Pass --to/--from DIR or s3://bucket/prefix.');
  if (/^s3:\/\//i.test(dest)) {
    const m = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(dest);
    if (!m || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[1])) {
      throw usageError(`"${dest}" is not a valid S3 destination`, 'Use s3://BUCKET/PREFIX (bucket names: lowercase letters, digits, dots, dashes).');
    }
    return new S3Storage(m[1], m[2], s3);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(dest) && !dest.startsWith('file://')) {
    throw usageError(`unsupported destination "${dest}"`, 'Use a directory path or s3://bucket/prefix.');
  }
  return new DirectoryStorage(dest.startsWith('file://') ? new URL(dest).pathname : dest);
}
