import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import {
  formatMicroTime,
  holderGone,
  LEASE_SECONDS,
  LOCK_PROCESS_ANNOTATION,
  LockHeldError,
  leaseFor,
  lockState,
  parseLockProcesses,
  processRef,
  processStart,
  type LeaseObject,
} from '../../scripts/lib/domain/lease.ts';

const test = suite('lease');
const T0 = new Date('2026-11-29T14:00:00.000Z');
const at = (s: number) => new Date(T0.getTime() + s * 1000);

function lease(spec: LeaseObject['spec'], rv = '7'): LeaseObject {
  return { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'conduit-deploy-lock', namespace: 'ns', resourceVersion: rv }, spec };
}

test('MicroTime has six fractional digits in UTC', () => {
  assert.is(formatMicroTime(new Date('2026-11-29T14:00:00.123Z')), '2026-11-29T14:00:00.123000Z');
});

test('no Lease, or a released one, is free', () => {
  assert.equal(lockState(undefined, T0), { expired: false, free: true, transitions: 0 });
  const released = lockState(lease({ leaseDurationSeconds: 60, leaseTransitions: 3 }), T0);
  assert.ok(released.free);
  assert.not.ok(released.expired);
  assert.is(released.holder, undefined);
});

test('a held Lease is not free until renewTime + duration has passed', () => {
  const l = lease({ holderIdentity: 'alice@laptop pid 1', leaseDurationSeconds: 60, acquireTime: formatMicroTime(T0), renewTime: formatMicroTime(at(30)) });
  assert.not.ok(lockState(l, at(89)).free);
  assert.is(lockState(l, at(89)).holder, 'alice@laptop pid 1');
  assert.is(lockState(l, at(89)).expiresAt, at(90).toISOString());
  const later = lockState(l, at(90));
  assert.ok(later.free);
  assert.ok(later.expired);
});

test('taking a lock writes holder, duration, times; a takeover counts a transition and keeps the resourceVersion guard', () => {
  const fresh = leaseFor({ namespace: 'ns', holder: 'bob', durationSeconds: 300, reason: 'deploy conduit' }, T0);
  assert.is(fresh.spec.holderIdentity, 'bob');
  assert.is(fresh.spec.leaseDurationSeconds, 300);
  assert.is(fresh.spec.acquireTime, '2026-11-29T14:00:00.000000Z');
  assert.is(fresh.spec.leaseTransitions, 0);
  assert.is(fresh.metadata.resourceVersion, undefined);
  assert.is(fresh.metadata.annotations?.['conduit.dev/lock-reason'], 'deploy conduit');

  const prev = lease({ holderIdentity: 'alice', leaseDurationSeconds: 5, renewTime: formatMicroTime(T0), leaseTransitions: 2 }, '42');
  const takeover = leaseFor({ namespace: 'ns', holder: 'bob', durationSeconds: 60 }, at(10), prev);
  assert.is(takeover.metadata.resourceVersion, '42');
  assert.is(takeover.spec.leaseTransitions, 3);
  assert.is(takeover.metadata.annotations?.['conduit.dev/lock-reason'], undefined);
  const renewal = leaseFor({ namespace: 'ns', holder: 'alice', durationSeconds: 60 }, at(1), prev);
  assert.is(renewal.spec.leaseTransitions, 2);
});

/** The pid of a process that ran and is gone (waited for, so not even a zombie is left). */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

test('a lock records the holder process (host, pid, start time); this process is alive, a finished one is gone', () => {
  const l = leaseFor({ namespace: 'ns', holder: 'alice', durationSeconds: LEASE_SECONDS }, T0);
  const p = parseLockProcesses(l.metadata.annotations?.[LOCK_PROCESS_ANNOTATION]);
  assert.equal(p?.host, os.hostname());
  assert.is(p?.holder.pid, process.pid);
  assert.ok(processStart(process.pid), 'a start time is read for a live process');
  assert.is(holderGone(p), false);
  const dead = deadPid();
  assert.is(processStart(dead), undefined);
  assert.is(holderGone({ host: os.hostname(), holder: { pid: dead }, children: [] }), true);
  // A pid reused by another process (other start time) counts as gone; a live child (helm) keeps the lock.
  assert.is(holderGone({ host: os.hostname(), holder: { pid: process.pid, start: '1' }, children: [] }), true);
  assert.is(holderGone({ host: os.hostname(), holder: { pid: dead }, children: [processRef(process.pid)] }), false);
  // Another host: its processes cannot be seen from here, so only expiry frees it.
  assert.is(holderGone({ host: 'elsewhere', holder: { pid: dead }, children: [] }), false);
});

test('a held lock whose holder is gone is free at once; an expired one after LEASE_SECONDS', () => {
  const l = leaseFor({ namespace: 'ns', holder: 'bob', durationSeconds: LEASE_SECONDS }, T0);
  assert.is(lockState(l, at(1)).free, false);
  const st = lockState(l, at(1), () => true);
  assert.equal([st.free, st.holderGone, st.expired], [true, true, false]);
  assert.is(lockState(l, at(LEASE_SECONDS)).free, true);
});

test('the refusal says the lock frees itself, and names unlock with the cluster for a machine gone for good', () => {
  const l = leaseFor({ namespace: 'conduit', holder: 'ci@runner-7 pid 42', durationSeconds: LEASE_SECONDS, reason: 'deploy conduit to prod-eu' }, T0);
  const e = new LockHeldError('conduit', 'conduit-deploy-lock', lockState(l, at(5)), at(5), 'prod-eu');
  assert.match(e.message, /held by ci@runner-7 pid 42 \(deploy conduit to prod-eu\) since 2026-11-29T14:00:00Z, expires in 25s unless renewed/);
  assert.match(e.hint ?? '', /frees it within 30s/);
  assert.match(e.hint ?? '', /npx zx scripts\/runbook.ts unlock --cluster prod-eu/);
});

test.run();
