// build.ts against a real engine and a real registry: podman builds the fixture image from a
// fixture source tree, pushes both tags to Debian's docker-registry, and the registry's HTTP API
// must report the digest recorded in images.lock.json and the OCI labels.
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FIXTURES, fixtureSource, removeImagesOfRevision, requireTools, runScript, startRegistry, tempDir, usePodmanSettings, type Registry } from '../helpers/containers.ts';
import { run } from '../../scripts/lib/core/exec.ts';

const test = suite('build.ts push to a local registry');
const ctx: { source: string; registry?: Registry; work: string; revision: string } = { source: '', work: '', revision: '' };
const MANIFEST_TYPES = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json';

test.before(async () => {
  usePodmanSettings();
  await requireTools('podman', 'docker-registry', 'go', 'git');
  ctx.source = await fixtureSource('0.3.0');
  ctx.revision = (await run('git', ['-C', ctx.source, 'rev-parse', 'HEAD'])).stdout.trim();
  ctx.registry = await startRegistry();
  ctx.work = tempDir('conduit-build-');
});

test.after(async () => {
  await removeImagesOfRevision(ctx.revision);
  await ctx.registry?.stop();
  for (const d of [ctx.source, ctx.work]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

test('builds, pushes both tags, records the digest the registry serves, with the OCI labels', async () => {
  const reg = ctx.registry as Registry;
  const lockFile = path.join(ctx.work, 'images.lock.json');
  const r = await runScript('build', [
    '--engine',
    'podman',
    '--source',
    ctx.source,
    '--component',
    'api',
    '--dockerfile-dir',
    path.join(FIXTURES, 'images'),
    '--push',
    '--registry',
    `${reg.host}/conduit`,
    '--insecure',
    '--lock-file',
    lockFile,
    '--json',
  ]);
  assert.is(r.exitCode, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  const shortSha = ctx.revision.slice(0, 7);
  assert.equal(out.components[0].refs, [`${reg.host}/conduit/conduit-http:0.3.0`, `${reg.host}/conduit/conduit-http:0.3.0-${shortSha}`]);

  const lock = JSON.parse(fs.readFileSync(lockFile, 'utf8'));
  assert.equal(Object.keys(lock), ['api']);
  assert.is(lock.api.repository, `${reg.host}/conduit/conduit-http`);
  assert.is(lock.api.tag, '0.3.0');
  assert.match(lock.api.digest, /^sha256:[0-9a-f]{64}$/);

  for (const tag of ['0.3.0', `0.3.0-${shortSha}`]) {
    const m = await fetch(`${reg.url}/v2/conduit/conduit-http/manifests/${tag}`, { headers: { Accept: MANIFEST_TYPES } });
    assert.is(m.status, 200, tag);
    assert.is(m.headers.get('docker-content-digest'), lock.api.digest, `registry digest of ${tag}`);
  }
  const manifest = (await (await fetch(`${reg.url}/v2/conduit/conduit-http/manifests/${lock.api.digest}`, { headers: { Accept: MANIFEST_TYPES } })).json()) as { config: { digest: string } };
  const config = (await (await fetch(`${reg.url}/v2/conduit/conduit-http/blobs/${manifest.config.digest}`)).json()) as {
    config: { Labels: Record<string, string>; User: string; Healthcheck?: { Test: string[] } };
  };
  const labels = config.config.Labels;
  assert.is(labels['org.opencontainers.image.revision'], ctx.revision);
  assert.is(labels['org.opencontainers.image.version'], '0.3.0');
  assert.is(labels['org.opencontainers.image.source'], 'https://git.example.invalid/acme/conduit', 'credentials of the remote never reach a label');
  assert.match(labels['org.opencontainers.image.created'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.is(config.config.User, '1000:1000');
  assert.equal(config.config.Healthcheck?.Test, ['CMD', '/healthapp', 'probe', 'http://127.0.0.1:8080/health/ready'], 'docker format keeps HEALTHCHECK');
});

test('a second component keeps the first one in the lock file; latest is refused without --allow-latest', async () => {
  const reg = ctx.registry as Registry;
  const lockFile = path.join(ctx.work, 'images.lock.json');
  const refused = await runScript('build', [
    '--engine',
    'podman',
    '--source',
    ctx.source,
    '--component',
    'api',
    '--dockerfile-dir',
    path.join(FIXTURES, 'images'),
    '--tag',
    'latest',
    '--push',
    '--registry',
    `${reg.host}/conduit`,
    '--insecure',
    '--lock-file',
    lockFile,
  ]);
  assert.is(refused.exitCode, 2);
  assert.match(refused.stderr, /refusing to push the moving tag "latest"/);
  const before = JSON.parse(fs.readFileSync(lockFile, 'utf8'));
  assert.equal(Object.keys(before), ['api'], 'a refused push changes nothing');
});

test('a push to an unreachable registry fails after its retries with exit 1', async () => {
  const lockFile = path.join(ctx.work, 'unreachable.lock.json');
  const r = await runScript('build', [
    '--engine',
    'podman',
    '--source',
    ctx.source,
    '--component',
    'api',
    '--dockerfile-dir',
    path.join(FIXTURES, 'images'),
    '--push',
    '--registry',
    '127.0.0.1:9/conduit',
    '--insecure',
    '--lock-file',
    lockFile,
  ]);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /push of 127\.0\.0\.1:9\/conduit\/conduit-http:0\.3\.0 failed after 3 attempts/);
  assert.match(r.stderr, /attempt 1 failed/);
  assert.not.ok(fs.existsSync(lockFile), 'no lock file for a failed push');
});

test.run();
