// The deploy lock: a coordination.k8s.io/v1 Lease in the target namespace, so two operators (or an
// operator and CI) never upgrade the same release at once. Race-free by construction:
// - taking a free lock is a `create`, which the API server lets exactly one client win;
// - taking over an expired or released lock is a `replace` guarded by the resourceVersion that was
//   read, so of two clients that both saw it expired exactly one write succeeds (the other gets a
//   Conflict, re-reads and reports the winner).
// Expiry compares the holder's renewTime + leaseDurationSeconds with this machine's clock: keep clocks
// in sync (NTP); a lock is renewed while held (keepLock/holdLock) so long deploys do not expire.
import os from 'node:os';
import { UserError } from '../core/errors.ts';
import { isKubeError, type Kube, type KubeObject } from '../adapters/kube.ts';

export const DEFAULT_LOCK_NAME = 'conduit-deploy-lock';
export const LOCK_REASON_ANNOTATION = 'conduit.dev/lock-reason';

export interface LeaseObject extends KubeObject {
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface LockOptions {
  namespace: string;
  /** Lease name (default conduit-deploy-lock). */
  name?: string;
  /** Who takes the lock, e.g. `alice@laptop pid 4242`; see defaultHolderIdentity(). */
  holder: string;
  /** How long the lock stays valid without renewal. */
  durationSeconds: number;
  /** What the holder is doing (shown to whoever is refused), e.g. `deploy conduit to local`. */
  reason?: string;
  now?: () => Date;
}

export interface HeldLock {
  namespace: string;
  name: string;
  holder: string;
  durationSeconds: number;
  resourceVersion: string;
  acquiredAt: string;
  expiresAt: string;
  /** The holder whose expired lock was taken over, if any. */
  tookOverFrom?: string;
}

export interface LockState {
  holder?: string;
  reason?: string;
  acquiredAt?: string;
  renewedAt?: string;
  expiresAt?: string;
  expired: boolean;
  free: boolean;
  transitions: number;
}

/** A stable, human-readable identity for this process. */
export function defaultHolderIdentity(): string {
  let user = process.env.USER || process.env.LOGNAME || 'unknown';
  try {
    user = os.userInfo().username || user;
  } catch {
    /* no passwd entry (containers): keep the env value */
  }
  const ci = process.env.CI ? ' (CI)' : '';
  return `${user}@${os.hostname()} pid ${process.pid}${ci}`;
}

/** Kubernetes MicroTime: RFC 3339 with exactly six fractional digits, UTC. */
export function formatMicroTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export function parseKubeTime(s: string | undefined): Date | undefined {
  if (!s) return undefined;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** What a Lease says about the lock at time `now` (pure). */
export function lockState(lease: LeaseObject | undefined, now: Date): LockState {
  if (!lease) return { expired: false, free: true, transitions: 0 };
  const s = lease.spec ?? {};
  const holder = s.holderIdentity || undefined;
  const renewed = parseKubeTime(s.renewTime) ?? parseKubeTime(s.acquireTime);
  const duration = s.leaseDurationSeconds ?? 0;
  const expiresAt = renewed ? new Date(renewed.getTime() + duration * 1000) : undefined;
  const expired = Boolean(holder) && (!expiresAt || expiresAt.getTime() <= now.getTime());
  return {
    holder,
    reason: lease.metadata.annotations?.[LOCK_REASON_ANNOTATION],
    acquiredAt: s.acquireTime,
    renewedAt: s.renewTime,
    expiresAt: expiresAt?.toISOString(),
    expired,
    free: !holder || expired,
    transitions: s.leaseTransitions ?? 0,
  };
}

/** The Lease a holder writes to take the lock (pure). */
export function leaseFor(options: LockOptions, now: Date, previous?: LeaseObject): LeaseObject {
  const name = options.name ?? DEFAULT_LOCK_NAME;
  const annotations = { ...(previous?.metadata.annotations ?? {}) };
  if (options.reason) annotations[LOCK_REASON_ANNOTATION] = options.reason;
  else delete annotations[LOCK_REASON_ANNOTATION];
  const lease: LeaseObject = {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name,
      namespace: options.namespace,
      labels: { ...(previous?.metadata.labels ?? {}), 'app.kubernetes.io/managed-by': 'conduit-deploy' },
      annotations,
    },
    spec: {
      holderIdentity: options.holder,
      leaseDurationSeconds: Math.max(1, Math.round(options.durationSeconds)),
      acquireTime: formatMicroTime(now),
      renewTime: formatMicroTime(now),
      leaseTransitions: previous ? (previous.spec?.leaseTransitions ?? 0) + (previous.spec?.holderIdentity === options.holder ? 0 : 1) : 0,
    },
  };
  if (previous?.metadata.resourceVersion) lease.metadata.resourceVersion = previous.metadata.resourceVersion;
  return lease;
}

function describeHolder(state: LockState, now: Date): string {
  const since = state.acquiredAt ? ` since ${state.acquiredAt.replace(/\.\d+Z$/, 'Z')}` : '';
  const left = state.expiresAt ? Math.max(0, Math.round((Date.parse(state.expiresAt) - now.getTime()) / 1000)) : 0;
  return `${state.holder}${state.reason ? ` (${state.reason})` : ''}${since}, expires in ${left}s`;
}

/** Refused because someone else holds the lock (exit 1, details name the holder). */
export class LockHeldError extends UserError {
  readonly holder: string;
  constructor(namespace: string, name: string, state: LockState, now: Date) {
    super(`the deploy lock ${namespace}/${name} is held by ${describeHolder(state, now)}`, {
      hint: 'Wait until that operation ends (or the lock expires), then retry. Nothing was changed.',
      details: { holder: state.holder, reason: state.reason, expiresAt: state.expiresAt },
    });
    this.name = 'LockHeldError';
    this.holder = state.holder ?? '';
  }
}

function held(lease: LeaseObject, options: LockOptions, tookOverFrom?: string): HeldLock {
  const s = lockState(lease, new Date(0));
  return {
    namespace: options.namespace,
    name: options.name ?? DEFAULT_LOCK_NAME,
    holder: options.holder,
    durationSeconds: lease.spec.leaseDurationSeconds ?? options.durationSeconds,
    resourceVersion: lease.metadata.resourceVersion ?? '',
    acquiredAt: lease.spec.acquireTime ?? '',
    expiresAt: s.expiresAt ?? '',
    ...(tookOverFrom ? { tookOverFrom } : {}),
  };
}

/** Read the lock's current state (undefined Lease = free). */
export async function readLock(kube: Kube, namespace: string, name = DEFAULT_LOCK_NAME, now = new Date()): Promise<LockState> {
  return lockState(await kube.get<LeaseObject>('leases.coordination.k8s.io', name, { namespace }), now);
}

/**
 * Take the lock or fail fast naming the holder. A lock whose holder did not renew it within its
 * duration is taken over; a lock this same holder already holds is renewed.
 */
export async function acquireLock(kube: Kube, options: LockOptions): Promise<HeldLock> {
  const now = options.now ?? (() => new Date());
  const name = options.name ?? DEFAULT_LOCK_NAME;
  // Two rounds at most: a create that lost to another creator, or a takeover that lost a race, ends
  // in one more read that reports the winner.
  for (let attempt = 0; attempt < 3; attempt++) {
    const current = await kube.get<LeaseObject>('leases.coordination.k8s.io', name, { namespace: options.namespace });
    if (!current) {
      try {
        const created = await kube.create(leaseFor(options, now()), { namespace: options.namespace });
        return held(created, options);
      } catch (e) {
        if (isKubeError(e, 'AlreadyExists')) continue;
        throw e;
      }
    }
    const state = lockState(current, now());
    if (!state.free && state.holder !== options.holder) throw new LockHeldError(options.namespace, name, state, now());
    try {
      const replaced = await kube.replace(leaseFor(options, now(), current), { namespace: options.namespace });
      return held(replaced, options, state.expired && state.holder !== options.holder ? state.holder : undefined);
    } catch (e) {
      if (isKubeError(e, 'Conflict')) continue;
      throw e;
    }
  }
  const state = await readLock(kube, options.namespace, name, now());
  if (!state.free) throw new LockHeldError(options.namespace, name, state, now());
  throw new UserError(`could not take the deploy lock ${options.namespace}/${name}: it kept changing while being taken`, {
    hint: 'Another process is taking and releasing it in a loop; retry in a moment.',
  });
}

/** Extend a held lock. Fails (naming the new holder) if it was lost, e.g. after expiring. */
export async function renewLock(kube: Kube, lock: HeldLock, now = new Date()): Promise<HeldLock> {
  const current = await kube.get<LeaseObject>('leases.coordination.k8s.io', lock.name, { namespace: lock.namespace });
  const state = lockState(current, now);
  if (!current || current.spec?.holderIdentity !== lock.holder) {
    throw new LockHeldError(lock.namespace, lock.name, { ...state, holder: state.holder ?? '(nobody)' }, now);
  }
  const next = structuredClone(current);
  next.spec.renewTime = formatMicroTime(now);
  next.spec.leaseDurationSeconds = lock.durationSeconds;
  try {
    const replaced = await kube.replace(next, { namespace: lock.namespace });
    return { ...lock, resourceVersion: replaced.metadata.resourceVersion ?? '', expiresAt: lockState(replaced, now).expiresAt ?? '' };
  } catch (e) {
    if (isKubeError(e, 'Conflict')) {
      const again = await readLock(kube, lock.namespace, lock.name, now);
      throw new LockHeldError(lock.namespace, lock.name, { ...again, holder: again.holder ?? '(nobody)' }, now);
    }
    throw e;
  }
}

/**
 * Give the lock back: the holder is cleared (resourceVersion-guarded, so a lock that someone else
 * took over after it expired is left alone). Returns false when it was no longer ours.
 */
export async function releaseLock(kube: Kube, lock: HeldLock): Promise<boolean> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const current = await kube.get<LeaseObject>('leases.coordination.k8s.io', lock.name, { namespace: lock.namespace });
    if (!current || current.spec?.holderIdentity !== lock.holder) return false;
    const next = structuredClone(current);
    delete next.spec.holderIdentity;
    delete next.spec.renewTime;
    delete next.spec.acquireTime;
    if (next.metadata.annotations) delete next.metadata.annotations[LOCK_REASON_ANNOTATION];
    try {
      await kube.replace(next, { namespace: lock.namespace });
      return true;
    } catch (e) {
      if (!isKubeError(e, 'Conflict')) throw e;
    }
  }
  return false;
}

/**
 * Keep a taken lock while `fn` runs: renewed at a third of its duration, released afterwards (also
 * when `fn` throws). If a renewal finds the lock lost, the result of `fn` is replaced by that error.
 */
export async function keepLock<T>(kube: Kube, taken: HeldLock, fn: (lock: HeldLock) => Promise<T>): Promise<T> {
  let lock = taken;
  let lost: Error | undefined;
  const timer = setInterval(
    () => {
      renewLock(kube, lock).then(
        (l) => (lock = l),
        (e: Error) => (lost = e),
      );
    },
    Math.max(1000, (taken.durationSeconds * 1000) / 3),
  );
  timer.unref();
  try {
    const result = await fn(lock);
    if (lost) throw lost;
    return result;
  } finally {
    clearInterval(timer);
    await releaseLock(kube, lock).catch(() => false);
  }
}

/** Take the lock (failing fast when held), keep it while `fn` runs, release it afterwards. */
export async function holdLock<T>(kube: Kube, options: LockOptions, fn: (lock: HeldLock) => Promise<T>): Promise<T> {
  return keepLock(kube, await acquireLock(kube, options), fn);
}
