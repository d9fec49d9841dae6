// Ctrl-C in the middle of `helm upgrade`: the deploy must leave a consistent release (no pending-*),
// a free lock and an audit entry saying it was interrupted.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readAudit } from '../../scripts/lib/domain/audit.ts';
import type { Kube } from '../../scripts/lib/adapters/kube.ts';
import { readLock } from '../../scripts/lib/domain/lease.ts';
import { NEVER_READY_VALUES, scratchTarget, startDeployJob, tempValues, waitFor, type Scratch } from './support/deploycli.ts';
import { localCluster, sleep } from './support/localcluster.ts';

const test = suite('deploy.ts interrupted');
let kube: Kube;
const scratches: Scratch[] = [];

test.before(async () => {
  kube = await localCluster();
});
test.after(async () => {
  for (const s of scratches) await s.cleanup();
});

for (const [sig, major] of [
  ['SIGINT', 4],
  ['SIGTERM', 3],
] as const) {
  test(`${sig} during the apply step (helm ${major}) rolls the release back, frees the lock and records "interrupted"`, async () => {
    const s = await scratchTarget(kube, 'dint');
    scratches.push(s);
    const first = await s.deploy(['--yes', '--helm', String(major)]);
    assert.is(first.exitCode, 0, first.stderr);
    const before = await s.history();
    assert.is(before.at(-1)?.status, 'deployed');

    const job = startDeployJob([
      '--namespace',
      s.namespace,
      '--release',
      s.release,
      '--helm',
      String(major),
      '--values',
      tempValues('never-ready.yaml', NEVER_READY_VALUES),
      '--timeout',
      '5m',
      '--yes',
    ]);
    await waitFor('the apply step', () => /› helm upgrade --install/.test(job.stderr()), 120_000);
    await sleep(4000);
    // The apply is still waiting for pods that never become ready.
    assert.match(String(await s.status()), /^pending-upgrade$/);
    job.ctrlC(sig);
    const code = await job.exited;
    // deploy.ts exits 130; npx itself, when SIGTERM reached it too, may report 143 for the signal.
    assert.ok(code === 130 || code === 1 || (sig === 'SIGTERM' && code === 143), `exit code ${code}\n${job.stderr()}`);
    assert.match(job.stderr(), /bringing the deploy to a consistent state/);
    assert.match(job.stderr(), /interrupted by SIG/);

    assert.is(await s.status(), 'deployed');
    const after = await s.history();
    assert.is(after.at(-1)?.status, 'deployed');
    assert.not.ok(
      after.some((h) => h.status.startsWith('pending-')),
      JSON.stringify(after),
    );
    assert.ok(after.at(-1)!.revision > before.at(-1)!.revision);
    const lock = await readLock(kube, s.namespace);
    assert.ok(lock.free, JSON.stringify(lock));
    const audit = await readAudit(kube, s.namespace);
    assert.is(audit.at(-1)?.result, 'interrupted');

    // The release is usable: the next deploy goes through.
    const again = await s.deploy(['--yes', '--helm', String(major), '--json']);
    assert.is(again.exitCode, 0, again.stderr);
  });
}

test.run();
