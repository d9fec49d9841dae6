import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { formatMicroTime, leaseFor, lockState, type LeaseObject } from '../../scripts/lib/domain/lease.ts';

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

test.run();
