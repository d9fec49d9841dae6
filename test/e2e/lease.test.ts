// The deploy lock against a real API server: concurrent takers, expiry takeover, release.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Kube } from '../../scripts/lib/adapters/kube.ts';
import { acquireLock, holdLock, LockHeldError, readLock, releaseLock, renewLock } from '../../scripts/lib/domain/lease.ts';
import { localCluster, rejection, scratchNamespace, sleep } from './support/localcluster.ts';

const test = suite('deploy lock (Lease)');
let kube: Kube;
let ns: { name: string; cleanup: () => Promise<void> };

test.before(async () => {
  kube = await localCluster();
  ns = await scratchNamespace(kube, 'e2e-lease');
});
test.after(async () => {
  await ns?.cleanup();
});

function outcome(results: PromiseSettledResult<unknown>[]) {
  const won = results.filter((r) => r.status === 'fulfilled');
  const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  return { won, lost };
}

test('two concurrent acquires on a free lock: exactly one wins, the other names the holder', async () => {
  for (let round = 0; round < 3; round++) {
    const name = `race-${round}`;
    const holders = [`alice-${round}`, `bob-${round}`];
    const results = await Promise.allSettled(holders.map((holder) => acquireLock(kube, { namespace: ns.name, name, holder, durationSeconds: 60, reason: 'e2e race' })));
    const { won, lost } = outcome(results);
    assert.is(won.length, 1, `round ${round}: ${JSON.stringify(results.map((r) => r.status))}`);
    assert.is(lost.length, 1);
    const winner = (won[0] as PromiseFulfilledResult<{ holder: string }>).value.holder;
    assert.instance(lost[0].reason, LockHeldError);
    assert.is((lost[0].reason as LockHeldError).holder, winner);
    assert.match((lost[0].reason as Error).message, new RegExp(`held by ${winner} \\(e2e race\\)`));
    assert.is((await readLock(kube, ns.name, name)).holder, winner);
  }
});

test('an expired lock is taken over (by exactly one of two racers), and the old holder cannot release it', async () => {
  const name = 'expiry';
  const old = await acquireLock(kube, { namespace: ns.name, name, holder: 'crashed-ci', durationSeconds: 1 });
  const refused = await rejection(() => acquireLock(kube, { namespace: ns.name, name, holder: 'carol', durationSeconds: 60 }));
  assert.instance(refused, LockHeldError);
  assert.is((refused as LockHeldError).holder, 'crashed-ci');
  await sleep(1600);
  const results = await Promise.allSettled(['carol', 'dave'].map((holder) => acquireLock(kube, { namespace: ns.name, name, holder, durationSeconds: 60 })));
  const { won, lost } = outcome(results);
  assert.is(won.length, 1, JSON.stringify(results));
  const lock = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireLock>>>).value;
  assert.is(lock.tookOverFrom, 'crashed-ci');
  assert.is((lost[0].reason as LockHeldError).holder, lock.holder);
  const state = await readLock(kube, ns.name, name);
  assert.is(state.holder, lock.holder);
  assert.is(state.transitions, 1);

  assert.is(await releaseLock(kube, old), false, 'a stale holder must not release the new lock');
  assert.is((await readLock(kube, ns.name, name)).holder, lock.holder);

  const renewed = await renewLock(kube, lock);
  assert.ok(Date.parse(renewed.expiresAt) >= Date.parse(lock.expiresAt));
  assert.is(await releaseLock(kube, renewed), true);
  const free = await readLock(kube, ns.name, name);
  assert.ok(free.free);
  assert.is(free.holder, undefined);
  const again = await acquireLock(kube, { namespace: ns.name, name, holder: 'erin', durationSeconds: 60 });
  assert.is(again.tookOverFrom, undefined);
  await releaseLock(kube, again);
});

test('holdLock keeps the lock renewed while the work runs and releases it, also after a failure', async () => {
  const name = 'hold';
  const seen = await holdLock(kube, { namespace: ns.name, name, holder: 'frank', durationSeconds: 3 }, async () => {
    await sleep(4500); // longer than the duration: only the renewals keep it
    const state = await readLock(kube, ns.name, name);
    assert.not.ok(state.expired);
    return state.holder;
  });
  assert.is(seen, 'frank');
  assert.ok((await readLock(kube, ns.name, name)).free);
  const e = await rejection(() =>
    holdLock(kube, { namespace: ns.name, name, holder: 'grace', durationSeconds: 30 }, async () => {
      throw new Error('work failed');
    }),
  );
  assert.match(e.message, /work failed/);
  assert.ok((await readLock(kube, ns.name, name)).free);
});

test.run();
