// Incident actions on a deployed release (status, history, rollback, restart, scale, logs,
// rotate-master-key, diagnose). Each action is first a typed plan: the helm/kubectl argv it runs and
// the patches it applies, whether it changes anything, whether it holds the deploy lock. Tests assert
// on plans without a cluster, `--dry-run` prints them, and execute*() carry them out.
// Nothing here prints a secret: Secret values of the release are registered with redact() before any
// logs or values are read, values files are masked, and the new master key never leaves memory
// except on kubectl's stdin.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { appendAudit, maskSecretValues, readAudit, type AuditResult, type StoredAuditEntry } from '../domain/audit.ts';
import { durationSeconds } from '../core/duration.ts';
import { UserError, usageError } from '../core/errors.ts';
import { formatArgv, run } from '../core/exec.ts';
import { Helm, type HelmScope } from '../adapters/helm.ts';
import { isKubeError, type Kube, type KubeEvent, type KubeObject } from '../adapters/kube.ts';
import { defaultHolderIdentity, DEFAULT_LOCK_NAME, holdLock, LEASE_SECONDS, readLock, type LockState } from '../domain/lease.ts';
import { redact, registerSecret } from '../core/redact.ts';
import { componentSelector, resourceName, type DeployTarget } from '../domain/target.ts';

export const ACTIONS = ['status', 'history', 'rollback', 'restart', 'scale', 'logs', 'rotate-master-key', 'diagnose', 'unlock'] as const;
export type Action = (typeof ACTIONS)[number];
export const COMPONENTS = ['api', 'admin', 'webui'] as const;
export type Component = (typeof COMPONENTS)[number];

/** Actions that change the cluster: confirmation on protected clusters, the deploy lock, an audit entry. */
export const MUTATING: ReadonlySet<Action> = new Set(['rollback', 'restart', 'scale', 'rotate-master-key', 'unlock']);

/** The pod-template annotation of a rolling restart (the one `kubectl rollout restart` sets). */
export const RESTART_ANNOTATION = 'kubectl.kubernetes.io/restartedAt';
/** The pod-template annotation naming the master-key Secret's resourceVersion the pods were started with. */
export const MASTER_KEY_ANNOTATION = 'conduit.dev/master-key-version';
export const MASTER_KEY_LENGTH = 48;

/** Where an action runs: the same shape as a deploy's target. */
export type RunbookTarget = DeployTarget;

/** The flags of runbook.ts, as parsed (strings; checked by parseRequest). */
export interface RunbookFlags {
  component?: string;
  replicas?: string;
  'hpa-min'?: string;
  'hpa-max'?: string;
  to?: string;
  since?: string;
  tail?: string;
  max?: string;
  out?: string;
  timeout?: string;
}

export type RunbookRequest =
  | { action: 'status' }
  | { action: 'history'; max: number }
  | { action: 'rollback'; toRevision?: number; timeout: string }
  | { action: 'restart'; components: Component[]; timeout: string }
  | { action: 'scale'; component: Component; replicas?: number; hpaMin?: number; hpaMax?: number; timeout: string }
  | { action: 'logs'; components: Component[]; sinceSeconds?: number; tail: number }
  | { action: 'rotate-master-key'; timeout: string }
  | { action: 'diagnose'; out?: string }
  | { action: 'unlock' };

function positiveInt(flag: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min) throw usageError(`--${flag} must be a whole number >= ${min} (got "${value}")`);
  return Number(value);
}

function component(value: string | undefined, allowAll: boolean): Component[] {
  if (value === undefined) throw usageError('--component is required', `Use --component ${COMPONENTS.join('|')}${allowAll ? '|all' : ''}.`);
  if (allowAll && value === 'all') return [...COMPONENTS];
  if (!(COMPONENTS as readonly string[]).includes(value)) throw usageError(`unknown component "${value}"`, `Use --component ${COMPONENTS.join('|')}${allowAll ? '|all' : ''}.`);
  return [value as Component];
}

/** Which flags each action accepts (others are a usage error, so a typo never goes unnoticed). */
const ACCEPTS: Record<Action, (keyof RunbookFlags)[]> = {
  status: [],
  history: ['max'],
  rollback: ['to', 'timeout'],
  restart: ['component', 'timeout'],
  scale: ['component', 'replicas', 'hpa-min', 'hpa-max', 'timeout'],
  logs: ['component', 'since', 'tail'],
  'rotate-master-key': ['timeout'],
  diagnose: ['out'],
  unlock: [],
};

/** Check the action and its flags into a typed request (pure; usage errors exit 2). */
export function parseRequest(action: string | undefined, flags: RunbookFlags): RunbookRequest {
  if (!action) throw usageError('an action is required', `Use one of: ${ACTIONS.join(', ')} (see --help).`);
  if (!(ACTIONS as readonly string[]).includes(action)) throw usageError(`unknown action "${action}"`, `Use one of: ${ACTIONS.join(', ')}.`);
  const a = action as Action;
  const extra = (Object.keys(flags) as (keyof RunbookFlags)[]).filter((k) => flags[k] !== undefined && !ACCEPTS[a].includes(k));
  if (extra.length) throw usageError(`${a} does not take ${extra.map((k) => `--${k}`).join(', ')}`, `${a} accepts: ${ACCEPTS[a].map((k) => `--${k}`).join(', ') || 'no action flags'}.`);
  const timeout = flags.timeout ?? '5m';
  if (ACCEPTS[a].includes('timeout')) durationSeconds(timeout);
  switch (a) {
    case 'status':
    case 'unlock':
      return { action: a };
    case 'history':
      return { action: a, max: positiveInt('max', flags.max) ?? 10 };
    case 'rollback':
      return { action: a, toRevision: positiveInt('to', flags.to), timeout };
    case 'restart':
      return { action: a, components: component(flags.component, true), timeout };
    case 'scale': {
      const [c] = component(flags.component, false);
      const replicas = positiveInt('replicas', flags.replicas, 0);
      const hpaMin = positiveInt('hpa-min', flags['hpa-min']);
      const hpaMax = positiveInt('hpa-max', flags['hpa-max']);
      if ((hpaMin === undefined) !== (hpaMax === undefined)) throw usageError('--hpa-min and --hpa-max go together', 'Give both bounds, e.g. --hpa-min 3 --hpa-max 10.');
      if (hpaMin !== undefined && hpaMax !== undefined && hpaMin > hpaMax) throw usageError(`--hpa-min ${hpaMin} is above --hpa-max ${hpaMax}`);
      if (replicas === undefined && hpaMin === undefined) throw usageError('scale needs --replicas N (or --hpa-min N --hpa-max M for an autoscaled component)');
      if (replicas !== undefined && hpaMin !== undefined)
        throw usageError('use either --replicas or --hpa-min/--hpa-max, not both', 'A component with an HPA takes bounds; one without takes --replicas.');
      return { action: a, component: c, replicas, hpaMin, hpaMax, timeout };
    }
    case 'logs':
      return {
        action: a,
        components: component(flags.component ?? 'all', true),
        sinceSeconds: flags.since === undefined ? undefined : durationSeconds(flags.since),
        tail: positiveInt('tail', flags.tail) ?? 200,
      };
    case 'rotate-master-key':
      return { action: a, timeout };
    case 'diagnose':
      return { action: a, out: flags.out };
  }
}

