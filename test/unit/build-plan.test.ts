import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { componentsFor, parseBuildArgs, planBuild, planText, publicSourceUrl, readLock, versionFromSource, writeLock, type SourceInfo } from '../../scripts/lib/engines/build.ts';
import type { Engine } from '../../scripts/lib/adapters/container.ts';
import { run } from '../../scripts/lib/core/exec.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';
import { runScript } from '../helpers/zxscript.ts';

// Engines as data: planning never runs them.
const docker: Engine = { name: 'docker', bin: 'docker', version: '28', compose: ['docker', 'compose'] };
const podman: Engine = { name: 'podman', bin: 'podman', version: '4.3.1', compose: ['podman-compose'] };
const source: SourceInfo = {
  dir: '/src/Conduit',
  version: '0.1.1',
  versionFrom: 'Directory.Build.props',
  revision: 'a'.repeat(40),
  shortSha: 'aaaaaaa',
  created: '2026-01-02T03:04:05Z',
  url: 'https://github.com/knnlabs/Conduit',
  dirty: false,
};
const base = { source, push: false, allowLatest: false, insecure: false, dockerfileDir: path.join(REPO_ROOT, 'docker') };

test('tags are <version> and <version>-<shortsha>; labels carry source, revision, version, created', () => {
  const [p] = planBuild(podman, { ...base, components: componentsFor('api') });
  assert.equal(p.refs, ['conduit-http:0.1.1', 'conduit-http:0.1.1-aaaaaaa']);
  assert.equal(p.labels, {
    'org.opencontainers.image.source': 'https://github.com/knnlabs/Conduit',
    'org.opencontainers.image.revision': 'a'.repeat(40),
    'org.opencontainers.image.version': '0.1.1',
    'org.opencontainers.image.created': '2026-01-02T03:04:05Z',
  });
  assert.equal(p.spec.buildArgs, { VERSION: '0.1.1', REVISION: 'a'.repeat(40), CREATED: '2026-01-02T03:04:05Z', SOURCE: 'https://github.com/knnlabs/Conduit' });
});

test('podman and docker get their own exact build commands', () => {
  const [pp] = planBuild(podman, { ...base, components: componentsFor('api'), platform: 'linux/amd64' });
  const a = pp.build.args;
  assert.equal(a.slice(0, 3), ['build', '--format', 'docker']);
  assert.ok(a.includes('--ignorefile') && a[a.indexOf('--ignorefile') + 1].endsWith('docker/api.Dockerfile.dockerignore'));
  assert.ok(a.includes(`healthprobe=${path.join(REPO_ROOT, 'docker', 'healthprobe')}`));
  assert.equal(a.slice(a.indexOf('--platform'), a.indexOf('--platform') + 2), ['--platform', 'linux/amd64']);
  assert.is(a[a.length - 1], '/src/Conduit');
  const [dp] = planBuild(docker, { ...base, components: componentsFor('webui') });
  assert.equal(dp.build.args.slice(0, 3), ['buildx', 'build', '--load']);
  assert.not.ok(dp.build.args.includes('--ignorefile'), 'buildx reads webui.Dockerfile.dockerignore itself');
  assert.not.ok(dp.build.args.includes('--build-context'));
});

