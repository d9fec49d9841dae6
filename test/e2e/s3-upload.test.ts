// Streamed uploads to a real S3-compatible server (rclone serve s3): the object is the body byte for
// byte whether it fits one request or needs several parts, and a body that breaks off, an abort or a
// part the server refuses leaves no object and no unfinished multipart upload behind.
// Requests go through a small forwarding proxy in front of the real server, which notes what was
// sent (how many parts, how they are signed) and can answer 500 to every attempt at one part (the
// only way to make a real server fail one part on demand).
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

/**
 * A forwarding proxy in front of the real server that notes each request (method and the query that
 * names the S3 operation) and the payload hash it was signed with, and can refuse parts.
 */
async function recordingProxy(refusePart?: number) {
  const target = new URL(s3.endpoint);
  const requests: { method: string; query: string; payloadHash: string }[] = [];
  let refused = 0;
  const server = http.createServer((req, res) => {
    const query = new URL(req.url ?? '/', 'http://x').search;
    requests.push({ method: req.method ?? '', query, payloadHash: String(req.headers['x-amz-content-sha256']) });
    if (refusePart !== undefined && new URLSearchParams(query).get('partNumber') === String(refusePart)) {
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
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    storage: new S3Storage(s3.bucket, 'upload-test', { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }),
    requests,
    refused: () => refused,
    /** The part numbers uploaded, and whether the object went up in one PutObject. */
    shape: () => ({
      parts: requests
        .filter((r) => r.method === 'PUT' && /[?&]partNumber=/.test(r.query))
        .map((r) => Number(new URLSearchParams(r.query).get('partNumber')))
        .sort((a, b) => a - b),
      singlePut: requests.filter((r) => r.method === 'PUT' && !/[?&]partNumber=/.test(r.query)).length,
    }),
    close: () => new Promise((r) => server.close(r)),
  };
}

for (const [name, size, parts] of [
  ['an empty body (one PutObject)', 0, []],
  ['a body smaller than one part (one PutObject)', 100_000, []],
  ['exactly two parts (no empty third part)', 16 * MiB, [1, 2]],
  ['three parts, the last one short', 20 * MiB + 123, [1, 2, 3]],
] as const) {
  t(`${name}: the object is the body, byte for byte`, async () => {
    const key = `ok/${size}`;
    const b = body(size);
    const proxy = await recordingProxy();
    try {
      await proxy.storage.upload(key, b.stream, undefined, 1000);
      assert.equal(proxy.shape(), { parts: [...parts], singlePut: parts.length ? 0 : 1 }, JSON.stringify(proxy.requests));
      assert.equal(
        new Set(proxy.requests.filter((r) => /[?&]partNumber=/.test(r.query)).map((r) => r.payloadHash)),
        new Set(parts.length ? ['UNSIGNED-PAYLOAD'] : []),
        'parts are not hashed into the signature (the manifest sha256 covers the dump)',
      );
    } finally {
      await proxy.close();
    }
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
  const proxy = await recordingProxy(2);
  try {
    let read = 0;
    const b = body(200 * MiB, { onChunk: (sent) => (read = sent) });
    const failed = await proxy.storage.upload('refused/dump.pgc', b.stream).then(
      () => undefined,
      (e: Error) => e,
    );
    assert.match(String(failed?.message), /S3 upload of refused\/dump\.pgc .* failed: .*500|InternalError/);
    assert.ok(proxy.refused() >= 1, 'the proxy refused part 2');
    assert.ok(read < 100 * MiB, `reading stopped soon after the failure (read ${Math.round(read / MiB)} MiB of 200)`);
    assert.ok(
      proxy.requests.some((r) => r.method === 'DELETE' && /[?&]uploadId=/.test(r.query)),
      'the multipart upload was aborted',
    );
    assert.is(await readBack('refused/dump.pgc'), undefined);
    assert.equal(await storage.staleUploads(later(), true), []);
  } finally {
    await proxy.close();
  }
});

t.run();