/** What the live cluster says, as far as a plan depends on it (read before planning). */
export interface LiveFacts {
  /** HPA bounds per component that has one. */
  hpas?: Partial<Record<Component, { name: string; min: number; max: number }>>;
  /** masterKey.existingSecret of the release's values ('' when the chart owns the Secret). */
  masterKeyExistingSecret?: string;
  masterKeySecretKey?: string;
  /** Components the release runs (enabled). */
  components?: Component[];
  /** rollback without --to: the newest revision before the current one that was deployed (superseded or deployed; never a failed one). */
  lastGoodRevision?: number;
}

export interface PlanStep {
  /** What the step does, one line. */
  title: string;
  /** Whether it changes the cluster. */
  mutates: boolean;
  tool?: 'helm' | 'kubectl';
  /** The arguments (without the global context/namespace flags), when it is one call. */
  argv?: string[];
  /** The object and patch it applies, when it patches. */
  patch?: { kind: string; name: string; body: unknown };
}

export interface RunbookPlan {
  action: Action;
  target: RunbookTarget;
  request: RunbookRequest;
  mutates: boolean;
  /** The deploy Lease held while the steps run (mutating actions). */
  lock?: { namespace: string; name: string };
  steps: PlanStep[];
  /** Things the operator must know (e.g. a later deploy reverts this). */
  notes: string[];
}

const NOW_PLACEHOLDER = '<now>';

/**
 * The client plans are built with when the caller gives none: plans hold argv only (without the target
 * flags, which execution and describeRunbookPlan add), so the binary is never run from here.
 */
const PLAN_HELM = new Helm('helm', 4);

/** Where a target's helm commands act. */
export function helmScopeOf(t: RunbookTarget): HelmScope {
  return { context: t.context, kubeconfig: t.kubeconfig, namespace: t.namespace };
}

function restartPatch(value: string): object {
  return { spec: { template: { metadata: { annotations: { [RESTART_ANNOTATION]: value } } } } };
}

function rolloutStep(t: RunbookTarget, c: Component, timeout: string): PlanStep {
  return {
    title: `wait for the rollout of deployment/${resourceName(t.release, c)}`,
    mutates: false,
    tool: 'kubectl',
    argv: ['rollout', 'status', `deployment/${resourceName(t.release, c)}`, `--timeout=${durationSeconds(timeout)}s`],
  };
}

const REVERT_NOTE = 'This is a manual change: a later deploy (npx zx scripts/deploy.ts) or rollback applies the values again and reverts it. Make it permanent in values/ if it should stay.';

function lockStep(): PlanStep {
  return { title: `take the deploy lock ${DEFAULT_LOCK_NAME}`, mutates: true };
}

/** What one action plans: its steps and what the operator must know. */
type Planned = Pick<RunbookPlan, 'steps' | 'notes'>;
/** One action's request with the facts and the client its plan is built from. */
interface PlanInput<A extends Action> {
  t: RunbookTarget;
  req: Extract<RunbookRequest, { action: A }>;
  facts: LiveFacts;
  helm: Helm;
}

/** The components of `cs` the release runs (all of them when the facts do not say). */
function enabledIn(facts: LiveFacts, cs: Component[]): Component[] {
  return cs.filter((c) => !facts.components || facts.components.includes(c));
}

/**
 * Build the plan of a request (pure: everything live comes in `facts`). `helm` builds the helm argv
 * (its major decides the Helm 3/4 differences); its scope, if any, is left out of the plan's argv.
 */
export function planAction(target: RunbookTarget, req: RunbookRequest, facts: LiveFacts = {}, helm: Helm = PLAN_HELM): RunbookPlan {
  const t = target;
  const mutates = MUTATING.has(req.action);
  const locks = mutates && req.action !== 'unlock';
  const base = { action: req.action, target: t, request: req, mutates, ...(locks ? { lock: { namespace: t.namespace, name: DEFAULT_LOCK_NAME } } : {}) };
  const unscoped = helm.scope ? new Helm(helm.binary, helm.major) : helm;
  return { ...base, ...planSteps(t, req, facts, unscoped) };
}

function planSteps(t: RunbookTarget, req: RunbookRequest, facts: LiveFacts, helm: Helm): Planned {
  switch (req.action) {
    case 'status':
      return planStatus({ t, req, facts, helm });
    case 'history':
      return planHistory({ t, req, facts, helm });
    case 'rollback':
      return planRollback({ t, req, facts, helm });
    case 'restart':
      return planRestart({ t, req, facts, helm });
    case 'scale':
      return planScale({ t, req, facts, helm });
    case 'logs':
      return planLogs({ t, req, facts, helm });
    case 'rotate-master-key':
      return planRotateMasterKey({ t, req, facts, helm });
    case 'diagnose':
      return planDiagnose({ t, req, facts, helm });
    case 'unlock':
      return planUnlock();
  }
}

function planUnlock(): Planned {
  const read = ['get', 'leases.coordination.k8s.io', DEFAULT_LOCK_NAME, '--output', 'json'];
  return {
    steps: [
      { title: `read the deploy lock ${DEFAULT_LOCK_NAME}: who holds it, since when, until when, which processes`, mutates: false, tool: 'kubectl', argv: read },
      { title: 'refuse when its holder is a live process on this host', mutates: false },
      { title: 'clear its holder (guarded by the version read above: a lock that changed hands meanwhile is left alone)', mutates: true },
      { title: 'record the unlock (and whom it was taken from) in the audit trail', mutates: true },
    ],
    notes: ['Only for a lock whose holder is gone for good (a machine or runner that vanished): a live holder renews it every few seconds.'],
  };
}

function planStatus({ t, helm }: PlanInput<'status'>): Planned {
  return {
    steps: [
      { title: 'read the release', mutates: false, tool: 'helm', argv: helm.statusArgs(t.release) },
      {
        title: 'read deployments, pods and HPAs of the release',
        mutates: false,
        tool: 'kubectl',
        argv: ['get', 'deployments,pods,hpa', '--selector', componentSelector(t.release), '--output', 'json'],
      },
      { title: 'read recent warning events', mutates: false, tool: 'kubectl', argv: ['get', 'events', '--output', 'json'] },
      { title: `read the deploy lock ${DEFAULT_LOCK_NAME}`, mutates: false, tool: 'kubectl', argv: ['get', 'leases.coordination.k8s.io', DEFAULT_LOCK_NAME, '--output', 'json'] },
    ],
    notes: [],
  };
}

