// compose.ts against podman with podman-compose (the same code path as the real stack), on the
// fixture project test/fixtures/compose: validation refuses bad env files before anything starts,
// up waits for health (running the checks itself), logs, a named volume keeps its data across
// down/up, down --volumes needs confirmation, and a service that never gets healthy is reported
// with its last log lines.
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FIXTURES, fixtureSource, freePort, removeImagesOfRevision, requireTools, runScript, tempDir, usePodmanSettings } from '../helpers/containers.ts';
import { run, runChecked } from '../../scripts/lib/core/exec.ts';

const test = suite('compose.ts lifecycle on podman');
const SECRET = 'Fx9k2m7q4w8e1r5t3y6u';
const ctx = { source: '', work: '', envFile: '', port: 0, project: `conduit-e2e-${process.pid}`, image: '', revision: '' };
const FILE = path.join(FIXTURES, 'compose', 'compose.yaml');

function writeEnv(extra: Record<string, string> = {}): string {
  const env = { FIXTURE_IMAGE: ctx.image, FIXTURE_SECRET: SECRET, STORE_PORT: String(ctx.port), ...extra };
  const f = path.join(ctx.work, `env-${Object.keys(extra).join('-') || 'base'}`);
  fs.writeFileSync(
    f,
    Object.entries(env)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n') + '\n',
  );
  return f;
}

const compose = (verb: string, ...args: string[]) => runScript('compose', [verb, '--engine', 'podman', '--file', FILE, '--project', ctx.project, ...args]);
const containers = async () => (await run('podman', ['ps', '-a', '--filter', `label=com.docker.compose.project=${ctx.project}`, '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean);
const volumes = async () => (await run('podman', ['volume', 'ls', '--filter', `label=com.docker.compose.project=${ctx.project}`, '--format', '{{.Name}}'])).stdout.split('\n').filter(Boolean);

test.before(async () => {
  usePodmanSettings();
  await requireTools('podman', 'podman-compose', 'go', 'git');
  ctx.source = await fixtureSource('0.4.0');
  ctx.revision = (await runChecked('git', ['-C', ctx.source, 'rev-parse', 'HEAD'])).stdout.trim();
  ctx.work = tempDir('conduit-compose-e2e-');
  ctx.port = await freePort();
  // The fixture image is built by build.ts itself (no registry: nothing can be pulled here).
  const tag = `e2e-${process.pid}`;
  const b = await runScript('build', ['--engine', 'podman', '--source', ctx.source, '--component', 'api', '--dockerfile-dir', path.join(FIXTURES, 'images'), '--tag', tag]);
  if (b.exitCode !== 0) throw new Error(b.stderr);
  ctx.image = `localhost/conduit-http:${tag}`;
  ctx.envFile = writeEnv();
});

test.after(async () => {
  const names = await containers();
  if (names.length) await run('podman', ['rm', '-f', ...names]);
  const vols = await volumes();
  if (vols.length) await run('podman', ['volume', 'rm', '-f', ...vols]);
  await run('podman', ['network', 'rm', '-f', `${ctx.project}_default`]);
  await removeImagesOfRevision(ctx.revision);
  for (const d of [ctx.source, ctx.work]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

test('up refuses a placeholder secret and a missing profile variable, starting nothing', async () => {
  const placeholder = await compose('up', '--env-file', writeEnv({ FIXTURE_SECRET: 'CHANGE_ME_fixture_secret' }));
  assert.is(placeholder.exitCode, 1);
  assert.match(placeholder.stderr, /FIXTURE_SECRET (still has the value from \.env\.example|is a placeholder)/);
  const profile = await compose('up', '--env-file', ctx.envFile, '--profile', 'extra');
  assert.is(profile.exitCode, 1);
  assert.match(profile.stderr, /EXTRA_SETTING is not set \(service extra needs it\)/);
  const missing = await compose('up'); // default: the .env beside the compose file, which the fixture lacks
  assert.is(missing.exitCode, 1);
  assert.match(missing.stderr, /env file test\/fixtures\/compose\/\.env does not exist/);
  assert.equal(await containers(), []);
});

test('up starts the stack in dependency order and waits until every service is healthy', async () => {
  const r = await compose('up', '--env-file', ctx.envFile, '--timeout', '2m', '--json');
  assert.is(r.exitCode, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(
    out.services.map((s: { service: string; health: string; state: string }) => [s.service, s.state, s.health]),
    [
      ['store', 'running', 'healthy'],
      ['web', 'running', 'healthy'],
    ],
  );
  assert.match(r.stderr, /wait for store to be healthy/);
  assert.match(r.stderr, /waiting for store \(running, starting\)/, 'progress while the store is not ready yet');
  // The secret reached the container through an env file, never a command line.
  const created = await runChecked('podman', ['inspect', '--format', '{{json .Config.CreateCommand}}', `${ctx.project}_store_1`]);
  assert.not.ok(created.stdout.includes(SECRET), 'secret in the podman command line');
  assert.match(created.stdout, /--env-file/);
  const ps = await compose('ps', '--env-file', ctx.envFile);
  assert.match(ps.stdout, new RegExp(`store\\s+${ctx.project}_store_1\\s+running\\s+healthy\\s+127\\.0\\.0\\.1:${ctx.port}->8080/tcp`));
});

test("logs shows each service's output", async () => {
  const r = await compose('logs', 'store', '--env-file', ctx.envFile, '--tail', '5');
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /=== store\nhealthapp store listening on :8080 \(ready after 3s, secret set: true\)/);
  assert.not.match(r.stdout, /=== web/);
});

test('a named volume keeps its data across down and up; down without --volumes keeps it', async () => {
  const put = await fetch(`http://127.0.0.1:${ctx.port}/data`, { method: 'PUT', body: 'kept across restarts' });
  assert.is(put.status, 200);
  const down = await compose('down', '--env-file', ctx.envFile);
  assert.is(down.exitCode, 0, down.stderr);
  assert.equal(await containers(), []);
  assert.equal(await volumes(), [`${ctx.project}_store-data`]);
  const up = await compose('up', '--env-file', ctx.envFile, '--timeout', '2m');
  assert.is(up.exitCode, 0, up.stderr);
  assert.is(await (await fetch(`http://127.0.0.1:${ctx.port}/data`)).text(), 'kept across restarts');
});

test('restart waits for health again', async () => {
  const r = await compose('restart', 'web', '--env-file', ctx.envFile, '--timeout', '1m');
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /Restarted 1 service/);
});

test('down --volumes needs --yes without a terminal, then deletes the volume', async () => {
  const refused = await compose('down', '--volumes', '--env-file', ctx.envFile);
  assert.is(refused.exitCode, 2);
  assert.match(refused.stderr, /needs confirmation/);
  assert.ok((await containers()).length > 0, 'a refused down changes nothing');
  const r = await compose('down', '--volumes', '--yes', '--env-file', ctx.envFile);
  assert.is(r.exitCode, 0, r.stderr);
  assert.equal(await containers(), []);
  assert.equal(await volumes(), []);
});

test('a service that never gets healthy: up times out and prints it with its last log lines', async () => {
  const slow = writeEnv({ STORE_READY_AFTER: '10m' });
  const r = await compose('up', '--env-file', slow, '--timeout', '10s');
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /not healthy within 10s: store/);
  assert.match(r.stderr, /--- store: running, (starting|unhealthy) \(last 20 log lines\)\nhealthapp store listening/);
  assert.not.ok(r.stderr.includes(SECRET));
  const down = await compose('down', '--volumes', '--yes', '--env-file', slow);
  assert.is(down.exitCode, 0, down.stderr);
});

test.run();
