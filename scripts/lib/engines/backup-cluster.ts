// The cluster variant of a restore: the database is restored while nothing writes to it. The API and
// Admin Deployments of the release are scaled to zero (their recorded replica counts are put back
// afterwards, also when the restore fails), the deploy Lease is held the whole time so no deploy or
// runbook change runs in between, and the restore is recorded in the cluster's audit trail.
//
// Autoscaling: an HPA cannot go below one replica and would scale a Deployment straight back up.
// A restore therefore refuses when an HPA targets api or admin, unless the operator passes
// --pause-autoscaling: then each such HPA is saved (its spec, labels and annotations), deleted for the
// duration, and created again from the saved copy afterwards.
//
// Crash-safety: before anything is scaled or deleted, each writer Deployment gets an annotation
// (RESTORE_SAVED_ANNOTATION) holding its replica count and its HPA's saved copy. A restore killed
// half-way (SIGKILL, a vanished runner) leaves them in the cluster: the next `restore --cluster`
// brings back those saved counts and HPAs rather than the zeros it finds, and the annotation goes
// once everything is back.
import { appendAudit, type AuditResult } from '../domain/audit.ts';
import { restoreBackup, type BackupInfo, type RestoreHooks, type RestoreResult } from './backup.ts';
import { UserError } from '../core/errors.ts';
import type { Kube, KubeObject } from '../adapters/kube.ts';
import { defaultHolderIdentity, DEFAULT_LOCK_NAME, holdLock, LEASE_SECONDS } from '../domain/lease.ts';
import { describeConnection, type PgConnection } from '../adapters/pg.ts';
import { redact } from '../core/redact.ts';
import { componentSelector, resourceName, type DeployTarget as RunbookTarget } from '../domain/target.ts';
import type { BackupStorage } from '../adapters/storage.ts';

/** The components that write to the database and are stopped during a restore. */
export const WRITERS = ['api', 'admin'] as const;
export type Writer = (typeof WRITERS)[number];

type Hpa = KubeObject & { spec?: { scaleTargetRef?: { kind?: string; name?: string }; minReplicas?: number; maxReplicas?: number } };
type Deployment = KubeObject & { spec?: { replicas?: number } };

/** On a writer Deployment while a restore runs: its replica count and HPA from before (JSON). */
export const RESTORE_SAVED_ANNOTATION = 'conduit.dev/restore-saved';

interface SavedWriter {
  replicas: number;
  hpa?: Hpa;
}

export interface WorkloadState {
  deployments: { component: Writer; name: string; replicas: number }[];
  /** `deleted`: gone already, deleted by an interrupted restore (its saved copy is created again afterwards). */
  hpas: { component: Writer; name: string; min: number; max: number; saved: Hpa; deleted?: boolean }[];
  /** What an interrupted restore left (scaled to 0, HPAs deleted), taken from the saved annotations. */
  resumed: string[];
}