function planHistory({ t, req, helm }: PlanInput<'history'>): Planned {
  return {
    steps: [
      { title: 'read the release history', mutates: false, tool: 'helm', argv: helm.historyArgs(t.release, req.max) },
      { title: 'read the audit trail', mutates: false, tool: 'kubectl', argv: ['get', 'configmap', 'conduit-audit', '--output', 'json'] },
    ],
    notes: [],
  };
}

function planRollback({ t, req, facts, helm }: PlanInput<'rollback'>): Planned {
  const to = req.toRevision ?? facts.lastGoodRevision;
  const argv = helm.rollbackArgs({ release: t.release, revision: to, timeout: req.timeout, historyMax: 10 });
  const what = req.toRevision ? `revision ${req.toRevision}` : to ? `revision ${to}, the last one that was deployed before the current` : 'the previous revision';
  return {
    steps: [
      lockStep(),
      { title: `roll back to ${what} and wait`, mutates: true, tool: 'helm', argv },
      ...enabledIn(facts, [...COMPONENTS]).map((c) => rolloutStep(t, c, req.timeout)),
      { title: 'record the rollback in the audit trail', mutates: true },
    ],
    notes: [
      'The rollback is a new revision; the next deploy upgrades from it as usual.',
      'Each revision stores the master-key Secret it rendered: rolling back past a rotate-master-key restores the older key (deploy after rotating, so the latest revision holds the new one).',
    ],
  };
}

function planRestart({ t, req, facts }: PlanInput<'restart'>): Planned {
  const cs = enabledIn(facts, req.components);
  return {
    steps: [
      lockStep(),
      ...cs.map((c): PlanStep => ({
        title: `set the pod-template annotation ${RESTART_ANNOTATION} of deployment/${resourceName(t.release, c)}`,
        mutates: true,
        tool: 'kubectl',
        patch: { kind: 'deployment', name: resourceName(t.release, c), body: restartPatch(NOW_PLACEHOLDER) },
      })),
      ...cs.map((c) => rolloutStep(t, c, req.timeout)),
      { title: 'record the restart in the audit trail', mutates: true },
    ],
    notes: [],
  };
}

function planScale({ t, req, facts }: PlanInput<'scale'>): Planned {
  const hpa = facts.hpas?.[req.component];
  const name = resourceName(t.release, req.component);
  if (hpa && req.replicas !== undefined) {
    throw new UserError(`${req.component} is autoscaled by HorizontalPodAutoscaler/${hpa.name} (min ${hpa.min}, max ${hpa.max}): a replica count set by hand would be overwritten by it`, {
      hint: `Change the bounds instead: either for good with ${req.component}.autoscaling.minReplicas/maxReplicas in values/ and a deploy, or now with: npx zx scripts/runbook.ts scale --cluster ${t.cluster} --component ${req.component} --hpa-min N --hpa-max M`,
      details: { hpa },
    });
  }
  if (!hpa && req.hpaMin !== undefined) {
    throw new UserError(`${req.component} has no HorizontalPodAutoscaler, so there are no bounds to change`, {
      hint: `Use --replicas N, or enable ${req.component}.autoscaling in values/ and deploy.`,
    });
  }
  const step: PlanStep = hpa
    ? {
        title: `set HorizontalPodAutoscaler/${hpa.name} bounds ${hpa.min}..${hpa.max} -> ${req.hpaMin}..${req.hpaMax}`,
        mutates: true,
        tool: 'kubectl',
        patch: { kind: 'hpa', name: hpa.name, body: { spec: { minReplicas: req.hpaMin, maxReplicas: req.hpaMax } } },
      }
    : { title: `set deployment/${name} replicas to ${req.replicas}`, mutates: true, tool: 'kubectl', patch: { kind: 'deployment', name, body: { spec: { replicas: req.replicas } } } };
  return {
    steps: [lockStep(), step, ...(hpa ? [] : [rolloutStep(t, req.component, req.timeout)]), { title: 'record the change in the audit trail', mutates: true }],
    notes: [...(hpa ? ['The HPA moves the replica count within the new bounds on its next sync.'] : []), REVERT_NOTE],
  };
}

function planLogs({ t, req, facts }: PlanInput<'logs'>): Planned {
  return {
    // One call per pod (listed by the selector), so one unreadable pod does not hide the others.
    steps: enabledIn(facts, req.components).map((c) => ({
      title: `read the logs of every pod of ${c} (pods with ${componentSelector(t.release, c)})`,
      mutates: false,
      tool: 'kubectl' as const,
      argv: ['logs', 'POD', `--tail=${req.tail}`, '--all-containers=true', ...(req.sinceSeconds ? [`--since=${req.sinceSeconds}s`] : [])],
    })),
    notes: ['Lines are redacted: Secret values of the release and credential-looking assignments are masked.'],
  };
}

function planRotateMasterKey({ t, req, facts }: PlanInput<'rotate-master-key'>): Planned {
  if (facts.masterKeyExistingSecret) {
    throw new UserError(`the master key comes from the Secret "${facts.masterKeyExistingSecret}" (masterKey.existingSecret), which the chart does not own: rotate-master-key will not write it`, {
      hint: `Rotate it where it is managed (your secret store or the tool that writes ${facts.masterKeyExistingSecret}); put the new key in its key "${facts.masterKeySecretKey ?? 'master-key'}", then restart the readers: npx zx scripts/runbook.ts restart --cluster ${t.cluster} --component all`,
      details: { existingSecret: facts.masterKeyExistingSecret },
    });
  }
  const secret = resourceName(t.release, 'master-key');
  const cs = enabledIn(facts, [...COMPONENTS]);
  return {
    steps: [
      lockStep(),
      {
        title: `write a new random ${MASTER_KEY_LENGTH}-character key into Secret/${secret} (key "${facts.masterKeySecretKey ?? 'master-key'}"; on stdin, never shown)`,
        mutates: true,
        tool: 'kubectl',
        argv: ['replace', '-f', '-'],
      },
      ...cs.map((c): PlanStep => ({
        title: `roll deployment/${resourceName(t.release, c)} onto the new key (pod-template annotation ${MASTER_KEY_ANNOTATION})`,
        mutates: true,
        tool: 'kubectl',
        patch: { kind: 'deployment', name: resourceName(t.release, c), body: { spec: { template: { metadata: { annotations: { [MASTER_KEY_ANNOTATION]: '<new resourceVersion>' } } } } } },
      })),
      ...cs.map((c) => rolloutStep(t, c, req.timeout)),
      { title: `verify every pod of ${cs.join(', ')} carries the new Secret resourceVersion and is ready`, mutates: false },
      { title: 'record the rotation in the audit trail (no key)', mutates: true },
    ],
    notes: [
      'Clients holding the old master key (Admin API callers, scripts) must be given the new one from the Secret.',
      'The chart keeps the rotated key on later deploys (it reads the existing Secret back).',
    ],
  };
}

