// compose.ts init: the secret generator, which variables it generates or leaves to a human, and the
// real script on a temporary directory, checked afterwards with the validation `compose.ts up` runs.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { classifyTemplate, generateSecret, planEnvInit, renderEnvText, SECRET_ALPHABET, writeEnvFile } from '../../scripts/lib/engines/compose-init.ts';
import { loadComposeFile, parseEnvText, readEnvFile } from '../../scripts/lib/domain/compose-model.ts';
import { validateProject } from '../../scripts/lib/engines/compose.ts';
import { isUserError } from '../../scripts/lib/core/errors.ts';
import { run } from '../../scripts/lib/core/exec.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';
import { runScript } from '../helpers/zxscript.ts';

const COMPOSE_FILE = path.join(REPO_ROOT, 'compose', 'compose.yaml');
const EXAMPLE = path.join(REPO_ROOT, 'compose', '.env.example');
const GENERATED = ['CONDUIT_API_TO_API_BACKEND_AUTH_KEY', 'POSTGRES_PASSWORD', 'REDIS_PASSWORD', 'RABBITMQ_PASSWORD', 'GRAFANA_ADMIN_PASSWORD'];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-compose-init-'));
const compose = (...args: string[]) => runScript('compose', args, { timeoutMs: 60_000 });
const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** A random source that hands out the given byte sequences, then zeros. */
function scripted(...chunks: number[][]): (n: number) => Uint8Array {
  const queue = chunks.flat();
  return (n) => Uint8Array.from({ length: n }, () => queue.shift() ?? 0);
}

function generatedValues(file: string): string[] {
  const { env } = readEnvFile(file);
  return GENERATED.map((k) => env[k]);
}

test('generateSecret: 40 letters and digits from the system random source, never twice the same', () => {
  const values = Array.from({ length: 200 }, () => generateSecret());
  for (const v of values) assert.match(v, /^[A-Za-z0-9]{40}$/);
  assert.is(new Set(values).size, values.length);
  assert.throws(() => generateSecret(31), /length must be an integer >= 32/);
});

test('generateSecret: every character equally likely (bytes >= 248 dropped, no modulo bias)', () => {
  const counts = new Map<string, number>();
  const draws = 1000;
  for (let i = 0; i < draws; i++) for (const c of generateSecret()) counts.set(c, (counts.get(c) ?? 0) + 1);
  assert.is(counts.size, 62);
  const expected = (draws * 40) / 62;
  const chi2 = [...counts.values()].reduce((s, n) => s + (n - expected) ** 2 / expected, 0);
  // 61 degrees of freedom: 130 lies far beyond the 99.999th percentile; `b % 62` without dropping
  // bytes would make the first 8 characters 25 % likelier, a chi-square of about 350 here.
  assert.ok(chi2 < 130, `chi-square ${chi2.toFixed(1)}`);
  // A byte of 248..255 is skipped: the first character then comes from the next byte.
  assert.is(generateSecret(32, scripted([255, 248, 1])), 'B' + 'A'.repeat(31));
  assert.is(generateSecret(32, scripted([61, 123, 62])), '99' + 'A'.repeat(30));
});

test('generateSecret: a value the stack would take for a placeholder is drawn again', () => {
  const todo = ['t', 'o', 'd', 'o'].map((c) => SECRET_ALPHABET.indexOf(c));
  let calls = 0;
  const source = (n: number) => (calls++ === 0 ? Uint8Array.from([...todo, ...Array(n - todo.length).fill(0)]) : new Uint8Array(n).fill(1));
  assert.is(generateSecret(40, source), 'B'.repeat(40));
  assert.is(calls, 2);
});

test('the shipped .env.example: five credentials generated, Clerk keys and external URLs left for the webui profile', () => {
  const classes = classifyTemplate(parseEnvText(fs.readFileSync(EXAMPLE, 'utf8')), loadComposeFile(COMPOSE_FILE));
  assert.equal(classes.generated, GENERATED);
  assert.equal(
    classes.toFill,
    ['CONDUIT_API_EXTERNAL_URL', 'CONDUIT_ADMIN_API_EXTERNAL_URL', 'NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY', 'CLERK_SECRET_KEY'].map((variable) => ({ variable, profiles: ['webui'] })),
  );
});

test("classifyTemplate: a fixed credential is generated too (up refuses the example's value); vendor-shaped placeholders are not", () => {
  const doc = {
    services: {
      app: { image: 'x:1', environment: { A: '${APP_TOKEN}', B: '${VENDOR_SECRET}', C: '${HOME_URL}', D: '${APP_USER}' } },
      extra: { profiles: ['extra'], environment: { E: '${EXTRA_PASSWORD}' } },
    },
  };
  const entries = parseEnvText('APP_TOKEN=fixedvalue\nVENDOR_SECRET=sk_test_CHANGE_ME\nHOME_URL=https://example.com\nAPP_USER=admin\nEXTRA_PASSWORD=change-me\n');
  const c = classifyTemplate(entries, doc);
  assert.equal(c.generated, ['APP_TOKEN', 'EXTRA_PASSWORD']);
  assert.equal(c.toFill, [
    { variable: 'VENDOR_SECRET', profiles: ['default'] },
    { variable: 'HOME_URL', profiles: ['default'] },
  ]);
});

test('renderEnvText replaces only the named values and keeps comments, order and other lines', () => {
  const text = '# head\nA=CHANGE_ME_a\n  export B = keep\nC=CHANGE_ME_c\n\n# tail A=x\n';
  assert.is(renderEnvText(text, { A: 'one', C: 'two' }, ['# new']), '# new\n# head\nA=one\n  export B = keep\nC=two\n\n# tail A=x\n');
});

