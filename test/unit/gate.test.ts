import { spawnSync } from 'node:child_process';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { RenderGate } from '../../scripts/lib/domain/gate.ts';
import { Helm } from '../../scripts/lib/adapters/helm.ts';

const test = suite('render gate');

/** Run the gate script the way helm runs a post-renderer: manifest on stdin, result on stdout. */
function runScript(gate: RenderGate, script: string, input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(script, [], { env: { ...process.env, ...gate.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    // A script that fails before reading its input (no gate directory any more) closes the pipe
    // first: the write then fails with EPIPE, which is that script's outcome, not the test's error.
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}
const scriptOf = (gate: RenderGate) => path.join(gate.dir, 'plugins', 'conduit-gate', 'gate.sh');
const helm3 = new Helm('helm3', 3);
const helm4 = new Helm('helm', 4);
const MANIFEST = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n';

test('helm 4 gets a post-renderer plugin in a private plugin directory; helm 3 the script itself', async () => {
  const g4 = await RenderGate.open(helm4);
  const g3 = await RenderGate.open(helm3);
  try {
    assert.equal(g4.helmArgs, ['--post-renderer', 'conduit-gate']);
    assert.is(g4.env.HELM_PLUGINS, path.join(g4.dir, 'plugins'));
    assert.match(fs.readFileSync(path.join(g4.dir, 'plugins', 'conduit-gate', 'plugin.yaml'), 'utf8'), /type: postrenderer\/v1/);
    assert.equal(g3.helmArgs, ['--post-renderer', scriptOf(g3)]);
    assert.is(g3.env.HELM_PLUGINS, undefined);
    assert.is(fs.statSync(g4.dir).mode & 0o777, 0o700);
  } finally {
    await g4.close();
    await g3.close();
  }
});

test('approved: the deploy sees the manifest, and helm gets it back unchanged', async () => {
  const gate = await RenderGate.open(helm3);
  try {
    const ran = runScript(gate, scriptOf(gate), MANIFEST);
    assert.is(await gate.manifest(), MANIFEST);
    assert.ok(gate.pending);
    await gate.approve();
    assert.not.ok(gate.pending);
    const r = await ran;
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout, MANIFEST);
  } finally {
    await gate.close();
  }
});

test('refused: the post-renderer fails with the reason, and gives helm no manifest', async () => {
  const gate = await RenderGate.open(helm3);
  try {
    const ran = runScript(gate, scriptOf(gate), MANIFEST);
    await gate.manifest();
    await gate.refuse('refused by deploy.ts: api.replicaCount must be >= 0');
    const r = await ran;
    assert.is(r.code, 1);
    assert.is(r.stdout, '');
    assert.match(r.stderr, /api\.replicaCount must be >= 0/);
  } finally {
    await gate.close();
  }
});

test('refused before the deploy asked for the manifest (e.g. the lock is held by another deploy): the script still ends, refused', async () => {
  const gate = await RenderGate.open(helm3);
  try {
    // The verdict comes first, helm reaches the gate later; nobody ever calls manifest().
    const refused = gate.refuse('refused by deploy.ts: the deploy lock is held by someone else');
    await new Promise((r) => setTimeout(r, 50));
    const r = await runScript(gate, scriptOf(gate), MANIFEST);
    await refused;
    assert.is(r.code, 1);
    assert.is(r.stdout, '');
    assert.match(r.stderr, /lock is held/);
  } finally {
    await gate.close();
  }
});

test('helm gone before it reached the gate: waiting for the manifest ends, nothing hangs, close removes everything', async () => {
  const gate = await RenderGate.open(helm4);
  const waiting = gate.manifest();
  setTimeout(() => gate.cancel(), 20);
  assert.is(await waiting, undefined);
  assert.not.ok(gate.pending);
  await gate.refuse('too late');
  await gate.close();
  assert.not.ok(fs.existsSync(gate.dir));
});

test('closed while the script waits for a verdict: the script reads end-of-file and fails; one started after close fails at once', async () => {
  const gate = await RenderGate.open(helm3);
  const script = scriptOf(gate);
  const copy = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gate-test-')), 'gate.sh');
  fs.copyFileSync(script, copy);
  const ran = runScript(gate, script, MANIFEST);
  assert.is(await gate.manifest(), MANIFEST);
  await gate.close();
  const r = await ran;
  assert.is(r.code, 1);
  assert.is(r.stdout, '');
  const late = await runScript(gate, copy, MANIFEST);
  assert.ok(late.code > 0, `no directory, no FIFO to wait on: exit ${late.code}`);
  assert.is(late.stdout, '');
});

test('deploy.ts killed before the script reached its FIFOs: the script does not wait for good on FIFOs nobody holds', async () => {
  const gate = await RenderGate.open(helm3);
  const script = scriptOf(gate);
  // The gate's directory as a SIGKILLed deploy.ts leaves it: FIFOs that nobody holds open.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gate-test-'));
  spawnSync('mkfifo', [path.join(dir, 'request'), path.join(dir, 'response')]);
  const gone = spawnSync('true').pid!; // a pid whose process has exited
  const started = performance.now();
  const r = spawnSync(script, [], { input: MANIFEST, env: { ...process.env, CONDUIT_GATE_DIR: dir, CONDUIT_GATE_PID: String(gone) }, timeout: 20_000, encoding: 'utf8' });
  await gate.close();
  fs.rmSync(dir, { recursive: true, force: true });
  assert.ok(performance.now() - started < 10_000, 'the script ended by itself, well before the 20 s limit');
  assert.not.equal(r.status, 0);
  assert.is(r.stdout, '', 'helm gets no manifest');
});

/** Runs `body` (an async function text with `gate` in scope) in a child process with one pool thread, then exit 0; a process that does not end by itself is stopped after 20 s (signal set). */
function exitsByItself(body: string): { status: number | null; signal: string | null; stdout: string; stderr: string } {
  const gateModule = new URL('../../scripts/lib/domain/gate.ts', import.meta.url).href;
  const script = `import('${gateModule}').then(async ({ RenderGate }) => {
    const gate = await RenderGate.open({ postRendererArgs: () => ({ args: [], env: {} }) });
    ${body}
    process.exit(0);
  });`;
  return spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, UV_THREADPOOL_SIZE: '1' } });
}

test('asked for the manifest only after helm is gone (helm refused the values itself): undefined at once, and the process exits', () => {
  const r = exitsByItself(`
    gate.cancel();
    const m = await gate.manifest();
    await gate.refuse('refused');
    await gate.close();
    process.stdout.write(String(m) + ' ' + require('node:fs').existsSync(gate.dir));`);
  assert.is(r.status, 0, `the process did not end by itself (signal ${r.signal}): ${r.stderr}`);
  assert.is(r.stdout, 'undefined false');
});

test('the thread pool busy while helm is refused and gone: the process still exits', () => {
  // The only pool thread is busy for a while when the refusal and helm's exit (the cancel) come.
  const r = exitsByItself(`
    const busy = new Promise((r) => require('node:crypto').pbkdf2('x', 'y', 300000, 32, 'sha256', r));
    void gate.refuse('refused').catch(() => undefined);
    gate.cancel();
    await busy;
    await new Promise((r) => setTimeout(r, 200));
    await gate.close();
    process.stdout.write(String(require('node:fs').existsSync(gate.dir)));`);
  assert.is(r.status, 0, `the process did not end by itself (signal ${r.signal}): ${r.stderr}`);
  assert.is(r.stdout, 'false', 'close removed the directory');
});

test.run();