function planDiagnose({ t, req, helm }: PlanInput<'diagnose'>): Planned {
  return {
    steps: [
      { title: 'collect status, events, the deploy lock and the ready endpoints of every Service', mutates: false },
      { title: 'describe pods and deployments of the release', mutates: false, tool: 'kubectl', argv: ['describe', 'pods,deployments,statefulsets,hpa', '--selector', componentSelector(t.release)] },
      { title: `collect recent logs of every pod with ${componentSelector(t.release)} (redacted)`, mutates: false, tool: 'kubectl', argv: ['logs', 'POD', '--tail=500', '--all-containers=true'] },
      { title: 'collect helm values (secrets masked) and history', mutates: false, tool: 'helm', argv: helm.valuesArgs(t.release) },
      { title: 'collect the audit trail', mutates: false },
      { title: `write the bundle ${req.out ?? defaultBundleName(t, new Date(0)).replace(/-19700101T000000Z/, '-<time>')}`, mutates: false },
    ],
    notes: ['The bundle is written on this machine; nothing in the cluster changes apart from one audit entry.'],
  };
}

export function defaultBundleName(t: RunbookTarget, now: Date): string {
  return `conduit-diagnose-${t.cluster}-${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}.tar.gz`;
}

/** The plan as text (for --dry-run and before a change). */
export function describeRunbookPlan(plan: RunbookPlan, helm = 'helm', kubectl = 'kubectl'): string {
  const t = plan.target;
  const kArgs = [...(t.kubeconfig ? ['--kubeconfig', t.kubeconfig] : []), '--context', t.context, '--namespace', t.namespace];
  const hArgs = PLAN_HELM.withScope(helmScopeOf(t)).scopeArgs();
  const lines = [`${plan.action} on ${t.cluster} (context ${t.context}, namespace ${t.namespace}, release ${t.release})${t.protected ? ' [protected]' : ''}${plan.mutates ? '' : ' - read only'}`];
  plan.steps.forEach((s, i) => {
    let how = '';
    if (s.patch) how = `\n     ${formatArgv(kubectl, [...kArgs, 'patch', s.patch.kind, s.patch.name, '--type', 'merge', '--patch', JSON.stringify(s.patch.body)])}`;
    else if (s.argv && s.tool) how = `\n     ${formatArgv(s.tool === 'helm' ? helm : kubectl, [...(s.tool === 'helm' ? hArgs : kArgs), ...s.argv])}`;
    lines.push(`${i + 1}. ${s.mutates ? '[change] ' : ''}${s.title}${how}`);
  });
  for (const n of plan.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}

/** The plan as JSON data (stable shape for --json). */
export function planJson(plan: RunbookPlan): Record<string, unknown> {
  return {
    action: plan.action,
    target: { cluster: plan.target.cluster, context: plan.target.context, namespace: plan.target.namespace, release: plan.target.release, protected: plan.target.protected },
    mutates: plan.mutates,
    lock: plan.lock,
    steps: plan.steps,
    notes: plan.notes,
  };
}

/**
 * Whether a change may go ahead: protected clusters need --yes, or a "yes" on a terminal. Refusing is a
 * UserError (exit 1) that says how to confirm; a dry run never asks.
 */
export async function confirmChange(plan: RunbookPlan, options: { yes: boolean; dryRun: boolean; interactive: boolean; ask: (q: string) => Promise<boolean> }): Promise<void> {
  if (!plan.mutates || !plan.target.protected || options.dryRun || options.yes) return;
  const what = `${plan.action} on the protected cluster ${plan.target.cluster}`;
  if (!options.interactive) {
    throw new UserError(`${what} needs confirmation, and stdin is not a terminal`, {
      hint: 'Re-run with --yes to confirm (check the plan first with --dry-run). Nothing was changed.',
      details: { refused: true },
    });
  }
  if (!(await options.ask(`Run ${what}?`))) throw new UserError(`${what} was not confirmed; nothing was changed`, { details: { refused: true } });
}

// ---------------------------------------------------------------------------------------------
// Execution

export interface RunbookContext {
  target: RunbookTarget;
  kube: Kube;
  /** The helm client, scoped to the target (helmScopeOf). */
  helm: Helm;
  actor?: string;
  progress?: (note: string) => void;
  /** Run a titled step (spinner and timing in the CLI). */
  step?: <T>(title: string, fn: () => Promise<T>) => Promise<T>;
}

/** The release's status, or a UserError that says to deploy first. */
export async function requireRelease(ctx: Pick<RunbookContext, 'target' | 'helm'>): Promise<HelmStatus> {
  const rel = await ctx.helm.status<HelmStatus>(ctx.target.release);
  if (!rel) {
    throw new UserError(`release ${ctx.target.release} is not installed in namespace ${ctx.target.namespace} of context ${ctx.target.context}`, {
      hint: `Deploy it first: npx zx scripts/deploy.ts --cluster ${ctx.target.cluster}`,
    });
  }
  return rel;
}

export interface HelmStatus {
  name: string;
  version: number;
  info: { status: string; description?: string; last_deployed?: string };
  chart?: { metadata?: { version?: string; appVersion?: string } };
}

interface SecretObject extends KubeObject {
  data?: Record<string, string>;
  type?: string;
}

type Deployment = KubeObject & {
  spec?: { replicas?: number; template?: { metadata?: { annotations?: Record<string, string> }; spec?: { containers?: { name: string; image: string }[] } } };
  status?: { replicas?: number; readyReplicas?: number; updatedReplicas?: number; availableReplicas?: number };
};
type Pod = KubeObject & {
  spec?: { containers?: { name: string; image: string }[] };
  status?: { phase?: string; containerStatuses?: { name: string; ready: boolean; restartCount: number; state?: Record<string, { reason?: string }> }[] };
};
type Hpa = KubeObject & {
  spec?: { scaleTargetRef?: { name: string }; minReplicas?: number; maxReplicas?: number };
  status?: { currentReplicas?: number; desiredReplicas?: number };
};

/**
 * Register every Secret value of the release (and of the chart's credentials) with redact(), so no
 * log line, value or description printed afterwards can show one. Read failures (no permission) are
 * tolerated: the pattern-based redaction still applies.
 */
const NOT_SECRET_KEY = /^(user(name)?|host(name)?|port|database|dbname|db|scheme|uri-scheme)$/i;

export async function registerReleaseSecrets(kube: Kube, t: RunbookTarget): Promise<number> {
  let n = 0;
  try {
    const secrets = await kube.list<SecretObject>('secrets', { namespace: t.namespace, selector: `app.kubernetes.io/instance=${t.release}` });
    for (const s of secrets) {
      if (s.type === 'helm.sh/release.v1') continue;
      for (const [k, v] of Object.entries(s.data ?? {})) {
        // User names, hosts and ports are not secret (and masking "conduit" everywhere helps nobody).
        if (NOT_SECRET_KEY.test(k)) continue;
        const plain = Buffer.from(v, 'base64').toString('utf8');
        registerSecret(plain);
        n++;
      }
    }
  } catch (e) {
    if (!isKubeError(e)) throw e;
  }
  return n;
}

/** Live facts a plan needs (HPAs, enabled components, master key source). */
export async function readFacts(ctx: RunbookContext, req: RunbookRequest): Promise<LiveFacts> {
  const t = ctx.target;
  const facts: LiveFacts = {};
  // Every action but unlock is about an installed release: say so plainly rather than plan against nothing.
  if (req.action === 'unlock') return facts;
  await requireRelease(ctx);
  if (['rollback', 'restart', 'scale', 'rotate-master-key', 'logs'].includes(req.action)) {
    const deps = await ctx.kube.list<Deployment>('deployments', { namespace: t.namespace, selector: componentSelector(t.release) });
    facts.components = COMPONENTS.filter((c) => deps.some((d) => d.metadata.labels?.['app.kubernetes.io/component'] === c));
  }
  if (req.action === 'rollback' && req.toRevision === undefined) {
    const current = await requireRelease(ctx);
    const revisions = (await ctx.helm.history<{ revision: number; status: string }[]>(t.release, 20)) ?? [];
    facts.lastGoodRevision = revisions
      .filter((r) => r.revision < current.version && (r.status === 'superseded' || r.status === 'deployed'))
      .map((r) => r.revision)
      .at(-1);
  }
  if (req.action === 'scale') {
    const hpas = await ctx.kube.list<Hpa>('hpa', { namespace: t.namespace, selector: componentSelector(t.release) });
    facts.hpas = {};
    for (const h of hpas) {
      const c = h.metadata.labels?.['app.kubernetes.io/component'] as Component | undefined;
      if (c && (COMPONENTS as readonly string[]).includes(c)) facts.hpas[c] = { name: h.metadata.name, min: h.spec?.minReplicas ?? 1, max: h.spec?.maxReplicas ?? 1 };
    }
  }
  if (req.action === 'rotate-master-key') {
    const values = (await ctx.helm.values<{ masterKey?: { existingSecret?: string; existingSecretKey?: string } }>(t.release)) ?? {};
    facts.masterKeyExistingSecret = values.masterKey?.existingSecret ?? '';
    facts.masterKeySecretKey = values.masterKey?.existingSecretKey ?? 'master-key';
  }
  return facts;
}

export interface ComponentStatus {
  component: string;
  deployment: string;
  images: string[];
  replicas: number;
  ready: number;
  updated: number;
  pods: { name: string; phase: string; ready: boolean; restarts: number; reason?: string }[];
  hpa?: { name: string; current: number; desired: number; min: number; max: number };
}

export interface StatusReport {
  release: { name: string; revision: number; status: string; chart?: string; appVersion?: string; lastDeployed?: string };
  components: ComponentStatus[];
  warnings: KubeEvent[];
  lock: { held: boolean; holder?: string; reason?: string; expiresAt?: string; left?: 'expired' | 'holder-gone' };
  /** The release was left pending-* by a deploy that is gone (no live holder of the lock): what repairs it. */
  interrupted?: { revision: number; status: string; fix: string };
  /** The release is pending-* and a live holder of the lock is working on it. */
  inProgress?: { revision: number; status: string; by: string };
}

/** An interrupted release (pending-*, nobody holding the lock) and the command that repairs it; or who is working on it. */
export function pendingRelease(t: RunbookTarget, rel: { version: number; info: { status: string } }, lock: LockState): Pick<StatusReport, 'interrupted' | 'inProgress'> {
  if (!/^pending-/.test(rel.info.status)) return {};
  const at = { revision: rel.version, status: rel.info.status };
  if (!lock.free && lock.holder) return { inProgress: { ...at, by: `${lock.holder}${lock.reason ? ` (${lock.reason})` : ''}` } };
  return {
    interrupted: {
      ...at,
      fix: `npx zx scripts/deploy.ts --cluster ${t.cluster} (recovers it under the deploy lock: rolls back to the last deployed revision, or removes a first install that never completed, then deploys)`,
    },
  };
}

export async function collectStatus(ctx: RunbookContext): Promise<StatusReport> {
  const t = ctx.target;
  const rel = await requireRelease(ctx);
  // helm 4's status has no chart metadata; the newest history entry names chart and app version.
  const last = ((await ctx.helm.history<HistoryReport['revisions']>(t.release, 1)) ?? []).at(-1);
  const sel = componentSelector(t.release);
  const [deps, pods, hpas, events, lock] = await Promise.all([
    ctx.kube.list<Deployment>('deployments', { namespace: t.namespace, selector: sel }),
    ctx.kube.list<Pod>('pods', { namespace: t.namespace, selector: sel }),
    ctx.kube.list<Hpa>('hpa', { namespace: t.namespace, selector: sel }),
    ctx.kube.events(t.namespace),
    readLock(ctx.kube, t.namespace).catch((): LockState => ({ expired: false, free: true, transitions: 0 })),
  ]);
  const components: ComponentStatus[] = deps.map((d) => {
    const c = d.metadata.labels?.['app.kubernetes.io/component'] ?? d.metadata.name;
    const own = pods.filter((p) => p.metadata.labels?.['app.kubernetes.io/component'] === c);
    const h = hpas.find((x) => x.spec?.scaleTargetRef?.name === d.metadata.name);
    return {
      component: c,
      deployment: d.metadata.name,
      images: (d.spec?.template?.spec?.containers ?? []).map((x) => x.image),
      replicas: d.spec?.replicas ?? 0,
      ready: d.status?.readyReplicas ?? 0,
      updated: d.status?.updatedReplicas ?? 0,
      pods: own.map((p) => {
        const cs = p.status?.containerStatuses ?? [];
        const waiting = cs.map((s) => Object.values(s.state ?? {})[0]?.reason).find(Boolean);
        return {
          name: p.metadata.name,
          phase: p.status?.phase ?? 'Unknown',
          ready: cs.length > 0 && cs.every((s) => s.ready),
          restarts: cs.reduce((n, s) => n + s.restartCount, 0),
          ...(waiting ? { reason: waiting } : {}),
        };
      }),
      ...(h ? { hpa: { name: h.metadata.name, current: h.status?.currentReplicas ?? 0, desired: h.status?.desiredReplicas ?? 0, min: h.spec?.minReplicas ?? 1, max: h.spec?.maxReplicas ?? 0 } } : {}),
    };
  });
  return {
    release: {
      name: rel.name,
      revision: rel.version,
      status: rel.info.status,
      chart: rel.chart?.metadata?.version ?? last?.chart.replace(/^.*?-(\d)/, '$1'),
      appVersion: rel.chart?.metadata?.appVersion ?? last?.app_version,
      lastDeployed: rel.info.last_deployed,
    },
    components,
    warnings: events.filter((e) => e.type === 'Warning').slice(-20),
    lock: lock.free
      ? { held: false, ...(lock.holder ? { holder: lock.holder, left: lock.holderGone ? ('holder-gone' as const) : ('expired' as const) } : {}) }
      : { held: true, holder: lock.holder, reason: lock.reason, expiresAt: lock.expiresAt },
    ...pendingRelease(t, rel, lock),
  };
}

export function formatStatus(s: StatusReport): string {
  const lines = [
    `release ${s.release.name}: revision ${s.release.revision} (${s.release.status}), chart ${s.release.chart ?? '?'}, app ${s.release.appVersion ?? '?'}${s.release.lastDeployed ? `, deployed ${s.release.lastDeployed}` : ''}`,
    ...(s.interrupted
      ? [`INTERRUPTED: revision ${s.interrupted.revision} was left ${s.interrupted.status} by a deploy that is gone (nobody holds the deploy lock).`, `  fix: ${s.interrupted.fix}`]
      : []),
    ...(s.inProgress ? [`revision ${s.inProgress.revision} is ${s.inProgress.status}: being applied now by ${s.inProgress.by}`] : []),
    '',
  ];
  for (const c of s.components) {
    lines.push(
      `${c.component}: ${c.ready}/${c.replicas} ready, ${c.updated} updated; image ${c.images.join(', ')}${c.hpa ? `; HPA ${c.hpa.name} current ${c.hpa.current} desired ${c.hpa.desired} (min ${c.hpa.min}, max ${c.hpa.max})` : ''}`,
    );
    for (const p of c.pods) lines.push(`  ${p.name}  ${p.phase}${p.ready ? ' ready' : ' NOT ready'}  restarts ${p.restarts}${p.reason ? `  ${p.reason}` : ''}`);
  }
  lines.push('', s.warnings.length ? `recent warning events (${s.warnings.length}):` : 'no recent warning events');
  for (const e of s.warnings) lines.push(`  ${e.lastSeen}  ${e.object}  ${e.reason}: ${e.message}${e.count > 1 ? ` (x${e.count})` : ''}`);
  const stale = s.lock.holder
    ? ` (last held by ${s.lock.holder}, ${s.lock.left === 'holder-gone' ? 'whose processes on this host are gone' : 'not renewed: expired'}; the next deploy takes it over)`
    : '';
  lines.push(
    '',
    s.lock.held ? `deploy lock held by ${s.lock.holder}${s.lock.reason ? ` (${s.lock.reason})` : ''}, renewed while it lives, expires ${s.lock.expiresAt} unless renewed` : `deploy lock: free${stale}`,
  );
  return lines.join('\n');
}

export interface HistoryReport {
  revisions: { revision: number; updated: string; status: string; chart: string; app_version: string; description: string }[];
  audit: StoredAuditEntry[];
}

export async function collectHistory(ctx: RunbookContext, max: number): Promise<HistoryReport> {
  await requireRelease(ctx);
  const revisions = (await ctx.helm.history<HistoryReport['revisions']>(ctx.target.release, max)) ?? [];
  const audit = await readAudit(ctx.kube, ctx.target.namespace, { limit: Math.max(20, max * 2) });
  return { revisions, audit };
}

export function formatHistory(h: HistoryReport): string {
  const lines = ['revision  status       chart            app       updated                    description'];
  for (const r of h.revisions)
    lines.push(`${String(r.revision).padEnd(8)}  ${r.status.padEnd(11)}  ${r.chart.padEnd(15)}  ${String(r.app_version).padEnd(8)}  ${r.updated.slice(0, 25).padEnd(25)}  ${r.description}`);
  lines.push('', h.audit.length ? 'audit trail (oldest first):' : 'audit trail: empty');
  for (const e of h.audit) lines.push(`  ${e.time}  ${e.action.padEnd(17)}  ${e.result.padEnd(11)}  ${e.actor}${e.summary ? `  ${e.summary}` : ''}`);
  return lines.join('\n');
}

async function audit(ctx: RunbookContext, plan: RunbookPlan, result: AuditResult, summary: string, started: number, details: Record<string, unknown> = {}): Promise<void> {
  await appendAudit(ctx.kube, {
    time: new Date().toISOString(),
    actor: ctx.actor ?? defaultHolderIdentity(),
    action: plan.action,
    result,
    cluster: plan.target.cluster,
    namespace: plan.target.namespace,
    release: plan.target.release,
    summary,
    durationMs: Math.round(performance.now() - started),
    details,
  });
}

async function step<T>(ctx: RunbookContext, title: string, fn: () => Promise<T>): Promise<T> {
  return ctx.step ? ctx.step(title, fn) : fn();
}

export interface ChangeOutcome {
  action: Action;
  result: 'succeeded';
  summary: string;
  details: Record<string, unknown>;
  notes: string[];
}

/** Run a mutating plan under the deploy lock with an audit entry whatever the outcome. */
export async function executeChange(ctx: RunbookContext, plan: RunbookPlan): Promise<ChangeOutcome> {
  const started = performance.now();
  const holder = ctx.actor ?? defaultHolderIdentity();
  const timeout = 'timeout' in plan.request ? durationSeconds(plan.request.timeout) : 300;
  try {
    const done = await holdLock(
      ctx.kube,
      { namespace: plan.target.namespace, cluster: plan.target.cluster, holder, durationSeconds: LEASE_SECONDS, reason: `runbook ${plan.action} of ${plan.target.release}` },
      () => changeSteps(ctx, plan),
    );
    await audit(ctx, plan, 'succeeded', done.summary, started, done.details);
    return { action: plan.action, result: 'succeeded', summary: done.summary, details: done.details, notes: plan.notes };
  } catch (e) {
    const refused = (e as Error).name === 'LockHeldError';
    await audit(ctx, plan, refused ? 'refused' : 'failed', redact((e as Error).message).slice(0, 500), started).catch(() => undefined);
    throw e;
  }
}

async function rollout(ctx: RunbookContext, c: Component, timeoutSeconds: number): Promise<void> {
  const t = ctx.target;
  try {
    await ctx.kube.rolloutStatus(`deployment/${resourceName(t.release, c)}`, { namespace: t.namespace, timeoutSeconds });
  } catch (e) {
    if (isKubeError(e, 'Timeout') || isKubeError(e, 'Other')) {
      throw new UserError(`the rollout of ${resourceName(t.release, c)} did not finish within ${timeoutSeconds}s`, {
        hint: `Look at npx zx scripts/runbook.ts status --cluster ${t.cluster} and the pods' events; roll back with runbook.ts rollback if a release caused it.`,
      });
    }
    throw e;
  }
}

function componentsIn(plan: RunbookPlan): Component[] {
  return plan.steps
    .filter((s) => s.patch?.kind === 'deployment')
    .map((s) => COMPONENTS.find((c) => resourceName(plan.target.release, c) === s.patch!.name)!)
    .filter(Boolean);
}

async function changeSteps(ctx: RunbookContext, plan: RunbookPlan): Promise<{ summary: string; details: Record<string, unknown> }> {
  const t = plan.target;
  const req = plan.request;
  const ns = t.namespace;
  switch (req.action) {
    case 'rollback': {
      const before = await requireRelease(ctx);
      const helmStep = plan.steps.find((s) => s.tool === 'helm')!;
      // `helm rollback RELEASE [REVISION]`: the revision the plan chose, if any.
      const to = /^\d+$/.test(helmStep.argv![2] ?? '') ? Number(helmStep.argv![2]) : undefined;
      const r = await step(ctx, helmStep.title, () => ctx.helm.run([...helmStep.argv!, ...ctx.helm.scopeArgs()], { timeoutMs: (durationSeconds(req.timeout) + 60) * 1000 }));
      if (r.exitCode !== 0)
        throw new UserError(`helm rollback failed: ${redact(r.stderr.trim().split('\n').slice(-6).join('\n'))}`, {
          hint: 'Check the revision with runbook.ts history, and the pods with runbook.ts status.',
        });
      const cs = plan.steps.filter((s) => s.argv?.[0] === 'rollout').map((s) => COMPONENTS.find((c) => s.argv![2] === `deployment/${resourceName(t.release, c)}`)!);
      for (const c of cs) await step(ctx, `rollout of ${c}`, () => rollout(ctx, c, durationSeconds(req.timeout)));
      const after = await requireRelease(ctx);
      return {
        summary: `rolled back ${t.release} from revision ${before.version} to ${to ?? before.version - 1} (new revision ${after.version})`,
        details: { from: before.version, to: to ?? null, revision: after.version },
      };
    }
    case 'restart': {
      const at = new Date().toISOString();
      const cs = componentsIn(plan);
      const rv: Record<string, string> = {};
      for (const c of cs) {
        const d = await step(ctx, `restart ${c}`, () => ctx.kube.patch(`deployment`, resourceName(t.release, c), restartPatch(at), { namespace: ns }));
        rv[c] = d.metadata.resourceVersion ?? '';
      }
      for (const c of cs) await step(ctx, `rollout of ${c}`, () => rollout(ctx, c, durationSeconds(req.timeout)));
      return { summary: `restarted ${cs.join(', ')} (${RESTART_ANNOTATION}=${at})`, details: { components: cs, restartedAt: at } };
    }
    case 'scale': {
      const s = plan.steps.find((x) => x.patch)!;
      await step(ctx, s.title, () => ctx.kube.patch(s.patch!.kind, s.patch!.name, s.patch!.body as object, { namespace: ns }));
      if (s.patch!.kind === 'deployment') await step(ctx, `rollout of ${req.component}`, () => rollout(ctx, req.component, durationSeconds(req.timeout)));
      const what = s.patch!.kind === 'hpa' ? { hpaMin: req.hpaMin, hpaMax: req.hpaMax } : { replicas: req.replicas };
      return { summary: `scaled ${req.component}: ${s.title.replace(/^set /, '')}`, details: { component: req.component, ...what } };
    }
    case 'rotate-master-key':
      return rotateMasterKey(ctx, plan);
    default:
      throw new Error(`${req.action} is not a change`);
  }
}

/** A random key of letters and digits (the chart's own generator makes the same alphabet). */
export function generateMasterKey(length = MASTER_KEY_LENGTH): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const out: string[] = [];
  while (out.length < length) {
    for (const b of crypto.randomBytes(length * 2)) {
      // Rejection sampling keeps every character equally likely.
      if (b < 248 && out.length < length) out.push(alphabet[b % 62]);
    }
  }
  return out.join('');
}

