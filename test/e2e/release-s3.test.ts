// publish --to s3://bucket/prefix against a real S3-compatible server on 127.0.0.1 (rclone serve s3),
// through the same storage code the backups use: every file lands, a repeat run changes nothing,
// a different package under a published version is refused and the published index stays as it was.
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parse as parseYaml } from 'yaml';
import { readChartMeta, sha256File } from '../../scripts/lib/engines/release.ts';
import { CHART_DIR } from '../../scripts/lib/core/paths.ts';
import { openStorage } from '../../scripts/lib/adapters/storage.ts';
import { jsonOf, releaseCli, tempDir } from './release-harness.ts';
import { startS3, type S3Server } from './services.ts';

const test = suite('release: publish to S3');
const current = readChartMeta(CHART_DIR);
let s3: S3Server;
let work: string;
let out: string;
const pkgName = `conduit-${current.version}.tgz`;

test.before(async () => {
  work = tempDir('release-s3');
  out = path.join(work, 'out');
  s3 = await startS3('charts');
  for (const args of [
    ['package', '--out', out],
    ['index', '--out', out, '--url', 'https://charts.example.com/conduit'],
  ]) {
    const r = await releaseCli(args);
    if (r.exitCode !== 0) throw new Error(`${args[0]} failed: ${r.stderr}`);
  }
});

test.after(async () => {
  restoreEnv('AWS_ACCESS_KEY_ID', saved.id);
  restoreEnv('AWS_SECRET_ACCESS_KEY', saved.secret);
  await s3?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

// The test's own reads use the AWS SDK through the same storage code, with the server's
// credentials in this process's environment for as long as the suite runs.
const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
const bucket = () => {
  process.env.AWS_ACCESS_KEY_ID = s3.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey;
  return openStorage('s3://charts/conduit', { endpoint: s3.endpoint });
};
const restoreEnv = (name: string, value: string | undefined) => (value === undefined ? delete process.env[name] : (process.env[name] = value));

test('publish copies package and index into the bucket prefix; a repeat run leaves the package alone', async () => {
  const r = await releaseCli(['publish', '--out', out, '--to', 's3://charts/conduit', '--json'], s3.env);
  assert.is(r.exitCode, 0, r.stderr);
  const doc = jsonOf(r);
  assert.equal(
    doc.files.map((f: { file: string }) => f.file),
    ['artifacthub-repo.yml', pkgName, 'index.yaml'],
  );
  assert.not.match(r.stdout + r.stderr, s3.secretAccessKey);

  const storage = bucket();
  const stored = await storage.get(pkgName);
  assert.ok(stored?.equals(fs.readFileSync(path.join(out, pkgName))), 'the bucket holds the package bytes');
  const index = parseYaml((await storage.get('index.yaml'))!.toString());
  assert.is(index.entries.conduit[0].digest, sha256File(path.join(out, pkgName)));

  const again = jsonOf(await releaseCli(['publish', '--out', out, '--to', 's3://charts/conduit', '--json'], s3.env));
  assert.is(again.files.find((f: { file: string }) => f.file === pkgName).state, 'unchanged');
});

test('a different package under the published version is refused and the published index is kept', async () => {
  const storage = bucket();
  const indexBefore = await storage.get('index.yaml');
  fs.appendFileSync(path.join(out, pkgName), Buffer.from([0]));
  fs.writeFileSync(path.join(out, 'index.yaml'), 'apiVersion: v1\nentries: {}\n');
  const r = await releaseCli(['publish', '--out', out, '--to', 's3://charts/conduit'], s3.env);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /already published with different content/);
  assert.ok((await storage.get('index.yaml'))!.equals(indexBefore!), 'index.yaml untouched');
});

test('bad S3 destinations are usage errors', async () => {
  const r = await releaseCli(['publish', '--out', out, '--to', 's3://Not_A_Bucket/x']);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /not a valid S3 destination/);
});

test.run();
