// The one program runner: a child started with a parent-death signal really gets it when its parent
// dies, even by SIGKILL (a real setpriv, a real node parent, a real sleep child).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { run, withParentDeathSignal } from '../../scripts/lib/core/exec.ts';
import { processStart } from '../../scripts/lib/domain/lease.ts';

const test = suite('exec');
const linuxWithSetpriv = process.platform === 'linux' && fs.existsSync('/usr/bin/setpriv');

test('a parent-death signal wraps the program in setpriv where it exists; without one the argv is unchanged', () => {
  assert.equal(withParentDeathSignal('helm', ['upgrade'], undefined), ['helm', ['upgrade']]);
  const [cmd, args] = withParentDeathSignal('helm', ['upgrade', '--install'], 'SIGTERM');
  if (linuxWithSetpriv) assert.equal([cmd, args], ['/usr/bin/setpriv', ['--pdeathsig', 'TERM', '--', 'helm', 'upgrade', '--install']]);
  else assert.equal([cmd, args], ['helm', ['upgrade', '--install']]);
});

test('onSpawn gets the pid; the shown command is the program itself, not the wrapper', async () => {
  let pid = 0;
  const r = await run('sh', ['-c', 'echo $$'], { parentDeathSignal: 'SIGTERM', onSpawn: (p) => (pid = p) });
  assert.is(r.exitCode, 0);
  assert.is(Number(r.stdout.trim()), pid, 'setpriv execs the program: same pid');
  assert.is(r.command, "sh -c 'echo $$'");
});

test('a child started with a parent-death signal ends when its parent is SIGKILLed', async () => {
  if (!linuxWithSetpriv) return;
  // The parent: a node process that starts `sleep 60` through run() and prints its pid.
  const script = `import('${new URL('../../scripts/lib/core/exec.ts', import.meta.url).href}').then(({ run }) => run('sleep', ['60'], { parentDeathSignal: 'SIGTERM', detached: true, onSpawn: (p) => console.log(p) }));`;
  const parent = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const child = await new Promise<number>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
  assert.ok(processStart(child), 'the child runs');
  // setpriv sets the signal and then execs the program: wait until it is `sleep` itself.
  const isSleep = () => fs.readFileSync(`/proc/${child}/cmdline`, 'utf8').startsWith('sleep');
  for (let i = 0; i < 200 && !isSleep(); i++) await new Promise((r) => setTimeout(r, 25));
  parent.kill('SIGKILL');
  let alive = true;
  for (let i = 0; i < 150 && alive; i++) {
    await new Promise((r) => setTimeout(r, 100));
    alive = processStart(child) !== undefined;
  }
  assert.not.ok(alive, 'the detached child ended with its parent');
});

test('a timed-out child that ignores SIGTERM is killed, and its result comes even while a grandchild holds its output', async () => {
  // sh ignores SIGTERM (and so does its `sleep`, which keeps sh's stdout open after sh is gone).
  const r = await run('sh', ['-c', 'trap "" TERM; sleep 30 & echo $!; wait'], { timeoutMs: 300, killAfterMs: 300 });
  const grandchild = Number(r.stdout.trim());
  try {
    assert.ok(r.timedOut);
    assert.ok(grandchild > 0, r.stdout);
    assert.ok(r.ms < 10_000, `the result waited for the grandchild: ${Math.round(r.ms)} ms`);
  } finally {
    if (grandchild > 0) process.kill(grandchild, 'SIGKILL');
  }
});

test.run();