async function rotateMasterKey(ctx: RunbookContext, plan: RunbookPlan): Promise<{ summary: string; details: Record<string, unknown> }> {
  const t = plan.target;
  const ns = t.namespace;
  const name = resourceName(t.release, 'master-key');
  const current = await ctx.kube.get<SecretObject>('secret', name, { namespace: ns });
  if (!current) throw new UserError(`Secret ${name} does not exist in ${ns}`, { hint: `Deploy the release first (npx zx scripts/deploy.ts --cluster ${t.cluster}); the chart creates it.` });
  const keys = Object.keys(current.data ?? {});
  if (keys.length !== 1)
    throw new UserError(`Secret ${name} holds ${keys.length} keys (${keys.join(', ')}); expected exactly one master key`, { hint: 'Check masterKey.existingSecretKey of the release.' });
  const key = generateMasterKey();
  registerSecret(key);
  for (const v of Object.values(current.data ?? {})) registerSecret(Buffer.from(v, 'base64').toString('utf8'));
  const next: SecretObject = { ...current, data: { [keys[0]]: Buffer.from(key).toString('base64') } };
  const written = await step(ctx, `write the new key into Secret/${name}`, () => ctx.kube.replace(next, { namespace: ns }));
  const version = written.metadata.resourceVersion ?? '';
  const cs = componentsIn(plan);
  for (const c of cs) {
    await step(ctx, `roll ${c} onto the new key`, () =>
      ctx.kube.patch('deployment', resourceName(t.release, c), { spec: { template: { metadata: { annotations: { [MASTER_KEY_ANNOTATION]: version } } } } }, { namespace: ns }),
    );
  }
  const timeout = durationSeconds((plan.request as { timeout: string }).timeout);
  for (const c of cs) await step(ctx, `rollout of ${c}`, () => rollout(ctx, c, timeout));
  const pods = await step(ctx, 'verify the pods run with the new key', async () => {
    const all = await ctx.kube.list<Pod>('pods', { namespace: ns, selector: componentSelector(t.release) });
    const relevant = all.filter((p) => cs.includes(p.metadata.labels?.['app.kubernetes.io/component'] as Component) && !p.metadata.deletionTimestamp);
    const ready = (p: Pod) => p.status?.phase === 'Running' && (p.status.containerStatuses ?? []).length > 0 && p.status.containerStatuses!.every((c) => c.ready);
    const stale = relevant.filter((p) => p.metadata.annotations?.[MASTER_KEY_ANNOTATION] !== version || !ready(p));
    if (stale.length) {
      throw new UserError(`${stale.length} pod(s) do not run with the new master key yet: ${stale.map((p) => p.metadata.name).join(', ')}`, {
        hint: `The Secret already holds the new key; restart the listed pods' components (runbook.ts restart --component all) and check runbook.ts status.`,
      });
    }
    return relevant.length;
  });
  return {
    summary: `rotated the master key in Secret/${name} (resourceVersion ${version}); ${pods} pod(s) of ${cs.join(', ')} run with it`,
    details: { secret: name, secretResourceVersion: version, components: cs, pods },
  };
}

