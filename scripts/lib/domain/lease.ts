// The deploy lock: a coordination.k8s.io/v1 Lease in the target namespace, so two operators (or an
// operator and CI) never upgrade the same release at once. Race-free by construction:
// - taking a free lock is a `create`, which the API server lets exactly one client win;
// - taking over an expired or released lock is a `replace` guarded by the resourceVersion that was
//   read, so of two clients that both saw it expired exactly one write succeeds (the other gets a
//   Conflict, re-reads and reports the winner).
// Expiry compares the holder's renewTime + leaseDurationSeconds with this machine's clock: keep clocks
// in sync (NTP). A lock lasts LEASE_SECONDS and is renewed every third of that while its holder lives
// (keepLock/holdLock), so a long helm wait stays protected and a holder that died (SIGKILL, a vanished
// CI runner) frees it within LEASE_SECONDS. A holder on this same host whose processes are all gone
// (the lock records the holder's pid and start time, and those of the programs it runs, e.g. helm)
// is taken over at once. `runbook.ts unlock` clears a lock held by a machine that is gone for good.
import fs from 'node:fs';
import os from 'node:os';
import { UserError } from '../core/errors.ts';
import { isKubeError, type Kube, type KubeObject } from '../adapters/kube.ts';

export const DEFAULT_LOCK_NAME = 'conduit-deploy-lock';
export const LOCK_REASON_ANNOTATION = 'conduit.dev/lock-reason';
/** Which processes hold the lock: host, pid and start time of the holder and of what it started. */
export const LOCK_PROCESS_ANNOTATION = 'conduit.dev/lock-process';
/** How long a lock stays valid after its last renewal (the holder renews it every third of that). */
export const LEASE_SECONDS = 30;

/** A process on a host: its pid and start time (clock ticks since boot, /proc/PID/stat field 22). */
export interface ProcessRef {
  pid: number;
  start?: string;
}

export interface LockProcesses {
  host: string;
  holder: ProcessRef;
  /** Programs the holder started that may still change things (helm). */
  children: ProcessRef[];
}

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
  /** The processes recorded as holding the lock (default: this process on this host). */
  processes?: LockProcesses;
  /** The registered cluster (values/clusters.yaml) the namespace is in: named in the unlock hint. */
  cluster?: string;
  /**
   * When the holder died on this host but a program it started (helm, winding down and rolling back
   * after its parent died) still runs: wait this long for it to end instead of failing at once.
   */
  waitForOrphansMs?: number;
  /** Told (once) what the lock waits for. */
  onWait?: (message: string) => void;
}

export interface HeldLock {
  namespace: string;
  name: string;
  holder: string;
  durationSeconds: number;
  resourceVersion: string;
  acquiredAt: string;
  expiresAt: string;
  /** The processes recorded as holding it (renewals write them). */
  processes: LockProcesses;
  /** The holder whose lock was taken over, if any, and why. */
  tookOverFrom?: string;
  tookOverBecause?: 'expired' | 'holder-gone';
}

export interface LockState {
  holder?: string;
  reason?: string;
  acquiredAt?: string;
  renewedAt?: string;
  expiresAt?: string;
  expired: boolean;
  /** The holder was on this host and none of its processes is alive any more. */
  holderGone?: boolean;
  free: boolean;
  transitions: number;
  processes?: LockProcesses;
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

/** The start time of a live process (undefined when there is none: gone, or a zombie). Linux /proc; elsewhere only whether it exists. */
export function processStart(pid: number): string | undefined {
  if (process.platform === 'linux') {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return fields[0] === 'Z' || fields[0] === 'X' ? undefined : fields[19];
    } catch {
      return undefined;
    }
  }
  try {
    process.kill(pid, 0);
    return '';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? '' : undefined;
  }
}

export function processRef(pid: number): ProcessRef {
  const start = processStart(pid);
  return start ? { pid, start } : { pid };
}

function alive(p: ProcessRef): boolean {
  const start = processStart(p.pid);
  return start !== undefined && (!p.start || !start || start === p.start);
}

