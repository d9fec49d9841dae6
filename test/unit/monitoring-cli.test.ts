// scripts/monitoring.ts as an operator runs it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../scripts/lib/core/exec.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';

const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'scripts/monitoring.ts', ...args], { cwd: REPO_ROOT, timeoutMs: 120_000 });

test('--help lists the verbs', async () => {
  const r = await cli('--help');
  assert.is(r.exitCode, 0);
  for (const v of ['build', 'sync', 'check']) assert.match(r.stdout, v);
});

test('check --no-promtool --json passes on the committed sources', async () => {
  const r = await cli('check', '--no-promtool', '--json');
  assert.is(r.exitCode, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.is(out.ok, true);
  assert.ok(out.queries > 60);
});

test('build --dry-run and sync --dry-run have nothing to do', async () => {
  const b = JSON.parse((await cli('build', '--dry-run', '--json')).stdout);
  assert.equal(b.written, []);
  assert.equal(b.chartStale, []);
  const s = JSON.parse((await cli('sync', '--dry-run', '--json')).stdout);
  assert.equal(s.stale, []);
});

test('an unknown verb is a usage error (exit 2)', async () => {
  const r = await cli('frobnicate');
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /unknown verb/);
});

test.run();
