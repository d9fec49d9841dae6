// docker/webui.Dockerfile built by build.ts with podman on a stand-in for the node image
// (test/fixtures/standin/node: this machine's node and npm, busybox, shell stand-ins for
// groupadd/useradd) and a tiny fake WebUI checkout with the real layout: a Node SDK workspace in
// SDKs/Node that the WebUI links as file: dependencies. Not Next.js: this checks the Dockerfile's
// wiring (workspace build, prune, relative paths kept, package managers removed, UID 1001, the
// writable cache directory, .dockerignore) and the final image configuration.
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { commitAll, FIXTURES, imageFiles, removeImagesOfRevision, requireTools, runScript, tempDir, usePodmanSettings } from '../helpers/containers.ts';
import { run, runChecked } from '../../scripts/lib/core/exec.ts';

const test = suite('WebUI Dockerfile on a stand-in node image');
const NODE = `localhost/standin-node:${process.pid}`;
const ctx = { work: '', source: '', revision: '' };

function write(file: string, content: string | object): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2) + '\n');
}

async function buildNodeStandin(): Promise<void> {
  const dir = path.join(ctx.work, 'node');
  fs.cpSync(path.join(FIXTURES, 'standin', 'node'), dir, { recursive: true });
  const root = path.join(dir, 'rootfs');
  for (const d of ['bin', 'usr/sbin', 'usr/local/bin', 'usr/local/lib/node_modules', 'etc', 'tmp', 'root']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
  const busybox = (await runChecked('sh', ['-c', 'command -v busybox'])).stdout.trim();
  fs.copyFileSync(busybox, path.join(root, 'bin', 'busybox'));
  fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
  for (const t of ['sh', 'rm', 'cp', 'mkdir', 'chown', 'chmod', 'find', 'echo', 'cat', 'ls', 'test', '[', 'env', 'dirname', 'basename', 'uname', 'ln'])
    fs.symlinkSync('busybox', path.join(root, 'bin', t));
  fs.mkdirSync(path.join(root, 'usr', 'bin'), { recursive: true });
  fs.symlinkSync('../../bin/busybox', path.join(root, 'usr', 'bin', 'env')); // npm's #!/usr/bin/env node
  for (const t of ['groupadd', 'useradd']) {
    fs.copyFileSync(path.join(dir, t), path.join(root, 'usr', 'sbin', t));
    fs.chmodSync(path.join(root, 'usr', 'sbin', t), 0o755);
  }
  fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n');
  fs.writeFileSync(path.join(root, 'etc', 'group'), 'root:x:0:\nnode:x:1000:\n');
  // node and the libraries it links, at the same paths.
  const nodeBin = fs.realpathSync((await runChecked('sh', ['-c', 'command -v node'])).stdout.trim());
  fs.copyFileSync(nodeBin, path.join(root, 'usr', 'local', 'bin', 'node'));
  const libs = (await runChecked('ldd', [nodeBin])).stdout
    .split('\n')
    .map((l) => /(\/\S+)\s+\(/.exec(l)?.[1])
    .filter((l): l is string => Boolean(l));
  for (const lib of libs) {
    fs.mkdirSync(path.join(root, path.dirname(lib)), { recursive: true });
    fs.copyFileSync(fs.realpathSync(lib), path.join(root, lib));
  }
  const npmDir = path.resolve(path.dirname(fs.realpathSync((await runChecked('sh', ['-c', 'command -v npm'])).stdout.trim())), '..');
  fs.cpSync(npmDir, path.join(root, 'usr', 'local', 'lib', 'node_modules', 'npm'), { recursive: true, verbatimSymlinks: true });
  fs.symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', path.join(root, 'usr', 'local', 'bin', 'npm'));
  fs.symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', path.join(root, 'usr', 'local', 'bin', 'npx'));
  await runChecked('podman', ['build', '-q', '--format', 'docker', '-t', NODE, dir], { timeoutMs: 300_000 });
}

async function fakeCheckout(): Promise<string> {
  const src = path.join(ctx.work, 'Conduit');
  const sdk = path.join(src, 'SDKs', 'Node');
  write(path.join(sdk, 'package.json'), { name: 'sdk-workspace', private: true, workspaces: ['Common', 'Admin', 'Core'], scripts: { build: 'npm run build --workspaces' } });
  for (const [dir, name] of [
    ['Common', 'conduit-common'],
    ['Admin', 'conduit-admin-client'],
    ['Core', 'conduit-core-client'],
  ]) {
    write(path.join(sdk, dir, 'package.json'), { name: `@knn_labs/${name}`, version: '1.0.0', main: 'dist/index.js', scripts: { build: 'node build.js' } });
    write(path.join(sdk, dir, 'build.js'), `require('fs').mkdirSync('dist', { recursive: true }); require('fs').writeFileSync('dist/index.js', 'module.exports = ${JSON.stringify(name)};\\n');\n`);
    write(path.join(sdk, dir, 'src', 'index.ts'), 'export {};\n');
  }
  const web = path.join(src, 'ConduitLLM.WebUI');
  write(path.join(web, 'package.json'), {
    name: 'conduit-webui',
    version: '1.0.0',
    private: true,
    scripts: { build: 'node build.js' },
    dependencies: { '@knn_labs/conduit-admin-client': 'file:../SDKs/Node/Admin', '@knn_labs/conduit-common': 'file:../SDKs/Node/Common', '@knn_labs/conduit-core-client': 'file:../SDKs/Node/Core' },
  });
  write(
    path.join(web, 'build.js'),
    "const fs = require('fs'); fs.mkdirSync('.next/cache/images', { recursive: true }); fs.writeFileSync('.next/BUILD_ID', require('@knn_labs/conduit-admin-client')); fs.writeFileSync('.next/cache/images/x', 'cache');\n",
  );
  write(path.join(web, 'next.config.js'), 'module.exports = {};\n');
  write(path.join(web, 'public', 'favicon.ico'), '');
  write(path.join(web, '.env.local'), 'CLERK_SECRET_KEY=sk_live_never_in_an_image\n');
  write(path.join(src, 'ConduitLLM.Http', 'ConduitLLM.Http.csproj'), '<Project />\n');
  // NODE_OPTIONS cleared: under `npm run test:e2e` it carries this repository's tsx loader, which the
  // fixture checkout does not have.
  for (const dir of [sdk, web]) await runChecked('npm', ['install', '--package-lock-only', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, timeoutMs: 120_000, env: { NODE_OPTIONS: '' } });
  ctx.revision = await commitAll(src, 'fake webui checkout');
  return src;
}

test.before(async () => {
  usePodmanSettings();
  await requireTools('podman', 'busybox', 'git', 'node', 'npm', 'ldd');
  ctx.work = tempDir('conduit-webui-standin-');
  await buildNodeStandin();
  ctx.source = await fakeCheckout();
});

test.after(async () => {
  await removeImagesOfRevision(ctx.revision, NODE);
  if (ctx.work) fs.rmSync(ctx.work, { recursive: true, force: true });
});

test('build.ts builds docker/webui.Dockerfile: UID 1001, node only, SDKs linked at their relative paths', async () => {
  const r = await runScript('build', ['--engine', 'podman', '--component', 'webui', '--source', ctx.source, '--tag', '0.6.0', '--build-arg', `NODE_IMAGE=${NODE}`, '--json']);
  assert.is(r.exitCode, 0, r.stderr);
  const ref = 'localhost/conduit-webui:0.6.0';
  const [info] = JSON.parse((await runChecked('podman', ['image', 'inspect', ref])).stdout);
  const cfg = info.Config;
  assert.is(cfg.User, '1001:1001');
  assert.is(cfg.WorkingDir, '/app/ConduitLLM.WebUI');
  assert.equal(cfg.Entrypoint, ['node', 'node_modules/next/dist/bin/next', 'start']);
  const health = info.Healthcheck ?? cfg.Healthcheck;
  assert.is(health.Test[0], 'CMD');
  assert.ok(health.Test.join(' ').includes('http://127.0.0.1:3000/api/health'));
  assert.ok(cfg.Env.includes('PORT=3000') && cfg.Env.includes('NODE_ENV=production'));
  assert.is(cfg.Labels['org.opencontainers.image.revision'], ctx.revision);

  const { list, read } = await imageFiles(ref, ctx.work);
  assert.match(await read('etc/passwd'), /^nextjs:x:1001:1001::\/home\/nextjs:\/usr\/sbin\/nologin$/m);
  assert.is(await read('app/ConduitLLM.WebUI/.next/BUILD_ID'), 'conduit-admin-client', 'the WebUI build used the SDK built in the image');
  assert.match(list, /^l\S+ 0\/0 .* app\/ConduitLLM\.WebUI\/node_modules\/@knn_labs\/conduit-admin-client -> \.\.\/\.\.\/\.\.\/SDKs\/Node\/Admin$/m);
  assert.match(list, / app\/SDKs\/Node\/Admin\/dist\/index\.js$/m);
  assert.not.match(list, / app\/SDKs\/Node\/Admin\/src/, 'SDK sources are not shipped');
  assert.match(list, /^d\S+ 1001\/1001 .* app\/\.next\/cache\/?$/m, 'the one writable directory, where the upstream image has it (the chart and Compose mount it)');
  assert.match(list, /^l\S+ 0\/0 .* app\/ConduitLLM\.WebUI\/\.next\/cache -> \/app\/\.next\/cache$/m, 'the app reaches it through a link');
  assert.not.match(list, / app\/ConduitLLM\.WebUI\/\.next\/cache\/images/, 'no build cache shipped');
  assert.match(list, /^-\S+ 0\/0 .* app\/ConduitLLM\.WebUI\/package\.json$/m, 'app files owned by root');
  assert.match(list, / app\/ConduitLLM\.WebUI\/next\.config\.js$/m);
  assert.not.match(list, / usr\/local\/(bin\/(npm|npx)|lib\/node_modules\/npm\/)/, 'package managers removed');
  assert.match(list, / usr\/local\/bin\/node$/m);
  assert.not.match(list, /\.env\.local/, '.env files never enter the context');
  assert.not.match(list, /ConduitLLM\.Http/, 'only the WebUI and the SDKs are in the context');
});

test.run();