test('push: needs a registry, pushes both tags, refuses latest unless allowed', () => {
  assert.throws(() => planBuild(podman, { ...base, components: componentsFor('api'), push: true }), /--push needs --registry/);
  const plans = planBuild(podman, { ...base, components: componentsFor('all'), push: true, registry: '127.0.0.1:5000/conduit', insecure: true });
  assert.equal(
    plans.map((p) => p.component),
    ['api', 'admin', 'webui'],
  );
  assert.equal(
    plans[1].push.map((c) => c.args),
    [
      ['push', '--tls-verify=false', '127.0.0.1:5000/conduit/conduit-admin:0.1.1'],
      ['push', '--tls-verify=false', '127.0.0.1:5000/conduit/conduit-admin:0.1.1-aaaaaaa'],
    ],
  );
  assert.throws(() => planBuild(podman, { ...base, components: componentsFor('api'), push: true, registry: 'r.io/x', tag: 'latest' }), /refusing to push the moving tag "latest"/);
  assert.equal(planBuild(podman, { ...base, components: componentsFor('api'), push: true, registry: 'r.io/x', tag: 'latest', allowLatest: true })[0].tags, ['latest', 'latest-aaaaaaa']);
  assert.throws(() => planBuild(podman, { ...base, components: componentsFor('api'), tag: 'bad tag' }), /not a valid image tag/);
  assert.throws(() => planBuild(podman, { ...base, components: componentsFor('api'), push: true, registry: 'https://r.io' }), /not a registry/);
  assert.throws(() => componentsFor('worker'), /unknown component "worker"/);
  assert.throws(() => planBuild(podman, { ...base, source: { ...source, version: undefined }, components: componentsFor('api') }), /cannot tell the version/);
  assert.match(planText(plans), /^# api: 127\.0\.0\.1:5000\/conduit\/conduit-http:0\.1\.1, /);
});

test("--build-arg: extra arguments pass through; the label arguments stay build.ts's", () => {
  const extra = parseBuildArgs(['ASPNET_IMAGE=mirror.example/aspnet@sha256:' + 'c'.repeat(64), 'EMPTY=']);
  const [p] = planBuild(podman, { ...base, components: componentsFor('api'), buildArgs: extra });
  assert.ok(p.build.args.includes('ASPNET_IMAGE=mirror.example/aspnet@sha256:' + 'c'.repeat(64)));
  assert.is(p.spec.buildArgs.VERSION, '0.1.1');
  assert.throws(() => parseBuildArgs(['VERSION=9.9.9']), /set by build\.ts/);
  assert.throws(() => parseBuildArgs(['novalue']), /not KEY=VALUE/);
});

test('source helpers: version from Directory.Build.props, public URL without credentials', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-src-'));
  fs.writeFileSync(path.join(dir, 'Directory.Build.props'), '<Project><PropertyGroup>\n  <Version> 2.3.4 </Version>\n</PropertyGroup></Project>');
  assert.equal(versionFromSource(dir), { version: '2.3.4', from: 'Directory.Build.props' });
  fs.rmSync(dir, { recursive: true });
  assert.is(publicSourceUrl('https://user:tok3n@github.com/knnlabs/Conduit.git'), 'https://github.com/knnlabs/Conduit');
  assert.is(publicSourceUrl('git@github.com:knnlabs/Conduit.git'), 'https://github.com/knnlabs/Conduit');
  assert.is(publicSourceUrl('/local/path'), 'https://github.com/knnlabs/Conduit');
});

test('lock file: entries merge per component and the file stays valid JSON', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-lock-'));
  const f = path.join(dir, 'images.lock.json');
  const entry = (c: string, d: string) => ({ repository: `r/${c}`, tag: '1.0.0', digest: `sha256:${d.repeat(64)}`, image: `r/${c}@sha256:${d.repeat(64)}`, revision: 'x', pushedAt: 'now' });
  writeLock(f, { webui: entry('webui', 'a') });
  writeLock(f, { api: entry('api', 'b') });
  const lock = readLock(f);
  assert.equal(Object.keys(lock), ['api', 'webui']);
  assert.is(lock.api.digest, `sha256:${'b'.repeat(64)}`);
  fs.writeFileSync(f, '[1]');
  assert.throws(() => readLock(f), /not a valid image lock file/);
  fs.rmSync(dir, { recursive: true });
});

test('build.ts: a missing engine is a clear error with exit code 2', async () => {
  const r = await runScript('build', ['--source', REPO_ROOT, '--component', 'api'], {
    env: { CONDUIT_DOCKER: '/nonexistent/docker', CONDUIT_PODMAN: '/nonexistent/podman' },
    timeoutMs: 60_000,
  });
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /no usable container engine \(docker: no reachable Docker engine; podman: not installed or not working\)/);
  assert.match(r.stderr, /hint: Install Docker with buildx/);
});

test('build.ts --dry-run prints the commands and builds nothing', async () => {
  const r = await runScript('build', ['--component', 'rabbitmq', '--engine', 'docker', '--dry-run', '--tag', '4.2-delayed', '--json'], { timeoutMs: 60_000 });
  assert.is(r.exitCode, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.is(out.dryRun, true);
  assert.equal(out.components[0].build.slice(0, 4), ['docker', 'buildx', 'build', '--load']);
  assert.equal(out.components[0].refs[0], 'conduit-rabbitmq:4.2-delayed');
});

test.run();
