// docker/api.Dockerfile and docker/admin.Dockerfile built by build.ts with podman on stand-in base
// images (test/fixtures/standin: NOT .NET, see its README; the real bases cannot be pulled here).
// This checks what the engine does with the Dockerfile: stages, the named build context, the user
// added to a shell-less runtime, ownership, the .dockerignore, and the final image configuration.
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { commitAll, FIXTURES, imageFiles, removeImagesOfRevision, requireTools, runScript, tempDir, usePodmanSettings } from '../helpers/containers.ts';
import { run, runChecked } from '../../scripts/lib/core/exec.ts';

const test = suite('.NET Dockerfiles on stand-in bases');
const tag = `standin-${process.pid}`;
const SDK = `localhost/standin-dotnet-sdk:${tag}`;
const ASPNET = `localhost/standin-aspnet:${tag}`;
const ctx = { work: '', source: '', revision: '', images: [] as string[] };

async function buildStandins(): Promise<void> {
  const sdk = path.join(ctx.work, 'sdk');
  fs.cpSync(path.join(FIXTURES, 'standin', 'sdk'), sdk, { recursive: true });
  const root = path.join(sdk, 'rootfs');
  for (const d of ['bin', 'usr/bin']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.copyFileSync((await runChecked('sh', ['-c', 'command -v busybox'])).stdout.trim(), path.join(root, 'bin', 'busybox'));
  fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
  for (const t of ['sh', 'grep', 'echo', 'chown', 'chmod', 'mkdir', 'cp', 'cat', 'find', 'basename', 'test', '[', 'printf']) fs.symlinkSync('busybox', path.join(root, 'bin', t));
  fs.copyFileSync(path.join(sdk, 'dotnet'), path.join(root, 'usr', 'bin', 'dotnet'));
  fs.chmodSync(path.join(root, 'usr', 'bin', 'dotnet'), 0o755);
  await runChecked('podman', ['build', '-q', '--format', 'docker', '-t', SDK, sdk], { timeoutMs: 120_000 });
  await runChecked('podman', ['build', '-q', '--format', 'docker', '-t', ASPNET, path.join(FIXTURES, 'standin', 'aspnet')], { timeoutMs: 120_000 });
}

async function fakeCheckout(): Promise<string> {
  const src = path.join(ctx.work, 'Conduit');
  for (const p of ['ConduitLLM.Http', 'ConduitLLM.Admin', 'ConduitLLM.Http/bin/Debug', 'ConduitLLM.WebUI', '.git-ignored']) fs.mkdirSync(path.join(src, p), { recursive: true });
  fs.writeFileSync(path.join(src, 'ConduitLLM.Http', 'ConduitLLM.Http.csproj'), '<Project Sdk="Microsoft.NET.Sdk.Web" />\n');
  fs.writeFileSync(path.join(src, 'ConduitLLM.Admin', 'ConduitLLM.Admin.csproj'), '<Project Sdk="Microsoft.NET.Sdk.Web" />\n');
  fs.writeFileSync(path.join(src, 'ConduitLLM.Http', 'bin', 'Debug', 'stale.dll'), 'old build output');
  fs.writeFileSync(path.join(src, '.env'), 'POSTGRES_PASSWORD=do-not-ship\n');
  fs.writeFileSync(path.join(src, 'ConduitLLM.WebUI', 'page.tsx'), '');
  fs.writeFileSync(path.join(src, 'Directory.Build.props'), '<Project><PropertyGroup><Version>0.5.0</Version></PropertyGroup></Project>\n');
  ctx.revision = await commitAll(src, 'fake checkout');
  return src;
}

test.before(async () => {
  usePodmanSettings();
  await requireTools('podman', 'busybox', 'git');
  ctx.work = tempDir('conduit-standin-');
  await buildStandins();
  ctx.source = await fakeCheckout();
});

test.after(async () => {
  await removeImagesOfRevision(ctx.revision, SDK, ASPNET);
  if (ctx.work) fs.rmSync(ctx.work, { recursive: true, force: true });
});

for (const [component, project, image] of [
  ['api', 'ConduitLLM.Http', 'conduit-http'],
  ['admin', 'ConduitLLM.Admin', 'conduit-admin'],
] as const) {
  test(`${component}: build.ts builds docker/${component}.Dockerfile; the image runs as appuser with the probe health check`, async () => {
    const r = await runScript('build', [
      '--engine',
      'podman',
      '--component',
      component,
      '--source',
      ctx.source,
      '--tag',
      '0.5.0',
      '--build-arg',
      `DOTNET_SDK_IMAGE=${SDK}`,
      '--build-arg',
      `ASPNET_IMAGE=${ASPNET}`,
      '--json',
    ]);
    assert.is(r.exitCode, 0, r.stderr);
    const ref = `localhost/${image}:0.5.0`;
    const [info] = JSON.parse((await runChecked('podman', ['image', 'inspect', ref])).stdout);
    const cfg = info.Config;
    assert.is(cfg.User, '1000:1000');
    const health = info.Healthcheck ?? cfg.Healthcheck;
    assert.equal(health.Test, ['CMD', 'dotnet', '/opt/healthprobe/HealthProbe.dll', 'http://127.0.0.1:8080/health/ready']);
    assert.is(health.StartPeriod, 300_000_000_000);
    assert.equal(cfg.Entrypoint, ['dotnet', `/app/${project}.dll`]);
    assert.ok(cfg.Env.includes('HOME=/home/appuser') && cfg.Env.includes('ASPNETCORE_HTTP_PORTS=8080'));
    assert.ok('8080/tcp' in cfg.ExposedPorts);
    assert.is(cfg.Labels['org.opencontainers.image.revision'], ctx.revision);
    assert.is(cfg.Labels['org.opencontainers.image.version'], '0.5.0');

    const files = await imageFiles(ref, ctx.work);
    assert.match(await files.read('etc/passwd'), /^appuser:x:1000:1000:ConduitLLM:\/home\/appuser:\/usr\/sbin\/nologin$/m);
    assert.match(await files.read('etc/group'), /^appuser:x:1000:$/m);
    assert.match(files.list, /^d\S+ 1000\/1000 .* home\/appuser\/?$/m, 'home owned by appuser');
    assert.match(files.list, new RegExp(`^-\\S+ 0/0 .* app/${project.replace('.', '\\.')}\\.dll$`, 'm'), 'app files owned by root');
    assert.match(files.list, / opt\/healthprobe\/HealthProbe\.dll$/m, 'the probe was built from the named context');
    assert.not.match(files.list, / (bin\/sh|usr\/bin\/dotnet)$/m, 'nothing of the SDK stage leaks into the runtime');
    const context = await files.read('app/context.txt');
    assert.match(context, new RegExp(`^/src/${project}/${project}\\.csproj$`, 'm'));
    assert.not.match(context, /\/src\/\.env$/m, '.env never enters the build context');
    assert.not.match(context, /\/bin\/Debug/, 'build output never enters the build context');
    assert.not.match(context, /ConduitLLM\.WebUI/, 'the WebUI is not part of the .NET context');
  });
}

test.run();