/** Logs of every pod of the components, redacted, one block per pod. */
export async function collectLogs(
  ctx: RunbookContext,
  components: Component[],
  options: { tail: number; sinceSeconds?: number },
): Promise<{ pod: string; component: Component; logs: string; error?: string }[]> {
  const t = ctx.target;
  await registerReleaseSecrets(ctx.kube, t);
  const out: { pod: string; component: Component; logs: string; error?: string }[] = [];
  for (const c of components) {
    const pods = await ctx.kube.list<Pod>('pods', { namespace: t.namespace, selector: componentSelector(t.release, c) });
    for (const p of pods) {
      try {
        out.push({ pod: p.metadata.name, component: c, logs: await ctx.kube.logs(t.namespace, p.metadata.name, { allContainers: true, tail: options.tail, sinceSeconds: options.sinceSeconds }) });
      } catch (e) {
        out.push({ pod: p.metadata.name, component: c, logs: '', error: redact((e as Error).message.split('\n').slice(-1)[0] ?? '') });
      }
    }
  }
  return out;
}

/** Helm values with every secret-looking field masked and every string redacted. */
export function maskValues(values: unknown): unknown {
  return maskSecretValues(values);
}

export interface BundleResult {
  file: string;
  bytes: number;
  entries: string[];
}