test('compose.ts init writes a private env file that passes the checks of compose.ts up, printing no secret', async () => {
  const target = path.join(dir, 'first', '.env');
  fs.mkdirSync(path.dirname(target));
  const dry = await compose('init', target, '--dry-run', '--json');
  assert.is(dry.exitCode, 0, dry.stderr);
  assert.is(JSON.parse(dry.stdout).dryRun, true);
  assert.not.ok(fs.existsSync(target), 'a dry run writes nothing');

  const r = await compose('init', target);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(fs.statSync(target).mode & 0o777, 0o600);
  assert.equal(fs.readdirSync(path.dirname(target)), ['.env'], 'no temporary file left behind');
  const secrets = generatedValues(target);
  for (const s of secrets) {
    assert.match(s, /^[A-Za-z0-9]{40}$/);
    assert.not.ok(r.stdout.includes(s) || r.stderr.includes(s), 'a secret was printed');
  }
  assert.match(
    r.stdout,
    /Still to fill in by hand before using the profile webui:\n {2}CONDUIT_API_EXTERNAL_URL\n {2}CONDUIT_ADMIN_API_EXTERNAL_URL\n {2}NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY\n {2}CLERK_SECRET_KEY/,
  );
  // Everything else is the example, line for line.
  const example = parseEnvText(fs.readFileSync(EXAMPLE, 'utf8'));
  const written = readEnvFile(target).env;
  for (const e of example) if (!GENERATED.includes(e.key)) assert.is(written[e.key], e.value, e.key);

  // The validation `compose.ts up` runs, in process and through the script (which prints no secret either).
  const { problems } = validateProject({ file: COMPOSE_FILE, envFile: target, profiles: [] });
  assert.equal(problems, []);
  const up = await compose('up', '--dry-run', '--engine', 'podman', '--env-file', target, '--json');
  assert.is(up.exitCode, 0, up.stderr);
  for (const s of secrets) assert.not.ok(up.stdout.includes(s) || up.stderr.includes(s));
  // What the summary leaves to a human is what stops `up --profile webui`.
  const webui = validateProject({ file: COMPOSE_FILE, envFile: target, profiles: ['webui'] });
  assert.equal(
    webui.problems.map((p) => p.variable),
    ['CLERK_SECRET_KEY'],
  );
});

test('compose.ts init refuses to overwrite without --force (exit 1, file unchanged); --force writes new secrets', async () => {
  const target = path.join(dir, 'again.env');
  assert.is((await compose('init', target)).exitCode, 0);
  const before = sha(target);
  const old = generatedValues(target);
  const r = await compose('init', target, '--json');
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /again\.env already exists; nothing was changed/);
  assert.match(r.stderr, /--force/);
  assert.is(sha(target), before);

  // --env-file names a file that exists, so Node 20's own check of that flag lets it through.
  const forced = await compose('init', '--env-file', target, '--force', '--json');
  assert.is(forced.exitCode, 0, forced.stderr);
  assert.is(JSON.parse(forced.stdout).replaced, true);
  assert.match(forced.stderr, /every secret in it changes/);
  const fresh = generatedValues(target);
  fresh.forEach((v, i) => assert.is.not(v, old[i]));
  for (const s of [...old, ...fresh]) assert.not.ok(forced.stdout.includes(s) || forced.stderr.includes(s));
  assert.is(fs.statSync(target).mode & 0o777, 0o600);
  assert.equal(
    fs.readdirSync(dir).filter((f) => f.includes('again')),
    ['again.env'],
  );
});

test('compose.ts init: usage errors exit 2; a missing directory or a template `up` would refuse exit 1 and write nothing', async () => {
  for (const args of [
    ['init', 'a.env', 'b.env'],
    ['init', 'a.env', '--env-file', EXAMPLE],
    ['up', '--force'],
  ]) {
    const r = await compose(...args);
    assert.is(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
  }
  const missing = await compose('init', path.join(dir, 'no-such-dir', '.env'));
  assert.is(missing.exitCode, 1);
  assert.match(missing.stderr, /directory .*no-such-dir does not exist/);
  assert.not.ok(fs.existsSync(path.join(dir, 'no-such-dir')));

  const stack = path.join(dir, 'stack');
  fs.mkdirSync(stack);
  fs.copyFileSync(COMPOSE_FILE, path.join(stack, 'compose.yaml'));
  fs.writeFileSync(path.join(stack, '.env.example'), fs.readFileSync(EXAMPLE, 'utf8').replace(/^CONDUIT_API_IMAGE=.*$/m, 'CONDUIT_API_IMAGE=ghcr.io/knnlabs/conduit-http:latest'));
  const bad = await compose('init', '--file', path.join(stack, 'compose.yaml'));
  assert.is(bad.exitCode, 1);
  assert.match(bad.stderr, /would not pass the checks of compose\.ts up; nothing was written/);
  assert.match(bad.stderr, /services\.api\.image ghcr\.io\/knnlabs\/conduit-http:latest uses the moving tag latest/);
  assert.equal(fs.readdirSync(stack).sort(), ['.env.example', 'compose.yaml']);
});

test('writeEnvFile: a file that appears after planning is never overwritten without --force', () => {
  const target = path.join(dir, 'race.env');
  const plan = planEnvInit({ composeFile: COMPOSE_FILE, target, force: false });
  fs.writeFileSync(target, 'MINE=1\n');
  try {
    writeEnvFile(plan);
    assert.unreachable();
  } catch (e) {
    assert.ok(isUserError(e));
    assert.match((e as Error).message, /appeared while init ran/);
  }
  assert.is(fs.readFileSync(target, 'utf8'), 'MINE=1\n');
  assert.equal(
    fs.readdirSync(dir).filter((f) => f.includes('race')),
    ['race.env'],
  );
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
test.run();
