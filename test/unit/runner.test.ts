// The test runner itself: its closing line, and failures of `before` hooks reported (not swallowed).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../scripts/lib/core/exec.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';

test('a throwing before hook fails the run, shows its error and counts as failed', async () => {
  const r = await run(process.execPath, ['--import', 'tsx', 'test/run.ts', 'fixtures/runner'], { cwd: REPO_ROOT, env: { NODE_OPTIONS: '' } });
  assert.is(r.exitCode, 1, r.stdout + r.stderr);
  assert.match(r.stdout, 'the before hook failed on purpose');
  assert.match(r.stdout, /^0 passed, 1 failed, 0 skipped$/m);
});

test.run();
