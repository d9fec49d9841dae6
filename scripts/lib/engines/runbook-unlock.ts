// runbook.ts unlock: clear the deploy lock of a holder that is gone for good (a CI runner or a
// laptop that vanished on another machine). A live holder renews its lock every few seconds and
// one that died on this host is taken over by the next deploy at once, so unlock is for the rest.
// It refuses to clear a lock whose holder still runs on this host, clears only the lock state it
// showed (resourceVersion-guarded), and records whom the lock was taken from in the audit trail.
import os from 'node:os';
import { UserError } from '../core/errors.ts';
import type { Kube } from '../adapters/kube.ts';
import { appendAudit } from '../domain/audit.ts';
import { defaultHolderIdentity, DEFAULT_LOCK_NAME, forceUnlock, holderGone, lockState, type LeaseObject, type LockState } from '../domain/lease.ts';
import type { DeployTarget } from '../domain/target.ts';

/** Where the lock is, and who clears it (a RunbookContext fits). */
export interface UnlockContext {
  target: DeployTarget;
  kube: Kube;
  actor?: string;
}

export interface UnlockOutcome {
  action: 'unlock';
  cleared: boolean;
  summary: string;
  /** The lock as it was before it was cleared. */
  previous?: Pick<LockState, 'holder' | 'reason' | 'acquiredAt' | 'renewedAt' | 'expiresAt' | 'expired' | 'holderGone' | 'processes'>;
  warnings: string[];
}

function liveOnThisHost(state: LockState): boolean {
  return state.processes?.host === os.hostname() && !state.holderGone && !state.expired;
}

export async function executeUnlock(ctx: UnlockContext, now = new Date()): Promise<UnlockOutcome> {
  const started = performance.now();
  const t = ctx.target;
  const lease = await ctx.kube.get<LeaseObject>('leases.coordination.k8s.io', DEFAULT_LOCK_NAME, { namespace: t.namespace });
  const state = lockState(lease, now, (p) => holderGone(p));
  if (!lease || !state.holder) {
    return { action: 'unlock', cleared: false, summary: `the deploy lock ${t.namespace}/${DEFAULT_LOCK_NAME} is free: nothing to clear`, warnings: [] };
  }
  if (liveOnThisHost(state)) {
    const pids = [state.processes!.holder, ...state.processes!.children].map((p) => p.pid).join(', ');
    throw new UserError(
      `the deploy lock ${t.namespace}/${DEFAULT_LOCK_NAME} is held by ${state.holder}${state.reason ? ` (${state.reason})` : ''}, which still runs on this host (pid ${pids}); nothing was changed`,
      {
        hint: 'Let it finish, or stop it (Ctrl-C / kill -TERM): it rolls back what it started and frees the lock itself.',
      },
    );
  }
  const cleared = await forceUnlock(ctx.kube, t.namespace, DEFAULT_LOCK_NAME, lease.metadata.resourceVersion);
  const previous = {
    holder: state.holder,
    reason: state.reason,
    acquiredAt: state.acquiredAt,
    renewedAt: state.renewedAt,
    expiresAt: state.expiresAt,
    expired: state.expired,
    ...(state.holderGone ? { holderGone: true } : {}),
    ...(state.processes ? { processes: state.processes } : {}),
  };
  const warnings =
    state.expired || state.holderGone
      ? []
      : [
          `the lock was still valid (renewed ${state.renewedAt ?? '?'}, until ${state.expiresAt ?? '?'}): if its holder still runs somewhere, it finds the lock gone at its next renewal and fails; check its release with runbook.ts status`,
        ];
  const summary = `cleared the deploy lock ${t.namespace}/${DEFAULT_LOCK_NAME}, held by ${state.holder}${state.reason ? ` (${state.reason})` : ''}`;
  await appendAudit(ctx.kube, {
    time: new Date().toISOString(),
    actor: ctx.actor ?? defaultHolderIdentity(),
    action: 'unlock',
    result: 'unlocked',
    cluster: t.cluster,
    namespace: t.namespace,
    release: t.release,
    summary,
    durationMs: Math.round(performance.now() - started),
    details: { previous },
  });
  return { action: 'unlock', cleared: Boolean(cleared), summary, previous, warnings };
}