function savedOf(d: Deployment): SavedWriter | undefined {
  const raw = d.metadata.annotations?.[RESTORE_SAVED_ANNOTATION];
  if (!raw || d.spec?.replicas !== 0) return undefined;
  try {
    const v = JSON.parse(raw) as SavedWriter;
    return Number.isInteger(v.replicas) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The replica counts and HPAs of the release's writers, as they are now (read only). */
export async function readWorkload(kube: Kube, t: RunbookTarget): Promise<WorkloadState> {
  const deployments: WorkloadState['deployments'] = [];
  const savedHpas: WorkloadState['hpas'] = [];
  const resumed: string[] = [];
  for (const c of WRITERS) {
    const d = await kube.get<Deployment>('deployment', resourceName(t.release, c), { namespace: t.namespace });
    if (!d) continue;
    const saved = savedOf(d);
    deployments.push({ component: c, name: d.metadata.name, replicas: saved ? saved.replicas : (d.spec?.replicas ?? 1) });
    if (saved) resumed.push(`deployment/${d.metadata.name} was left at 0 by an interrupted restore: it goes back to its saved ${saved.replicas}`);
    if (saved?.hpa) {
      const h = saved.hpa;
      savedHpas.push({ component: c, name: h.metadata.name, min: h.spec?.minReplicas ?? 1, max: h.spec?.maxReplicas ?? 1, saved: h, deleted: true });
    }
  }
  if (!deployments.length) {
    throw new UserError(`release ${t.release} in namespace ${t.namespace} (context ${t.context}) has no api or admin Deployment`, {
      hint: `Check the registry entry of ${t.cluster} (namespace, release) and the release: npx zx scripts/runbook.ts status --cluster ${t.cluster}`,
    });
  }
  const hpas: WorkloadState['hpas'] = [];
  for (const h of await kube.list<Hpa>('hpa', { namespace: t.namespace })) {
    const dep = deployments.find((d) => h.spec?.scaleTargetRef?.name === d.name && (h.spec?.scaleTargetRef?.kind ?? 'Deployment') === 'Deployment');
    if (dep) hpas.push({ component: dep.component, name: h.metadata.name, min: h.spec?.minReplicas ?? 1, max: h.spec?.maxReplicas ?? 1, saved: h });
  }
  for (const h of savedHpas) {
    if (hpas.some((x) => x.name === h.name)) continue;
    hpas.push(h);
    resumed.push(`HorizontalPodAutoscaler/${h.name} was deleted by an interrupted restore: it is created again from its saved copy`);
  }
  return { deployments, hpas, resumed };
}

export interface ClusterRestorePlan {
  target: RunbookTarget;
  workload: WorkloadState;
  lock: { namespace: string; name: string };
  /** Steps before pg_restore (after the checksum and target checks). */
  before: string[];
  /** Steps after pg_restore, run also when it fails. */
  after: string[];
}

/** The plan of the workload side (pure). Refuses autoscaled writers without pauseAutoscaling. */
export function planClusterRestore(t: RunbookTarget, w: WorkloadState, options: { pauseAutoscaling: boolean }): ClusterRestorePlan {
  const live = w.hpas.filter((h) => !h.deleted);
  if (live.length && !options.pauseAutoscaling) {
    throw new UserError(
      `${live.map((h) => `HorizontalPodAutoscaler/${h.name} (min ${h.min}, max ${h.max})`).join(' and ')} would scale ${live.map((h) => h.component).join(' and ')} back up during the restore`,
      {
        hint: 'Pass --pause-autoscaling: the HPA is saved, deleted while the database is restored, and created again from the saved copy afterwards (also when the restore fails). Nothing was changed.',
        details: { hpas: live.map((h) => ({ name: h.name, component: h.component, min: h.min, max: h.max })) },
      },
    );
  }
  const counts = w.deployments.map((d) => `${d.component} ${d.replicas}`).join(', ');
  return {
    target: t,
    workload: w,
    lock: { namespace: t.namespace, name: DEFAULT_LOCK_NAME },
    before: [
      ...w.resumed.map((r) => `resume: ${r}`),
      `save the replica counts (and HPA copies) in the annotation ${RESTORE_SAVED_ANNOTATION} of each Deployment, so an interrupted restore can be resumed`,
      ...live.map((h) => `save and delete HorizontalPodAutoscaler/${h.name} (min ${h.min}, max ${h.max}) so it cannot scale ${h.component} up`),
      `scale ${w.deployments.map((d) => `deployment/${d.name}`).join(' and ')} to 0 (now: ${counts}) and wait until their pods are gone`,
    ],
    after: [
      `also if the restore fails: scale back to the recorded counts (${counts})`,
      ...w.hpas.map((h) => `also if the restore fails: create HorizontalPodAutoscaler/${h.name} again from the saved copy (min ${h.min}, max ${h.max})`),
      `wait for the rollout of ${w.deployments.map((d) => d.name).join(' and ')}`,
      `record the restore in the audit trail (ConfigMap conduit-audit in ${t.namespace})`,
    ],
  };
}

/** The plan as text lines (the lock first, the restore's own steps in the middle). */
export function describeClusterRestore(p: ClusterRestorePlan, restoreSteps: string[]): string[] {
  const t = p.target;
  return [
    `on ${t.cluster} (context ${t.context}, namespace ${t.namespace}, release ${t.release})${t.protected ? ' [protected]' : ''}:`,
    `hold the deploy lock ${p.lock.name} for the whole restore (a concurrent deploy or runbook change fails fast)`,
    ...restoreSteps,
    ...p.after,
  ];
}

async function podsOf(kube: Kube, t: RunbookTarget, c: Writer): Promise<number> {
  return (await kube.list('pods', { namespace: t.namespace, selector: componentSelector(t.release, c) })).length;
}

/** A copy of a live object fit for `create` (no server-set fields). */
function recreatable(h: Hpa): Hpa {
  const m = h.metadata;
  return {
    apiVersion: h.apiVersion,
    kind: h.kind,
    metadata: { name: m.name, namespace: m.namespace, ...(m.labels ? { labels: m.labels } : {}), ...(m.annotations ? { annotations: m.annotations } : {}) },
    spec: h.spec,
  } as Hpa;
}

export interface ClusterHooks extends RestoreHooks {
  /** What was done, in order, with times (for the audit entry and --json). */
  readonly log: { at: string; step: string }[];
}

/** The hooks restoreBackup calls around pg_restore. after() is idempotent and puts back whatever before() changed. */
export function clusterRestoreHooks(kube: Kube, p: ClusterRestorePlan, options: { timeoutSeconds: number; progress?: (note: string) => void }): ClusterHooks {
  const t = p.target;
  const ns = t.namespace;
  const log: { at: string; step: string }[] = [];
  const note = (step: string) => {
    log.push({ at: new Date().toISOString(), step });
    options.progress?.(step);
  };
  const deletedHpas: Hpa[] = [];
  return {
    log,
    describe: () => p.before,
    async before() {
      for (const d of p.workload.deployments) {
        const hpa = p.workload.hpas.find((h) => h.component === d.component);
        const saved: SavedWriter = { replicas: d.replicas, ...(hpa ? { hpa: recreatable(hpa.saved) } : {}) };
        await kube.patch('deployment', d.name, { metadata: { annotations: { [RESTORE_SAVED_ANNOTATION]: JSON.stringify(saved) } } }, { namespace: ns });
      }
      note(`saved the replica counts${p.workload.hpas.length ? ' and HPA copies' : ''} in ${RESTORE_SAVED_ANNOTATION}`);
      for (const h of p.workload.hpas) {
        deletedHpas.push(h.saved);
        if (h.deleted) continue;
        await kube.delete('hpa', h.name, { namespace: ns, wait: true });
        note(`deleted HorizontalPodAutoscaler/${h.name} (saved: min ${h.min}, max ${h.max})`);
      }
      for (const d of p.workload.deployments) {
        await kube.patch('deployment', d.name, { spec: { replicas: 0 } }, { namespace: ns });
        note(`scaled deployment/${d.name} from ${d.replicas} to 0`);
      }
      const deadline = Date.now() + options.timeoutSeconds * 1000;
      for (const d of p.workload.deployments) {
        let left = await podsOf(kube, t, d.component);
        while (left > 0) {
          if (Date.now() > deadline) {
            throw new UserError(`${left} pod(s) of ${d.component} were still there ${options.timeoutSeconds}s after scaling to 0; the database was not touched`, {
              hint: `Look at the pods: kubectl --context ${t.context} -n ${ns} get pods -l ${componentSelector(t.release, d.component)}`,
            });
          }
          await new Promise((r) => setTimeout(r, 500));
          left = await podsOf(kube, t, d.component);
        }
        note(`no pod of ${d.component} left`);
      }
    },
    async after(outcome) {
      const problems: string[] = [];
      for (const d of p.workload.deployments) {
        try {
          await kube.patch('deployment', d.name, { spec: { replicas: d.replicas } }, { namespace: ns });
          note(`scaled deployment/${d.name} back to ${d.replicas}`);
        } catch (e) {
          problems.push(`scale deployment/${d.name} to ${d.replicas}: ${redact((e as Error).message)}`);
        }
      }
      for (const h of deletedHpas) {
        try {
          if (!(await kube.get('hpa', h.metadata.name, { namespace: ns }))) await kube.create(recreatable(h), { namespace: ns });
          note(`created HorizontalPodAutoscaler/${h.metadata.name} again`);
        } catch (e) {
          problems.push(`create HorizontalPodAutoscaler/${h.metadata.name}: ${redact((e as Error).message)}`);
        }
      }
      for (const d of p.workload.deployments) {
        try {
          await kube.rolloutStatus(`deployment/${d.name}`, { namespace: ns, timeoutSeconds: options.timeoutSeconds });
          note(`rollout of ${d.name} finished`);
        } catch (e) {
          problems.push(`rollout of ${d.name}: ${redact((e as Error).message.split('\n').slice(-1)[0] ?? '')}`);
        }
      }
      if (!problems.length) {
        for (const d of p.workload.deployments) await kube.patch('deployment', d.name, { metadata: { annotations: { [RESTORE_SAVED_ANNOTATION]: null } } }, { namespace: ns });
        note(`removed ${RESTORE_SAVED_ANNOTATION}`);
      }
      if (problems.length) {
        const restore = outcome.ok ? 'The database was restored' : `The restore itself failed too (${redact((outcome.error as Error)?.message ?? String(outcome.error)).split('\n')[0]})`;
        throw new UserError(`bringing the application back after the restore failed: ${problems.join('; ')}. ${restore}.`, {
          hint: [
            'Put the recorded counts back by hand:',
            ...p.workload.deployments.map((d) => `  kubectl --context ${t.context} -n ${ns} scale deployment/${d.name} --replicas=${d.replicas}`),
            ...(deletedHpas.length ? ['and re-create the HPAs with a deploy: npx zx scripts/deploy.ts --cluster ' + t.cluster] : []),
          ].join('\n'),
        });
      }
    },
  };
}

export interface ClusterRestoreOutcome {
  result: RestoreResult;
  steps: { at: string; step: string }[];
}

/**
 * Restore a backup with the cluster's writers stopped: deploy Lease held throughout, audit entry
 * whatever the outcome (never a secret: the target is described without password).
 */
export async function runClusterRestore(o: {
  kube: Kube;
  plan: ClusterRestorePlan;
  storage: BackupStorage;
  backup: BackupInfo;
  target: PgConnection;
  clean: boolean;
  timeoutSeconds: number;
  actor?: string;
  progress?: (note: string) => void;
}): Promise<ClusterRestoreOutcome> {
  const t = o.plan.target;
  const started = performance.now();
  const actor = o.actor ?? defaultHolderIdentity();
  const hooks = clusterRestoreHooks(o.kube, o.plan, { timeoutSeconds: o.timeoutSeconds, progress: o.progress });
  const details = () => ({
    backup: o.backup.id,
    database: describeConnection(o.target),
    clean: o.clean,
    replicas: Object.fromEntries(o.plan.workload.deployments.map((d) => [d.component, d.replicas])),
    hpas: o.plan.workload.hpas.map((h) => ({ name: h.name, min: h.min, max: h.max })),
    steps: hooks.log,
  });
  const audit = (result: AuditResult, summary: string) =>
    appendAudit(o.kube, {
      time: new Date().toISOString(),
      actor,
      action: 'restore',
      result,
      cluster: t.cluster,
      namespace: t.namespace,
      release: t.release,
      summary,
      durationMs: Math.round(performance.now() - started),
      details: details(),
    });
  try {
    const result = await holdLock(
      o.kube,
      { namespace: t.namespace, cluster: t.cluster, holder: actor, durationSeconds: LEASE_SECONDS, reason: `restore of backup ${o.backup.id} into ${describeConnection(o.target)}` },
      () => restoreBackup({ storage: o.storage, backup: o.backup, target: o.target, clean: o.clean, hooks, progress: o.progress }),
    );
    await audit(result.passed ? 'succeeded' : 'failed', `restored backup ${o.backup.id} into ${describeConnection(o.target)}${result.passed ? '' : ' (tables differ from the backup)'}`);
    return { result, steps: hooks.log };
  } catch (e) {
    const refused = (e as Error).name === 'LockHeldError';
    await audit(refused ? 'refused' : 'failed', redact((e as Error).message).slice(0, 500)).catch(() => undefined);
    throw e;
  }
}
