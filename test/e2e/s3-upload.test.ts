// Streamed uploads to a real S3-compatible server (rclone serve s3): the object is the body byte for
// byte whether it fits one request or needs several parts, and a body that breaks off, an abort or a
// part the server refuses leaves no object and no unfinished multipart upload behind.
// The refusing server is the real one behind a small forwarding proxy that answers 500 to every
// attempt at part 2 (the only way to make a real server fail one part on demand), and which notes
// how parts are signed.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { S3Storage } from '../../scripts/lib/adapters/storage.ts';
import { startS3, type S3Server } from './services.ts';

const t = suite('S3 upload');
let s3: S3Server;
let storage: S3Storage;
let saved: Record<string, string | undefined> = {};
const MiB = 1024 * 1024;

t.before(async () => {
  s3 = await startS3();
  // The SDK reads its credentials and region from the environment, as backup.ts does.
  saved = Object.fromEntries(Object.keys(s3.env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, s3.env);
  storage = new S3Storage(s3.bucket, 'upload-test');
});

t.after(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await s3?.stop();
});

/** `size` pseudo-random bytes in chunks of uneven sizes (as a pipe delivers them), optionally failing after `failAfter` bytes. */
function body(size: number, options: { failAfter?: number; onChunk?: (sent: number) => void } = {}): { stream: Readable; sha256: string } {
  const data = crypto.createHash('sha512').update(String(size)).digest();
  const whole = Buffer.alloc(size);
  for (let i = 0; i < size; i += data.length) data.copy(whole, i, 0, Math.min(data.length, size - i));
  for (let i = 0; i < size; i += 4096) whole.writeUInt32LE(i, i); // no two blocks alike
  const sha256 = crypto.createHash('sha256').update(whole).digest('hex');
  const stream = Readable.from(
    (async function* () {
      let at = 0;
      let n = 0;
      while (at < size) {
        if (options.failAfter !== undefined && at >= options.failAfter) throw new Error('pg_dump exited 1');
        const len = Math.min(size - at, [65536, 1000, 300_001, 7][n++ % 4]);
        yield whole.subarray(at, at + len);
        at += len;
        options.onChunk?.(at);
        if (n % 16 === 0) await new Promise((r) => setImmediate(r));
      }
    })(),
    { objectMode: false },
  );
  return { stream, sha256 };
}

async function readBack(key: string, from = storage): Promise<{ sha256: string; size: number } | undefined> {
  const data = await from.get(key);
  return data && { sha256: crypto.createHash('sha256').update(data).digest('hex'), size: data.length };
}

const later = () => new Date(Date.now() + 3_600_000);

for (const [name, size] of [
  ['an empty body', 0],
  ['a body smaller than one part (one request)', 100_000],
  ['exactly two parts (no empty third part)', 16 * MiB],
  ['three parts, the last one short', 20 * MiB + 123],
] as const) {
  t(`${name}: the object is the body, byte for byte`, async () => {
    const key = `ok/${size}`;
    const b = body(size);
    await storage.upload(key, b.stream, undefined, 1000);
    assert.equal(await readBack(key), { sha256: b.sha256, size });
    assert.equal(await storage.staleUploads(later(), true), [], 'no unfinished multipart upload');
  });
}

t('a body that breaks off after two parts: its error comes through, no object, no unfinished upload', async () => {
  const b = body(30 * MiB, { failAfter: 17 * MiB });
  const failed = await storage.upload('broken/dump.pgc', b.stream).then(
    () => undefined,
    (e: Error) => e,
  );
  assert.match(String(failed?.message), /pg_dump exited 1/, String(failed?.message));
  assert.is(await readBack('broken/dump.pgc'), undefined);
  assert.equal(await storage.staleUploads(later(), true), []);
});

t('an abort in the middle: AbortError, no object, no unfinished upload', async () => {
  const abort = new AbortController();
  const b = body(40 * MiB, { onChunk: (sent) => sent > 12 * MiB && abort.abort() });
  const failed = await storage.upload('aborted/dump.pgc', b.stream, abort.signal).then(
    () => undefined,
    (e: Error) => e,
  );
  assert.is(failed?.name, 'AbortError');
  assert.is(await readBack('aborted/dump.pgc'), undefined);
  assert.equal(await storage.staleUploads(later(), true), []);
});

t('the server refuses a part: a clear error naming the key, the body is no longer read, the upload is aborted', async () => {
  const target = new URL(s3.endpoint);
  let refused = 0;
  const payloadHashes = new Set<string>();
  const proxy = http.createServer((req, res) => {
    if (/[?&]partNumber=/.test(req.url ?? '')) payloadHashes.add(String(req.headers['x-amz-content-sha256']));
    if (/[?&]partNumber=2(&|$)/.test(req.url ?? '')) {
      refused++;
      req.resume();
      req.on('end', () => {
        res.writeHead(500, { 'content-type': 'application/xml' });
        res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>part refused by the test proxy</Message></Error>');
      });
      return;
    }
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  try {
    const viaProxy = new S3Storage(s3.bucket, 'upload-test', { endpoint: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` });
    let read = 0;
    const b = body(200 * MiB, { onChunk: (sent) => (read = sent) });
    const failed = await viaProxy.upload('refused/dump.pgc', b.stream).then(
      () => undefined,
      (e: Error) => e,
    );
    assert.match(String(failed?.message), /S3 upload of refused\/dump\.pgc .* failed: .*500|InternalError/);
    assert.ok(refused >= 1, 'the proxy refused part 2');
    assert.equal([...payloadHashes], ['UNSIGNED-PAYLOAD'], 'parts are not hashed into the signature (the manifest sha256 covers the dump)');
    assert.ok(read < 100 * MiB, `reading stopped soon after the failure (read ${Math.round(read / MiB)} MiB of 200)`);
    assert.is(await readBack('refused/dump.pgc'), undefined);
    assert.equal(await storage.staleUploads(later(), true), []);
  } finally {
    await new Promise((r) => proxy.close(r));
  }
});

t.run();