/** The support bundle: a tar.gz of status, events, descriptions, logs, masked values, history and the audit trail. */
export async function writeDiagnoseBundle(ctx: RunbookContext, out: string | undefined, now = new Date()): Promise<BundleResult> {
  const t = ctx.target;
  await registerReleaseSecrets(ctx.kube, t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-diagnose-'));
  const root = path.join(dir, `conduit-diagnose-${t.cluster}`);
  fs.mkdirSync(root);
  const write = (name: string, text: string) => fs.writeFileSync(path.join(root, name), redact(text));
  try {
    const status = await step(ctx, 'status', () => collectStatus(ctx));
    write('status.json', JSON.stringify(status, null, 2));
    write('status.txt', formatStatus(status));
    const events = await ctx.kube.events(t.namespace);
    write('events.txt', events.map((e) => `${e.lastSeen}  ${e.type.padEnd(7)}  ${e.object}  ${e.reason}: ${e.message}${e.count > 1 ? ` (x${e.count})` : ''}`).join('\n') + '\n');
    write('endpoints.txt', formatEndpoints(await serviceEndpoints(ctx)));
    const describe = await step(ctx, 'describe', () => ctx.kube.exec(['describe', 'pods,deployments,statefulsets,hpa', '--selector', componentSelector(t.release)], { namespace: t.namespace }));
    write('describe.txt', describe.stdout + (describe.exitCode ? `\n(kubectl describe exited ${describe.exitCode}: ${describe.stderr})` : ''));
    const logs = await step(ctx, 'logs', () => collectLogs(ctx, [...COMPONENTS], { tail: 500 }));
    fs.mkdirSync(path.join(root, 'logs'));
    for (const l of logs) write(path.join('logs', `${l.pod}.log`), l.error ? `(no logs: ${l.error})\n` : l.logs);
    const values = await ctx.helm.values<unknown>(t.release);
    write('values.yaml', '# helm get values --all, secret-looking fields masked\n' + toYaml(maskValues(values ?? {})));
    const history = await ctx.helm.history<unknown>(t.release, 20);
    write('history.json', JSON.stringify(history ?? [], null, 2));
    write('audit.json', JSON.stringify(await readAudit(ctx.kube, t.namespace), null, 2));
    write(
      'README.txt',
      `Support bundle of release ${t.release} in namespace ${t.namespace} (cluster ${t.cluster}, context ${t.context}), taken ${now.toISOString()}.\nSecret values are masked (***).\n`,
    );
    const file = path.resolve(out ?? defaultBundleName(t, now));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tar = await run('tar', ['-czf', file, '-C', dir, path.basename(root)]);
    if (tar.exitCode !== 0) throw new UserError(`could not write ${file}: ${tar.stderr.trim()}`, { hint: 'Check that the directory is writable (or pass --out FILE).' });
    const entries = listFiles(root).map((f) => path.relative(dir, f));
    return { file, bytes: fs.statSync(file).size, entries };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

type EndpointSlice = KubeObject & { endpoints?: { conditions?: { ready?: boolean } }[] };

/** Ready endpoints per Service of the namespace: a dependency with none is unreachable from the app. */
export async function serviceEndpoints(ctx: RunbookContext): Promise<{ service: string; ready: number; total: number }[]> {
  const [services, slices] = await Promise.all([
    ctx.kube.list('services', { namespace: ctx.target.namespace }),
    ctx.kube.list<EndpointSlice>('endpointslices.discovery.k8s.io', { namespace: ctx.target.namespace }),
  ]);
  return services.map((svc) => {
    const own = slices.filter((sl) => sl.metadata.labels?.['kubernetes.io/service-name'] === svc.metadata.name).flatMap((sl) => sl.endpoints ?? []);
    return { service: svc.metadata.name, ready: own.filter((e) => e.conditions?.ready !== false).length, total: own.length };
  });
}

export function formatEndpoints(rows: { service: string; ready: number; total: number }[]): string {
  return (
    [
      'Ready endpoints per Service (0 ready: nothing answers behind that name):',
      ...rows.map((r) => `  ${r.service.padEnd(40)} ${r.ready}/${r.total}${r.ready === 0 ? '  <- no ready endpoint' : ''}`),
    ].join('\n') + '\n'
  );
}

function listFiles(d: string): string[] {
  return fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(path.join(d, e.name)) : [path.join(d, e.name)]));
}

/** Record a read-only action that exported data (diagnose) in the audit trail. */
export async function auditExport(ctx: RunbookContext, plan: RunbookPlan, summary: string, started: number, details: Record<string, unknown>): Promise<void> {
  await audit(ctx, plan, 'succeeded', summary, started, details);
}
