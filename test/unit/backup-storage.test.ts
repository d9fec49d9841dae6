// A directory destination publishes a file only once it is complete: it is streamed into a
// temporary name next to the key, made durable, then renamed; on failure nothing is left.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DirectoryStorage, multipartPartSize } from '../../scripts/lib/adapters/storage.ts';

async function withRoot(fn: (root: string, storage: DirectoryStorage) => Promise<void>): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-storage-'));
  try {
    await fn(root, new DirectoryStorage(root));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

test('upload to a directory: the key appears only once the whole stream is written', () =>
  withRoot(async (root, storage) => {
    const key = '20260301T020000Z-abc123/dump.pgc';
    let seenWhileWriting: string[] = [];
    const body = Readable.from(
      (async function* () {
        yield Buffer.from('one ');
        await new Promise((r) => setTimeout(r, 20));
        seenWhileWriting = fs.readdirSync(path.join(root, '20260301T020000Z-abc123'));
        yield Buffer.from('two');
      })(),
    );
    await storage.upload(key, body);
    assert.equal(seenWhileWriting, ['dump.pgc.partial'], 'only the temporary name while it is written');
    assert.is(fs.readFileSync(path.join(root, key), 'utf8'), 'one two');
    assert.equal(
      (await storage.list()).map((o) => o.key),
      [key],
    );
  }));

test('upload to a directory: a stream that breaks off leaves nothing, and its error comes through', () =>
  withRoot(async (_root, storage) => {
    const broken = Readable.from(
      (async function* () {
        yield Buffer.from('half an archive');
        throw new Error('pg_dump exited 1');
      })(),
    );
    const failed = await storage.upload('20260301T020000Z-abc123/dump.pgc', broken).then(
      () => undefined,
      (e: Error) => e,
    );
    assert.is(failed?.message, 'pg_dump exited 1');
    assert.equal(await storage.list(), [], 'neither the key nor the temporary file');
  }));

test('S3 part size: 8 MiB up to a 40 GB database, then large enough for twice the expected size in 10 000 parts', () => {
  const MiB = 1024 * 1024;
  assert.is(multipartPartSize(), 8 * MiB);
  assert.is(multipartPartSize(200e6), 8 * MiB);
  assert.is(multipartPartSize(40e9), 8 * MiB);
  for (const bytes of [100e9, 1e12, 20e12]) {
    const part = multipartPartSize(bytes);
    assert.is(part % MiB, 0, 'whole MiB');
    assert.ok(part * 10_000 >= 2 * bytes, `${bytes} bytes: ${part}-byte parts hold twice that`);
  }
  assert.is(multipartPartSize(1e18), 5 * 1024 * MiB, 'never above the 5 GiB part limit');
});

test.run();