export function parseLockProcesses(value: string | undefined): LockProcesses | undefined {
  if (!value) return undefined;
  try {
    const v = JSON.parse(value) as LockProcesses;
    return typeof v.host === 'string' && typeof v.holder?.pid === 'number' ? { ...v, children: Array.isArray(v.children) ? v.children : [] } : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a holder recorded on this host has no live process left (its lock can be taken over at once). */
export function holderGone(processes: LockProcesses | undefined, host = os.hostname()): boolean {
  if (!processes || processes.host !== host) return false;
  return ![processes.holder, ...processes.children].some(alive);
}

/** What a Lease says about the lock at time `now`. `gone` tells whether a holder on this host has no live process left. */
export function lockState(lease: LeaseObject | undefined, now: Date, gone: (p: LockProcesses | undefined) => boolean = () => false): LockState {
  if (!lease) return { expired: false, free: true, transitions: 0 };
  const s = lease.spec ?? {};
  const holder = s.holderIdentity || undefined;
  const renewed = parseKubeTime(s.renewTime) ?? parseKubeTime(s.acquireTime);
  const duration = s.leaseDurationSeconds ?? 0;
  const expiresAt = renewed ? new Date(renewed.getTime() + duration * 1000) : undefined;
  const expired = Boolean(holder) && (!expiresAt || expiresAt.getTime() <= now.getTime());
  const processes = holder ? parseLockProcesses(lease.metadata.annotations?.[LOCK_PROCESS_ANNOTATION]) : undefined;
  const dead = Boolean(holder) && !expired && gone(processes);
  return {
    holder,
    reason: lease.metadata.annotations?.[LOCK_REASON_ANNOTATION],
    acquiredAt: s.acquireTime,
    renewedAt: s.renewTime,
    expiresAt: expiresAt?.toISOString(),
    expired,
    ...(dead ? { holderGone: true } : {}),
    free: !holder || expired || dead,
    transitions: s.leaseTransitions ?? 0,
    ...(processes ? { processes } : {}),
  };
}

/** The Lease a holder writes to take the lock (pure). */
export function leaseFor(options: LockOptions, now: Date, previous?: LeaseObject): LeaseObject {
  const name = options.name ?? DEFAULT_LOCK_NAME;
  const annotations = { ...(previous?.metadata.annotations ?? {}) };
  if (options.reason) annotations[LOCK_REASON_ANNOTATION] = options.reason;
  else delete annotations[LOCK_REASON_ANNOTATION];
  annotations[LOCK_PROCESS_ANNOTATION] = JSON.stringify(options.processes ?? { host: os.hostname(), holder: processRef(process.pid), children: [] });
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
  const helm = state.processes?.children.length ? `; it still runs pid ${state.processes.children.map((c) => c.pid).join(', ')} (helm)` : '';
  return `${state.holder}${state.reason ? ` (${state.reason})` : ''}${since}, expires in ${left}s unless renewed${helm}`;
}

/** Refused because someone else holds the lock (exit 1, details name the holder). */
export class LockHeldError extends UserError {
  readonly holder: string;
  constructor(namespace: string, name: string, state: LockState, now: Date, cluster?: string) {
    super(`the deploy lock ${namespace}/${name} is held by ${describeHolder(state, now)}`, {
      hint:
        'Nothing was changed. A live holder renews the lock every few seconds: wait until its operation ends, then retry. ' +
        `A holder that died frees it within ${LEASE_SECONDS}s (at once when it ran on this host). A holder on a machine that is gone for good: npx zx scripts/runbook.ts unlock --cluster ${cluster ?? 'NAME'} (check first that nothing runs there).`,
      details: { holder: state.holder, reason: state.reason, expiresAt: state.expiresAt, processes: state.processes },
    });
    this.name = 'LockHeldError';
    this.holder = state.holder ?? '';
    this.orphans = orphansOf(state);
  }
  /** Programs the dead holder started that still run on this host (they end by themselves). */
  readonly orphans: ProcessRef[];
}

function orphansOf(state: LockState): ProcessRef[] {
  const p = state.processes;
  if (!p || p.host !== os.hostname() || alive(p.holder)) return [];
  return p.children.filter(alive);
}

function held(lease: LeaseObject, options: LockOptions, tookOver?: LockState): HeldLock {
  const s = lockState(lease, new Date(0));
  return {
    namespace: options.namespace,
    name: options.name ?? DEFAULT_LOCK_NAME,
    holder: options.holder,
    durationSeconds: lease.spec.leaseDurationSeconds ?? options.durationSeconds,
    resourceVersion: lease.metadata.resourceVersion ?? '',
    acquiredAt: lease.spec.acquireTime ?? '',
    expiresAt: s.expiresAt ?? '',
    processes: s.processes ?? { host: os.hostname(), holder: processRef(process.pid), children: [] },
    ...(tookOver?.holder ? { tookOverFrom: tookOver.holder, tookOverBecause: tookOver.holderGone ? 'holder-gone' : 'expired' } : {}),
  };
}

/** Read the lock's current state (undefined Lease = free); a holder on this host with no live process counts as gone. */
export async function readLock(kube: Kube, namespace: string, name = DEFAULT_LOCK_NAME, now = new Date()): Promise<LockState> {
  return lockState(await kube.get<LeaseObject>('leases.coordination.k8s.io', name, { namespace }), now, (p) => holderGone(p));
}

/**
 * Take the lock or fail fast naming the holder. A lock whose holder did not renew it within its
 * duration, or whose holder ran on this host and has no live process left, is taken over; a lock this
 * same holder already holds is renewed.
 */
export async function acquireLock(kube: Kube, options: LockOptions): Promise<HeldLock> {
  const deadline = Date.now() + (options.waitForOrphansMs ?? 0);
  let told = false;
  for (;;) {
    try {
      return await takeLock(kube, options);
    } catch (e) {
      if (!(e instanceof LockHeldError) || !e.orphans.length || Date.now() >= deadline) throw e;
      if (!told) options.onWait?.(`the deploy that held the lock (${e.holder}) is gone; waiting for what it started to end (pid ${e.orphans.map((o) => o.pid).join(', ')})`);
      told = true;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function takeLock(kube: Kube, options: LockOptions): Promise<HeldLock> {
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
    const state = lockState(current, now(), (p) => holderGone(p));
    if (!state.free && state.holder !== options.holder) throw new LockHeldError(options.namespace, name, state, now(), options.cluster);
    try {
      const replaced = await kube.replace(leaseFor(options, now(), current), { namespace: options.namespace });
      return held(replaced, options, (state.expired || state.holderGone) && state.holder !== options.holder ? state : undefined);
    } catch (e) {
      if (isKubeError(e, 'Conflict')) continue;
      throw e;
    }
  }
  const state = await readLock(kube, options.namespace, name, now());
  if (!state.free) throw new LockHeldError(options.namespace, name, state, now(), options.cluster);
  throw new UserError(`could not take the deploy lock ${options.namespace}/${name}: it kept changing while being taken`, {
    hint: 'Another process is taking and releasing it in a loop; retry in a moment.',
  });
}

/** Extend a held lock (recording its processes). Fails (naming the new holder) if it was lost, e.g. after expiring. */
export async function renewLock(kube: Kube, lock: HeldLock, now = new Date()): Promise<HeldLock> {
  const current = await kube.get<LeaseObject>('leases.coordination.k8s.io', lock.name, { namespace: lock.namespace });
  const state = lockState(current, now);
  if (!current || current.spec?.holderIdentity !== lock.holder) {
    throw new LockHeldError(lock.namespace, lock.name, { ...state, holder: state.holder ?? '(nobody)' }, now);
  }
  const next = structuredClone(current);
  next.spec.renewTime = formatMicroTime(now);
  next.spec.leaseDurationSeconds = lock.durationSeconds;
  next.metadata.annotations = { ...next.metadata.annotations, [LOCK_PROCESS_ANNOTATION]: JSON.stringify(lock.processes) };
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

function cleared(current: LeaseObject): LeaseObject {
  const next = structuredClone(current);
  delete next.spec.holderIdentity;
  delete next.spec.renewTime;
  delete next.spec.acquireTime;
  if (next.metadata.annotations) {
    delete next.metadata.annotations[LOCK_REASON_ANNOTATION];
    delete next.metadata.annotations[LOCK_PROCESS_ANNOTATION];
  }
  return next;
}

/**
 * Give the lock back: the holder is cleared (resourceVersion-guarded, so a lock that someone else
 * took over after it expired is left alone). Returns false when it was no longer ours.
 */
export async function releaseLock(kube: Kube, lock: HeldLock): Promise<boolean> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const current = await kube.get<LeaseObject>('leases.coordination.k8s.io', lock.name, { namespace: lock.namespace });
    if (!current || current.spec?.holderIdentity !== lock.holder) return false;
    try {
      await kube.replace(cleared(current), { namespace: lock.namespace });
      return true;
    } catch (e) {
      if (!isKubeError(e, 'Conflict')) throw e;
    }
  }
  return false;
}

/**
 * Clear a lock whoever holds it (runbook.ts unlock): guarded by the resourceVersion of the state the
 * operator saw, so a lock that changed hands meanwhile is left alone (Conflict). Returns the state
 * it cleared, or undefined when the lock was free.
 */
export async function forceUnlock(kube: Kube, namespace: string, name = DEFAULT_LOCK_NAME, seen?: string): Promise<LockState | undefined> {
  const current = await kube.get<LeaseObject>('leases.coordination.k8s.io', name, { namespace });
  const state = lockState(current, new Date(), (p) => holderGone(p));
  if (!current || !state.holder) return undefined;
  if (seen !== undefined && current.metadata.resourceVersion !== seen) {
    throw new UserError(`the deploy lock ${namespace}/${name} changed since it was read (now held by ${state.holder}); nothing was changed`, { hint: 'Run unlock again to see who holds it now.' });
  }
  await kube.replace(cleared(current), { namespace });
  return state;
}

/** What the work under a lock can tell it: programs it starts are recorded as holding the lock too. */
export interface LockKeeper {
  /** Record a started program (e.g. helm): the lock is not taken over at once while it still runs. */
  track(pid: number): void;
}

/**
 * Keep a taken lock while `fn` runs: renewed at a third of its duration, released afterwards (also
 * when `fn` throws). A renewal that fails on the way (the API server briefly away) is retried at the
 * next tick; if a renewal finds the lock taken by someone else, the result of `fn` is replaced by that error.
 */
export async function keepLock<T>(kube: Kube, taken: HeldLock, fn: (lock: HeldLock, keeper: LockKeeper) => Promise<T>): Promise<T> {
  let lock = taken;
  let lost: Error | undefined;
  let renewing: Promise<void> | undefined;
  let again = false;
  const renew = (): void => {
    if (lost) return;
    if (renewing) return void (again = true);
    renewing = renewLock(kube, lock)
      .then(
        (l) => void (lock = { ...l, processes: lock.processes }),
        (e: Error) => void (e instanceof LockHeldError ? (lost = e) : undefined),
      )
      .finally(() => {
        renewing = undefined;
        if (again) ((again = false), renew());
      });
  };
  const timer = setInterval(renew, Math.max(1000, (taken.durationSeconds * 1000) / 3));
  timer.unref();
  const keeper: LockKeeper = {
    track(pid) {
      lock = { ...lock, processes: { ...lock.processes, children: [...lock.processes.children, processRef(pid)] } };
      renew();
    },
  };
  try {
    const result = await fn(lock, keeper);
    if (lost) throw lost;
    return result;
  } finally {
    clearInterval(timer);
    again = false;
    await renewing;
    await releaseLock(kube, lock).catch(() => false);
  }
}

/** Take the lock (failing fast when held), keep it while `fn` runs, release it afterwards. */
export async function holdLock<T>(kube: Kube, options: LockOptions, fn: (lock: HeldLock, keeper: LockKeeper) => Promise<T>): Promise<T> {
  return keepLock(kube, await acquireLock(kube, options), fn);
}
