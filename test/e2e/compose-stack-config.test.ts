// The production stack file (compose/compose.yaml) through podman-compose's own parser: Debian's
// podman-compose 1.0.3 has no `config` verb, so `--dry-run up` is its full parse (interpolation,
// every container's podman arguments) without starting anything. Both the file as written (with
// the env in the process environment) and the file as compose.ts renders it for podman.
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { requireTools, runScript, tempDir, usePodmanSettings } from '../helpers/containers.ts';
import { parseEnvText } from '../../scripts/lib/domain/compose-model.ts';
import { run } from '../../scripts/lib/core/exec.ts';
import { removeProjectResources } from '../../scripts/lib/engines/compose.ts';
import type { Engine } from '../../scripts/lib/adapters/container.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';

const test = suite('compose/compose.yaml through podman-compose');
const FILE = path.join(REPO_ROOT, 'compose', 'compose.yaml');
const ctx = { work: '', env: {} as Record<string, string>, envFile: '' };
const CHECK = `conduit-check-${process.pid}`;
const podman: Engine = { name: 'podman', bin: 'podman', version: '', compose: ['podman-compose'] };
// Values that pass compose.ts's checks (letters and digits, long, not the example's).
const REAL = {
  CONDUIT_API_TO_API_BACKEND_AUTH_KEY: 'Mk7f3k2j9s8d7f6g5h4j3k2l',
  POSTGRES_PASSWORD: 'Pg7f3k2j9s8d7f6g5h4j',
  REDIS_PASSWORD: 'Rd7f3k2j9s8d7f6g5h4j',
  RABBITMQ_PASSWORD: 'Rb7f3k2j9s8d7f6g5h4j',
  GRAFANA_ADMIN_PASSWORD: 'Gf7f3k2j9s8d7f6g5h4j',
  NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY: 'pk_live_Y2xlcmsuZXhhbXBsZQ',
  CLERK_SECRET_KEY: 'sk_live_9f8e7d6c5b4a3f2e1d0c',
};

test.before(async () => {
  usePodmanSettings();
  await requireTools('podman', 'podman-compose');
  ctx.work = tempDir('conduit-stack-');
  const example = parseEnvText(fs.readFileSync(path.join(REPO_ROOT, 'compose', '.env.example'), 'utf8'));
  ctx.env = { ...Object.fromEntries(example.map((e) => [e.key, e.value])), ...REAL };
  ctx.envFile = path.join(ctx.work, '.env');
  fs.writeFileSync(
    ctx.envFile,
    Object.entries(ctx.env)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n') + '\n',
  );
});

test.after(async () => {
  // podman-compose's --dry-run still creates the project's network and volumes.
  await removeProjectResources(podman, CHECK);
  if (ctx.work) fs.rmSync(ctx.work, { recursive: true, force: true });
});

test('podman-compose parses the file as written, with every service and its settings', async () => {
  const r = await run('podman-compose', ['--dry-run', '--file', FILE, '--project-name', CHECK, 'up', '-d'], { env: ctx.env, cwd: ctx.work, timeoutMs: 120_000 });
  await removeProjectResources(podman, CHECK);
  assert.is(r.exitCode, 0, r.stderr);
  for (const s of ['postgres', 'redis', 'rabbitmq', 'api', 'admin', 'webui', 'prometheus', 'grafana']) {
    assert.match(r.stdout, new RegExp(`podman (run|create) --name=${CHECK}_${s}_1 `), s);
  }
  assert.match(r.stdout, new RegExp(`--name=${CHECK}_api_1 .*--cpus 2\\.0 -m 2g`), 'api resource limits');
  assert.match(r.stdout, /-p 127\.0\.0\.1:5000:8080/);
  assert.match(r.stdout, /ghcr\.io\/knnlabs\/conduit-http:master-7c3fd76(?![-\w])/, 'the pinned default of .env.example');
});

test('podman-compose stops on a missing required variable, naming it', async () => {
  const env = { ...ctx.env };
  delete env.POSTGRES_PASSWORD;
  const r = await run('podman-compose', ['--dry-run', '--file', FILE, '--project-name', CHECK, 'up', '-d'], { env, cwd: ctx.work, timeoutMs: 120_000 });
  await removeProjectResources(podman, CHECK);
  assert.match(r.stderr, /set POSTGRES_PASSWORD/);
});

test('compose.ts config: validates, renders for podman (secrets in env files, not arguments) and masks secrets', async () => {
  const r = await runScript('compose', ['config', '--engine', 'podman', '--env-file', ctx.envFile, '--profile', 'webui'], { timeoutMs: 180_000 });
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stderr, /podman compose config/);
  for (const secret of Object.values(REAL).filter((v) => !v.startsWith('pk_'))) assert.not.ok(r.stdout.includes(secret), 'secret printed');
  assert.match(r.stdout, /DATABASE_URL: postgres:\/\/conduit:\*\*\*@postgres:5432\/conduit\?Pooling=true&MinPoolSize=2&MaxPoolSize=30/);
  assert.match(r.stdout, /REDIS_URL: redis:\/\/default:\*\*\*@redis:6379/);
  const all = (await run('podman', ['volume', 'ls', '--format', '{{.Name}}'])).stdout;
  assert.not.match(all, /^conduit[-\w]*_postgres-data$/m, 'config leaves no volume behind');
});

test.run();
