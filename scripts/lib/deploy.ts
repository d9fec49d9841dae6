// The deploy engine: given a resolved target (context, namespace, release) and the values to apply,
// it checks the cluster, shows what would change, asks when the cluster is protected, takes the
// deploy lock, runs `helm upgrade --install` with automatic rollback on failure, verifies the
// workloads and records the outcome in the audit trail. The plan (argv arrays, lock, steps) is data,
// so --dry-run prints it and tests assert on it; values reach helm on stdin, never in argv.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { checklistFailed, evaluateChecklist, type CheckResult } from './checklist.ts';
import { appendAudit, maskSecretValues, type AuditResult } from './audit.ts';
import { UserError } from './errors.ts';
import { formatArgv, run, type RunResult } from './exec.ts';
import { explainKubeError, isKubeError, type Kube, type KubeObject } from './kube.ts';
import { InterruptGuard, EXIT_INTERRUPTED } from './interrupt.ts';
import { acquireLock, defaultHolderIdentity, keepLock } from './lease.ts';
import { liveDrift } from './drift.ts';
import { canonicalJson, diffManifests, helmStoresSecrets, readRelease, releaseObjects, workloadImages, type HelmRelease } from './helmrelease.ts';
import { templateFailure } from './helm.ts';
import { RenderGate } from './gate.ts';
import { redact } from './redact.ts';
import { table } from './ui.ts';
import type { HelmMajor } from './tools.ts';
import { durationSeconds } from './duration.ts';
import type { DeployTarget } from './target.ts';

export interface DeployRequest {
  target: DeployTarget;
  chartDir: string;
  /** Values files in order (environment layer, cluster layer, --values files). */
  valuesFiles: string[];
  /** Values applied last (--set, --image-tag), sent to helm on stdin. */
  overrides: Record<string, unknown>;
  helmMajor: HelmMajor;
  /** Go duration for helm, e.g. 10m. */
  timeout: string;
  actor?: string;
  /** What the diff compares: the stored release (default) or the live objects (server-side). */
  diff?: DiffMode;
  /**
   * The caller validated this deploy's render strictly against the cluster's Kubernetes schemas (as
   * deploy.ts does with kubeconform): helm's own, weaker OpenAPI check (0.2 s) is then skipped.
   */
  strictlyValidated?: boolean;
  /**
   * Ask each workload image's registry whether the tag or digest exists before anything changes
   * (imagecheck.ts; default true). False for --skip-image-check.
   */
  checkImages?: boolean;
}

/**
 * `release`: the manifest of the newest stored revision against the one this deploy applies (fast,
 * exact for what helm changes, no secret values). `live`: a server-side dry run against the live
 * objects, which also shows drift (edits made outside helm); one more helm and kubectl run.
 */
export type DiffMode = 'release' | 'live';

export interface DeployPlan {
  target: DeployTarget;
  helm: string;
  helmMajor: HelmMajor;
  /** `helm upgrade --install` arguments (values on stdin as the last -f). */
  upgradeArgs: string[];
  /** The same as a server-side dry run, for the live diff. */
  dryRunArgs: string[];
  /** `helm template` on the live cluster (lookups resolve): the manifest the upgrade will apply. */
  liveRenderArgs: string[];
  diffMode: DiffMode;
  /** The values files, in the order helm reads them (before the overrides on stdin). */
  valuesFiles: string[];
  overridesYaml: string;
  lock: { namespace: string; name: string; holder: string; durationSeconds: number };
  timeoutSeconds: number;
  /** version and appVersion of the chart being deployed (from its Chart.yaml). */
  chart?: { version?: string; appVersion?: string };
  /** `registry`: the images are asked for at their registries before anything changes; `skipped`: --skip-image-check. */
  imageCheck: 'registry' | 'skipped';
}

function clusterArgs(t: DeployTarget): string[] {
  return [...(t.kubeconfig ? ['--kubeconfig', t.kubeconfig] : []), '--kube-context', t.context, '--namespace', t.namespace];
}

function readChartMetadata(chartDir: string): { version?: string; appVersion?: string } | undefined {
  try {
    const c = parseYaml(fs.readFileSync(path.join(chartDir, 'Chart.yaml'), 'utf8')) as { version?: unknown; appVersion?: unknown };
    return { version: c.version === undefined ? undefined : String(c.version), appVersion: c.appVersion === undefined ? undefined : String(c.appVersion) };
  } catch {
    return undefined;
  }
}

/**
 * A digest of the values a deploy hands helm: every values file's content in order, then the
 * overrides. It tells two deploys' inputs apart (or shows them equal) without holding any value.
 */
export function valuesDigest(plan: Pick<DeployPlan, 'valuesFiles' | 'overridesYaml'>): string {
  const h = createHash('sha256');
  for (const f of plan.valuesFiles) h.update(fs.readFileSync(f)).update('\u0000');
  h.update(plan.overridesYaml);
  return `sha256:${h.digest('hex').slice(0, 16)}`;
}

/** Build the plan (pure apart from the default actor and reading the chart's Chart.yaml). */
export function planDeploy(req: DeployRequest, helm: string): DeployPlan {
  const t = req.target;
  const timeoutSeconds = durationSeconds(req.timeout);
  const common = ['upgrade', '--install', t.release, req.chartDir, ...clusterArgs(t)];
  for (const f of req.valuesFiles) common.push('--values', f);
  common.push('--values', '-');
  const upgradeArgs = [
    ...common,
    '--timeout', req.timeout,
    '--history-max', '10',
    // On failure helm rolls back to the last good revision (helm 4 names it --rollback-on-failure and
    // waits with its watcher; helm 3's --atomic implies --wait). Helm 4 applies server-side: fields a
    // runbook action patched with kubectl (replicas, HPA bounds) belong to another field manager, and
    // the deploy must take them back instead of failing on the conflict. Server-side apply is asked
    // for explicitly: helm 4's default (auto) follows the previous revision, and a release last
    // applied client-side (by helm 3, or --server-side=false) would refuse --force-conflicts.
    ...(req.helmMajor === 4 ? ['--rollback-on-failure', '--wait=watcher', '--server-side=true', '--force-conflicts'] : ['--atomic', '--wait']),
    ...(req.strictlyValidated ? ['--disable-openapi-validation'] : []),
  ];
  const dryRunArgs = [...common, '--dry-run=server', '--output', 'json'];
  // helm's own OpenAPI check costs 0.1-0.2 s here and is a subset of deploy.ts's strict kubeconform step.
  const liveRenderArgs = ['template', ...common.slice(2), '--dry-run=server', '--disable-openapi-validation'];
  return {
    target: t,
    helm,
    helmMajor: req.helmMajor,
    upgradeArgs,
    dryRunArgs,
    liveRenderArgs,
    diffMode: req.diff ?? 'release',
    valuesFiles: [...req.valuesFiles],
    // JSON (valid YAML): helm's YAML 1.1 reader would turn unquoted strings such as y or on into booleans.
    overridesYaml: JSON.stringify(req.overrides ?? {}, null, 2) + '\n',
    chart: readChartMetadata(req.chartDir),
    lock: { namespace: t.namespace, name: 'conduit-deploy-lock', holder: req.actor ?? defaultHolderIdentity(), durationSeconds: timeoutSeconds + 120 },
    timeoutSeconds,
    imageCheck: req.checkImages === false ? 'skipped' : 'registry',
  };
}

async function helmJson<T>(plan: DeployPlan, args: string[]): Promise<T | undefined> {
  const r = await run(plan.helm, [...args, ...clusterArgs(plan.target), '--output', 'json'], { timeoutMs: 120_000 });
  if (r.exitCode !== 0) {
    if (/not found/.test(r.stderr)) return undefined;
    throw new UserError(`helm ${args[0]} failed: ${redact(r.stderr.trim())}`);
  }
  return JSON.parse(r.stdout) as T;
}

/** The newest revision of the release: read from its storage Secret when kube is given, else `helm status`. */
export async function releaseStatus(plan: DeployPlan, kube?: Kube): Promise<HelmRelease | undefined> {
  if (kube && helmStoresSecrets()) return readRelease(kube, plan.target.namespace, plan.target.release);
  return helmJson<HelmRelease>(plan, ['status', plan.target.release]);
}

export async function releaseHistory(plan: DeployPlan): Promise<{ revision: number; status: string; description: string; chart: string; app_version: string }[]> {
  return (await helmJson(plan, ['history', plan.target.release, '--max', '20'])) ?? [];
}

export interface DiffSummary {
  firstInstall: boolean;
  changed: boolean;
  objects: string[];
  text: string;
  /** What the diff compared with: `revision N (status)` or `the live objects`. */
  against?: string;
  /** The stored revision a release diff compared with. */
  revision?: number;
}

/**
 * What the upgrade would change. With a rendered manifest and diff mode `release`: that manifest
 * against the newest stored revision's. Otherwise (mode `live`, or no render): helm's server-side dry
 * run compared with the live objects by kubectl diff.
 */
export async function diffRelease(plan: DeployPlan, kube: Kube, manifest?: string, known?: HelmRelease): Promise<DiffSummary> {
  const listObjects = (m: string) => releaseObjects(m, plan.target.namespace).map((o) => o.id);
  if (comparesWithRelease(plan, manifest)) {
    // `known`: the newest revision, read under the deploy lock by the caller.
    const current = known ?? (await readRelease(kube, plan.target.namespace, plan.target.release));
    if (!current) return { firstInstall: true, changed: true, objects: listObjects(manifest), text: '' };
    const d = await diffManifests(current.manifest ?? '', manifest, plan.target.namespace, { before: `revision ${current.version}, ${current.info.status}`, after: 'this deploy' });
    return { firstInstall: false, changed: d.objects.length > 0, objects: d.objects, text: d.text, against: `revision ${current.version} (${current.info.status})`, revision: current.version };
  }
  const [current, r] = await Promise.all([releaseStatus(plan, kube), run(plan.helm, plan.dryRunArgs, { input: plan.overridesYaml, timeoutMs: 300_000 })]);
  if (r.exitCode !== 0) throw new UserError(`the chart does not render for ${plan.target.cluster}: ${redact(r.stderr.trim().split('\n').slice(-8).join('\n'))}`, { hint: 'Run npx zx scripts/validate.ts --cluster ' + plan.target.cluster + ' for details.' });
  const rendered = (JSON.parse(r.stdout) as HelmRelease).manifest ?? '';
  if (!current) return { firstInstall: true, changed: true, objects: listObjects(rendered), text: '' };
  const d = await kube.diff(rendered, { namespace: plan.target.namespace });
  const objects = [...d.text.matchAll(/^diff -u -N \S+\/([^/\s]+)\s/gm)].map((m) => diffFileObject(m[1]));
  return { firstInstall: false, changed: d.changed, objects, text: d.text, against: 'the live objects', revision: current.version };
}

/**
 * The chart rendered on the live cluster, as the upgrade will render it (`lookup` sees the kept
 * Secrets; checks of existing Secrets run). A render error is the deploy's error: nothing changed.
 */
export async function renderLive(plan: DeployPlan): Promise<string> {
  const r = await run(plan.helm, plan.liveRenderArgs, { input: plan.overridesYaml, timeoutMs: 300_000 });
  if (r.exitCode !== 0) {
    const cause = templateFailure(r.stderr) ?? r.stderr.trim().split('\n').slice(-6).join('\n');
    throw new UserError(`the chart does not render on ${plan.target.cluster} (context ${plan.target.context}); nothing was deployed:\n${redact(cause)}`, {
      hint: `Fix what is named above; npx zx scripts/validate.ts --cluster ${plan.target.cluster} checks the values offline.`,
    });
  }
  return r.stdout;
}

/** Whether the diff compares `manifest` with the stored revision (else: the live objects). */
function comparesWithRelease(plan: DeployPlan, manifest: string | undefined): manifest is string {
  return manifest !== undefined && plan.diffMode === 'release' && helmStoresSecrets();
}

/** The step title of a diff: what it compares with. */
export function diffStepTitle(plan: DeployPlan, manifest?: string): string {
  return comparesWithRelease(plan, manifest) ? 'diff against the deployed revision' : 'diff against the live objects';
}

/**
 * `Kind/name` of a kubectl diff file name: `[group.]version.Kind.namespace.name`, where the group may
 * hold dots (networking.k8s.io) and the core group is absent (v1.Secret.ns.name).
 */
export function diffFileObject(file: string): string {
  const m = /^(?:.+\.)?v\d+(?:(?:alpha|beta)\d+)?\.([A-Z][A-Za-z0-9]*)\.[a-z0-9-]+\.(.+)$/.exec(file);
  return m ? `${m[1]}/${m[2]}` : file;
}

/** The deployment checklist as a table (status, item, what was found, the fix when not passing). */
export function formatChecklist(checks: CheckResult[]): string {
  return table(['check', 'status', 'detail'], checks.map((c) => [c.title, c.status.toUpperCase(), c.status === 'pass' ? c.detail : `${c.detail}; fix: ${c.fix ?? ''}`]));
}

/**
 * Pre-flight: the production guide's checklist over the merged values and the render that
 * validation produced. Returns the checks (pass/warn); throws, with every fix, when one fails.
 */
export function preflightChecklist(cluster: string, environment: string, render: { values: Record<string, unknown>; manifest: string }): CheckResult[] {
  const checks = evaluateChecklist({ environment, values: render.values, manifest: render.manifest });
  if (checklistFailed(checks)) {
    const failed = checks.filter((c) => c.status === 'fail');
    throw new UserError(
      `the deployment checklist failed for ${cluster} (${environment}); nothing was deployed:\n${formatChecklist(checks)}\n\n${failed.map((c) => `fix ${c.id}: ${c.fix}`).join('\n')}`,
      { hint: 'Apply the fixes above in the cluster\'s values file, then deploy again.', details: { checklist: checks } },
    );
  }
  return checks;
}

export interface VerifyResult {
  workloads: { kind: string; name: string; ready: string }[];
}

type Workload = KubeObject & {
  metadata: { generation?: number };
  spec?: { replicas?: number };
  status?: { readyReplicas?: number; availableReplicas?: number; updatedReplicas?: number; observedGeneration?: number; currentRevision?: string; updateRevision?: string };
};

/** Rolled out: the controller saw the latest spec and every replica is updated and ready. */
function rolledOut(w: Workload): boolean {
  const want = w.spec?.replicas ?? 1;
  const st = w.status ?? {};
  return (st.observedGeneration ?? 0) >= (w.metadata.generation ?? 0) && (st.updatedReplicas ?? 0) >= want && (st.readyReplicas ?? 0) >= want &&
    (w.kind !== 'StatefulSet' || !st.updateRevision || st.currentRevision === st.updateRevision || (st.updatedReplicas ?? 0) >= want);
}

/**
 * Every Deployment and StatefulSet of the release rolled out and ready. helm has already waited, so
 * one list call usually settles it; only a workload not yet rolled out is waited for (rollout status).
 */
export async function verifyRelease(plan: DeployPlan, kube: Kube): Promise<VerifyResult> {
  const ns = plan.target.namespace;
  const selector = `app.kubernetes.io/instance=${plan.target.release}`;
  const workloads: VerifyResult['workloads'] = [];
  for (const w of await kube.list<Workload>('deployments.apps,statefulsets.apps', { namespace: ns, selector })) {
    let fresh: Workload | undefined = w;
    if (!rolledOut(w)) {
      const kind = w.kind === 'Deployment' ? 'deployments' : 'statefulsets';
      await kube.rolloutStatus(`${kind}/${w.metadata.name}`, { namespace: ns, timeoutSeconds: 60 });
      fresh = await kube.get<Workload>(kind, w.metadata.name, { namespace: ns });
    }
    workloads.push({ kind: w.kind, name: w.metadata.name, ready: `${fresh?.status?.readyReplicas ?? 0}/${fresh?.spec?.replicas ?? 0}` });
  }
  workloads.sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
  return { workloads };
}

type PodState = KubeObject & {
  status?: { phase?: string; conditions?: { type: string; status: string; reason?: string; message?: string }[]; containerStatuses?: { name: string; ready: boolean; state?: Record<string, { reason?: string; message?: string }> }[] };
};

/** One line saying why a pod is not Ready (its failing conditions, waiting containers); none when it is. */
export function unreadyPodLine(p: PodState): string | undefined {
  const ready = p.status?.conditions?.find((c) => c.type === 'Ready');
  if (ready?.status === 'True' || p.status?.phase === 'Succeeded') return undefined;
  const failing = (p.status?.conditions ?? []).filter((c) => c.status !== 'True').map((c) => `${c.type}=${c.status}${c.reason ? ` (${c.reason}${c.message ? `: ${c.message}` : ''})` : ''}`);
  const waiting = (p.status?.containerStatuses ?? []).flatMap((c) => Object.entries(c.state ?? {}).filter(([k]) => k !== 'running').map(([k, v]) => `container ${c.name} ${k}${v.reason ? `: ${v.reason}` : ''}`));
  return `pod/${p.metadata.name} (${p.status?.phase ?? 'Unknown'}): ${[...failing, ...waiting].join('; ') || 'not ready'}`;
}

/**
 * Samples the release's unready pods while helm waits, one sample at a time. A pod keeps the last
 * state it was seen in, even after it is gone: a failed rollout is rolled back, which deletes the new
 * pods, and their last state is the cause to report. A pod seen Ready later drops out.
 */
export class UnreadyPodWatch {
  private seen = new Map<string, string>();
  private timer?: NodeJS.Timeout;
  private inFlight?: Promise<void>;
  private kube: Kube;
  private selector: { namespace: string; selector: string };
  private everyMs: number;
  constructor(kube: Kube, namespace: string, release: string, everyMs = 2000) {
    this.kube = kube;
    this.selector = { namespace, selector: `app.kubernetes.io/instance=${release}` };
    this.everyMs = everyMs;
  }

  start(): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.sample(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One more sample (after any in flight), then the pods seen unready, one line each. */
  async settled(): Promise<string[]> {
    await this.inFlight;
    await this.sample();
    return [...this.seen.values()];
  }

  private sample(): Promise<void> {
    if (this.inFlight) return this.inFlight;
    this.inFlight = this.kube
      .list<PodState>('pods', this.selector)
      .then(
        (pods) => {
          for (const p of pods) {
            const line = unreadyPodLine(p);
            if (line) this.seen.set(p.metadata.name, line);
            else this.seen.delete(p.metadata.name);
          }
        },
        () => undefined,
      )
      .finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }
}

export interface DeployOutcome {
  result: AuditResult;
  /** The audit entry recorded for this outcome (also kept in the ConfigMap conduit-audit). */
  audit?: { key: string; valuesDigest: string; images?: Record<string, string[]> };
  revision?: number;
  previousRevision?: number;
  chartVersion?: string;
  appVersion?: string;
  workloads: VerifyResult['workloads'];
  diff: Omit<DiffSummary, 'text'>;
  warnings: string[];
  ms: number;
}

export interface DeploySteps {
  step<T>(title: string, fn: (progress: (note: string) => void) => Promise<T>): Promise<T>;
  info(message: string): void;
  /** Ask for confirmation (protected clusters); resolve false to stop. */
  confirm(question: string): Promise<boolean>;
}

/**
 * Namespace first (the lock and the audit trail live in it), enforcing Pod Security restricted. A
 * namespace still being deleted (e.g. just after an uninstall) is waited for, up to waitSeconds:
 * nothing can be created in it.
 */
async function ensureNamespace(kube: Kube, ns: string, onWait: (msg: string) => void, waitSeconds = 120): Promise<boolean> {
  const deadline = Date.now() + waitSeconds * 1000;
  let current = await kube.get<KubeObject & { status?: { phase?: string } }>('namespace', ns);
  if (current?.status?.phase === 'Terminating') {
    onWait(`namespace ${ns} is being deleted; waiting up to ${waitSeconds}s for it to be gone before creating it again`);
    while (current?.status?.phase === 'Terminating') {
      if (Date.now() > deadline) throw new UserError(`namespace ${ns} is still being deleted after ${waitSeconds}s; nothing was deployed`, { hint: `See what holds it: kubectl get namespace ${ns} -o yaml (status.conditions); deploy again once it is gone.` });
      await new Promise((r) => setTimeout(r, 1000));
      current = await kube.get('namespace', ns);
    }
  }
  if (current) return false;
  try {
    await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/warn': 'restricted' } } });
  } catch (e) {
    if (!isKubeError(e, 'AlreadyExists')) throw e;
  }
  return true;
}

export interface DeployOptions {
  /** Deploy to a protected cluster without asking. */
  yes: boolean;
  /** The chart as this deploy renders it (validated, rendered against the live cluster): for the release diff. */
  manifest?: string;
  /** The user-supplied values (files, then overrides) as helm stores them in the release. */
  values?: Record<string, unknown>;
  /** Upgrade (and record a new revision) even when nothing changed. */
  alwaysUpgrade?: boolean;
  /**
   * Route helm's render through the render gate (gate.ts) instead of `manifest`: helm starts before
   * the lock, the validation right after it, and the gate lets helm apply only once the validation
   * passed, under the lock. Only for an upgrade of an existing release.
   */
  gate?: {
    /** Starts the validation (called once helm has started); settles with its error, or undefined when it passed. */
    validate: () => Promise<UserError | undefined>;
    /** The newest revision as read before helm started: helm's view of the release. */
    release: HelmRelease;
  };
}

/** Whether `values` (the user-supplied values, as helm stores them) differ from those of `release`. */
export function valuesDiffer(release: HelmRelease, values: Record<string, unknown>): boolean {
  return canonicalJson(release.config ?? {}) !== canonicalJson(values);
}

/**
 * Whether an upgrade would change nothing: same user values as the deployed revision (the manifest
 * diff was empty already) and no live object edited since (see drift.ts).
 */
export async function unchangedSince(before: HelmRelease, manifest: string, values: Record<string, unknown>, kube: Kube, namespace: string): Promise<{ same: boolean; why?: string }> {
  if (before.info.status !== 'deployed') return { same: false, why: `revision ${before.version} is ${before.info.status}` };
  if (valuesDiffer(before, values)) return { same: false, why: `the values differ from revision ${before.version}'s (the rendered objects do not)` };
  const drifted = await liveDrift(kube, manifest, namespace);
  if (drifted.length) return { same: false, why: `edited outside helm since revision ${before.version}: ${drifted.join(', ')}` };
  return { same: true };
}

/**
 * Run a deploy: preflight, diff, confirm, lock, then either keep the deployed revision (nothing to
 * change; see unchangedSince) or helm upgrade with rollback on failure, verify, audit.
 */
export async function executeDeploy(plan: DeployPlan, kube: Kube, ui: DeploySteps, options: DeployOptions): Promise<DeployOutcome> {
  const started = performance.now();
  const t = plan.target;
  const warnings: string[] = [];
  const digest = valuesDigest(plan);
  try {
    const preflightChecks = async () => {
      const needed = [['create', 'leases.coordination.k8s.io'], ['update', 'configmaps'], ['create', 'deployments.apps']] as const;
      const [reachable, ...allowed] = await Promise.all([kube.reachable(10_000), ...needed.map(([verb, res]) => kube.can(verb, res, t.namespace))]);
      if (!reachable) {
        throw new UserError(`cannot reach the API server of context "${t.context}"`, {
          hint: t.cluster === 'local' ? 'Start the local cluster: npx zx scripts/cluster.ts up' : 'Check the context, your credentials and the network.',
        });
      }
      if (await ensureNamespace(kube, t.namespace, (m) => ui.info(m))) ui.info(`created namespace ${t.namespace} (Pod Security: restricted)`);
      // Asked again when the namespace was just created (a review of a missing namespace can differ).
      const denied = needed.find((_, i) => !allowed[i]);
      if (denied && !(await kube.can(denied[0], denied[1], t.namespace))) {
        throw new UserError(`you may not ${denied[0]} ${denied[1]} in ${t.namespace} (context ${t.context})`, { hint: 'Ask for the deployer role in that namespace.' });
      }
    };
    // Gated (an upgrade: the namespace and the release exist), the preflight runs while helm renders.
    if (!options.gate) await ui.step(`preflight: ${t.cluster} (context ${t.context}, namespace ${t.namespace})`, preflightChecks);

    // Not gated: the diff and the confirmation come before the lock, from the render deploy.ts made.
    let diff: DiffSummary | undefined;
    if (!options.gate) {
      diff = await showDiff(plan, kube, ui, options.manifest);
      await confirmProtected(plan, ui, options.yes);
    }

    // From the lock on, Ctrl-C and SIGTERM no longer kill the deploy mid-write: see settleInterrupted.
    let stage = 'taking the deploy lock';
    const guard = new InterruptGuard({
      onFirst: (sig) =>
        ui.info(`${sig} received while ${stage}: bringing the deploy to a consistent state (stopping helm cleanly, rolling back a half-applied release, releasing the lock); this can take a minute.`),
      describeLeftovers: () =>
        `Now ${stage}. If abandoned: the release ${t.release} may stay pending (fix: helm rollback ${t.release} --namespace ${t.namespace}) and the Lease ${t.namespace}/${plan.lock.name} stays held by "${plan.lock.holder}" until it expires (${plan.lock.durationSeconds}s after its last renewal).`,
    }).install();
    let gate: RenderGate | undefined;
    let upgrading: Promise<RunResult> | undefined;
    // While helm waits, the pods' states are sampled: after a failed rollout helm has rolled the
    // pods back, and these samples are what can still say why the new ones did not become ready.
    const podWatch = new UnreadyPodWatch(kube, t.namespace, t.release);
    const startHelm = (extraArgs: string[] = [], env: Record<string, string> = {}) => {
      podWatch.start();
      // Own process group: a terminal Ctrl-C does not reach helm; on an interrupt it gets SIGTERM
      // (helm then cancels and, with rollback-on-failure/--atomic, rolls back), SIGKILL 90s later.
      const p = run(plan.helm, [...plan.upgradeArgs, ...extraArgs], {
        input: plan.overridesYaml,
        env,
        timeoutMs: (plan.timeoutSeconds + 300) * 1000,
        detached: true,
        signal: guard.signal,
        killAfterMs: 90_000,
      });
      p.finally(() => podWatch.stop()).catch(() => undefined);
      return p;
    };
    /** helm upgrade behind a new render gate: it reads the release and renders, then waits for a verdict. */
    const startGatedHelm = async () => {
      const g = (gate = await RenderGate.open(plan.helmMajor));
      upgrading = startHelm(g.helmArgs, g.env);
      upgrading.finally(() => g.cancel()).catch(() => undefined);
    };
    try {
      // Gated, helm starts before the lock is even asked for: its start-up, release reads and render
      // overlap with the lock, the validation and the preflight. It cannot store or apply anything
      // before the gate says ok, which happens only under the lock, once the release is found as it
      // was when helm started (otherwise that helm is refused and a new one renders).
      let validation: Promise<UserError | undefined> | undefined;
      if (options.gate) {
        await startGatedHelm();
        validation = options.gate.validate();
        validation.catch(() => undefined);
      }
      const lock = await ui.step('take the deploy lock', () => acquireLock(kube, { ...plan.lock, reason: `deploy ${t.release} to ${t.cluster}` }));
      return await keepLock(kube, lock, async () => {
        const before = await releaseStatus(plan, kube);
        // The manifest helm applies (its render, or deploy.ts's render on the live cluster): the audit names its images.
        let manifest = options.manifest;
        /** Records an entry; resolves with what the outcome reports of it (undefined when it could not be written). */
        const audit = (result: AuditResult, extra: Record<string, unknown> = {}): Promise<DeployOutcome['audit']> => {
          const images = manifest !== undefined ? workloadImages(manifest, t.namespace) : undefined;
          return appendAudit(kube, {
            time: new Date().toISOString(),
            actor: plan.lock.holder,
            action: 'deploy',
            result,
            cluster: t.cluster,
            namespace: t.namespace,
            release: t.release,
            summary: `${t.release} ${before ? `revision ${before.version}` : '(new)'} -> ${result} (values ${digest})`,
            durationMs: Math.round(performance.now() - started),
            // A deploy that applies while its diff is worked out records the count at the end only.
            details: { helm: plan.helmMajor, valuesDigest: digest, ...(images ? { images } : {}), ...(diff ? { changedObjects: diff.objects.length } : {}), ...extra },
          }).then(
            (entry) => ({ key: entry.key, valuesDigest: digest, ...(images ? { images } : {}) }),
            (e: Error) => void warnings.push(`audit entry not written: ${e.message}`),
          );
        };
        const interrupted = async () => {
          // helm first: a render waiting at the gate is refused, an upgrade is let finish its cancel and rollback.
          if (gate?.pending) await gate.refuse('refused by deploy.ts: interrupted').catch(() => undefined);
          await upgrading?.catch(() => undefined);
          return settleInterrupted(plan, before, guard, audit, (s) => (stage = s));
        };
        if (guard.interrupted) return interrupted();

        // From here helm may apply: recorded as `started` first, then the gate (if any) says ok.
        // False when an interrupt came in meanwhile (the caller settles it; nothing was approved).
        let approved = false;
        const beginApplying = async (): Promise<boolean> => {
          stage = 'applying the release (helm upgrade --install)';
          await audit('started');
          if (guard.interrupted) return false;
          if (gate && manifest !== undefined) await gate.approve();
          approved = true;
          return true;
        };
        if (options.gate && validation) {
          // Gated: helm hands its render to the gate; the validation, the diff and the confirmation
          // happen on exactly that render while helm waits. Nothing is stored or applied until the
          // gate says ok.
          if (!before) throw new UserError(`release ${t.release} is no longer installed in ${t.namespace}; nothing was changed`, { hint: 'Deploy again (a first install is not gated).' });
          if (!sameRevision(before, options.gate.release)) {
            // Changed after helm read it (another deploy, a rollback): that helm would upgrade from a stale revision.
            ui.info(`release ${t.release} changed while the deploy waited for the lock (now revision ${before.version}, ${before.info.status}): helm renders it again`);
            await gate!.refuse('refused by deploy.ts: the release changed before the deploy lock was taken');
            await upgrading!.catch(() => undefined);
            gate!.close();
            await startGatedHelm();
          }
          const g = gate!;
          stage = 'rendering (helm) and validating';
          const checked = preflightChecks().then(
            () => undefined,
            (e: unknown) => e,
          );
          void import('diff');
          const rendered = await ui.step(`helm renders the chart; validate that render; preflight (context ${t.context}, namespace ${t.namespace})`, async () => {
            const [m, invalid, failed] = await Promise.all([Promise.race([g.manifest(), upgrading!.then(() => undefined)]), validation, checked]);
            const stop = invalid ?? failed;
            if (stop) {
              await g.refuse(`refused by deploy.ts: ${stop instanceof Error ? stop.message : String(stop)}`);
              throw stop;
            }
            return m;
          });
          if (guard.interrupted) return interrupted();
          manifest = rendered;
          if (rendered !== undefined) {
            // Other values than the deployed revision's (or --always-upgrade) mean an upgrade whatever
            // the diff shows; with nothing to ask either, helm applies now and the diff of its render
            // is worked out and shown meanwhile.
            const upgradeAnyway = options.alwaysUpgrade || (options.values !== undefined && valuesDiffer(before, options.values));
            if (upgradeAnyway && (!t.protected || options.yes)) {
              ui.info(`upgrading: ${options.alwaysUpgrade ? '--always-upgrade' : `the values differ from revision ${before.version}'s`} (the diff of helm's render follows while it applies)`);
              if (!(await beginApplying())) return interrupted();
              // helm is applying: a diff that cannot be shown is a warning, not the deploy's failure.
              diff = await showDiff(plan, kube, ui, rendered, before).catch((e: Error) => void warnings.push(`no diff: ${e.message}`));
            } else {
              stage = 'showing the diff';
              diff = await showDiff(plan, kube, ui, rendered, before);
              // A signal while the question waits (Ctrl-C at it, a SIGTERM) stops helm (the guard) and counts as "no".
              const aborted = new Promise<boolean>((r) => guard.signal.addEventListener('abort', () => r(false), { once: true }));
              const confirmed = await Promise.race([confirmProtected(plan, ui, options.yes, false), aborted]);
              if (guard.interrupted) return interrupted();
              if (!confirmed) {
                await g.refuse('refused by deploy.ts: the deploy was not confirmed');
                throw new UserError(`deploy to protected cluster ${t.cluster} not confirmed; nothing was changed`, { hint: 'Pass --yes to confirm without a terminal.' });
              }
            }
          }
        }

        const nothingToDo = !approved && diff && manifest !== undefined && !options.alwaysUpgrade && options.values !== undefined && before && !diff.changed && diff.revision === before.version;
        if (nothingToDo) {
          stage = 'checking whether anything changed';
          const unchanged = await ui.step('check for edits made outside helm', () => unchangedSince(before!, manifest!, options.values!, kube, t.namespace));
          if (unchanged.same) {
            if (gate) {
              await gate.refuse('nothing to change: deploy.ts keeps the deployed revision');
              await upgrading;
            }
            stage = 'verifying the workloads';
            const verified = await ui.step('verify the workloads', () => verifyRelease(plan, kube));
            const chart = before!.chart?.metadata ?? plan.chart;
            const recorded = await audit('unchanged', { revision: before!.version, chart: chart?.version, app: chart?.appVersion });
            return {
              result: 'unchanged',
              audit: recorded,
              revision: before!.version,
              previousRevision: before!.version,
              chartVersion: chart?.version,
              appVersion: chart?.appVersion,
              workloads: verified.workloads,
              diff: { firstInstall: false, changed: false, objects: [] },
              warnings,
              ms: Math.round(performance.now() - started),
            };
          }
          ui.info(`upgrading anyway: ${unchanged.why}`);
        }
        if (guard.interrupted) return interrupted();
        if (!approved && !(await beginApplying())) return interrupted();
        const upgrade = await ui
          .step(`helm upgrade --install (timeout ${plan.timeoutSeconds}s, rollback on failure)`, async () => {
            const r = await (upgrading ??= startHelm());
            if (r.exitCode !== 0) throw new Error(guard.interrupted ? 'interrupted' : 'helm upgrade failed');
            return r;
          })
          .catch(async (e: unknown) => {
            const r = upgrading ? await upgrading : undefined;
            if (!r || r.exitCode === 0) throw e;
            return r;
          });
        if (guard.interrupted) return interrupted();
        stage = 'checking the release';
        const afterPromise = releaseStatus(plan, kube);
        // Started with the status read when helm succeeded: one round trip less on the common path.
        const verifying = upgrade.exitCode === 0 ? ui.step('verify the workloads', () => verifyRelease(plan, kube)) : undefined;
        verifying?.catch(() => undefined);
        const after = await afterPromise;
        if (upgrade.exitCode !== 0) {
          const lastUnready = await podWatch.settled();
          const rolledBack = Boolean(before && after && after.version > before.version && after.info.status === 'deployed');
          const events = (await kube.events(t.namespace, { limit: 200 }).catch(() => [])).filter((e) => e.type === 'Warning').slice(-8);
          await audit(rolledBack ? 'rolled-back' : 'failed', { error: redact(upgrade.stderr.trim().split('\n').slice(-3).join(' ')) });
          throw new UserError(
            `the upgrade of ${t.release} on ${t.cluster} failed${rolledBack ? ` and was rolled back to the previous revision (now revision ${after!.version})` : before ? '' : '; the failed first install was removed'}:\n${redact(upgrade.stderr.trim().split('\n').slice(-6).join('\n'))}` +
              (lastUnready.length ? `\nPods not ready while helm waited:\n${lastUnready.map((p) => `  ${p}`).join('\n')}` : '') +
              (events.length ? `\nRecent warnings:\n${events.map((e) => `  ${e.object}: ${e.reason}: ${e.message}`).join('\n')}` : ''),
            { hint: `Inspect: npx zx scripts/runbook.ts diagnose --cluster ${t.cluster}`, details: { rolledBack, revision: after?.version, unreadyPods: lastUnready } },
          );
        }
        stage = 'verifying the workloads';
        let verified: VerifyResult;
        try {
          verified = await verifying!;
        } catch (e) {
          // A terminal Ctrl-C also kills the kubectl we were waiting on: that is the interrupt, not a failure.
          if (guard.interrupted) return interrupted();
          throw e;
        }
        if (guard.interrupted) return interrupted();
        // helm 4's status has no chart metadata: the deployed chart is the one in chartDir.
        const chart = after?.chart?.metadata ?? plan.chart;
        const chartVersion = chart?.version;
        const appVersion = chart?.appVersion;
        const recorded = await audit('succeeded', { revision: after?.version, chart: chartVersion, app: appVersion });
        return {
          result: 'succeeded',
          audit: recorded,
          revision: after?.version,
          previousRevision: before?.version,
          chartVersion,
          appVersion,
          workloads: verified.workloads,
          diff: { firstInstall: diff?.firstInstall ?? false, changed: diff?.changed ?? true, objects: diff?.objects ?? [] },
          warnings,
          ms: Math.round(performance.now() - started),
        };
      });
    } catch (e) {
      // A signal that killed a kubectl call while taking the lock: the lock was not (or no longer) ours to keep.
      if (guard.interrupted && !(e instanceof UserError && e.exitCode === EXIT_INTERRUPTED)) {
        throw new UserError(`deploy of ${t.release} to ${t.cluster} interrupted by ${guard.signalName} before anything was applied`, { exitCode: EXIT_INTERRUPTED });
      }
      throw e;
    } finally {
      // A helm still waiting at the gate (the deploy stopped on an error) is told to stop, never left hanging.
      if (gate) {
        if (gate.pending) await gate.refuse('refused by deploy.ts: the deploy stopped before applying').catch(() => undefined);
        await upgrading?.catch(() => undefined);
        gate.close();
      }
      guard.dispose();
    }
  } catch (e) {
    if (isKubeError(e)) throw explainKubeError(e, `deploying to ${t.cluster}`, { context: t.context, kubeconfig: t.kubeconfig });
    throw e;
  }
}

/** The same newest revision (number, status, time): what helm read before the lock is still current. */
export function sameRevision(a: HelmRelease, b: HelmRelease): boolean {
  return a.version === b.version && a.info.status === b.info.status && a.info.last_deployed === b.info.last_deployed;
}

/** The diff step and its report. */
async function showDiff(plan: DeployPlan, kube: Kube, ui: DeploySteps, manifest: string | undefined, current?: HelmRelease): Promise<DiffSummary> {
  const diff = await ui.step(diffStepTitle(plan, manifest), () => diffRelease(plan, kube, manifest, current));
  if (diff.firstInstall) ui.info(`first install: ${diff.objects.length} objects will be created`);
  else if (!diff.changed) ui.info(`no changes against ${diff.against ?? 'the live objects'}`);
  else ui.info(`${diff.objects.length} object(s) change against ${diff.against ?? 'the live objects'}: ${diff.objects.join(', ')}\n${diff.text.trimEnd()}`);
  return diff;
}

/** A protected cluster needs --yes or a terminal answer; false (or a throw when `throwOnNo`) when refused. */
async function confirmProtected(plan: DeployPlan, ui: DeploySteps, yes: boolean, throwOnNo = true): Promise<boolean> {
  const t = plan.target;
  if (!t.protected || yes) return true;
  if (await ui.confirm(`Deploy to protected cluster ${t.cluster}?`)) return true;
  if (!throwOnNo) return false;
  throw new UserError(`deploy to protected cluster ${t.cluster} not confirmed; nothing was changed`, { hint: 'Pass --yes to confirm without a terminal.' });
}

const PENDING = /^pending-(install|upgrade|rollback)$/;

/**
 * After an interrupt (helm already stopped): a release left `pending-*` (or `failed` by the cancel)
 * goes back to its last deployed revision; a failed first install is removed. Then an audit entry
 * `interrupted` and exit 130; the caller's keepLock releases the Lease on the way out.
 */
async function settleInterrupted(
  plan: DeployPlan,
  before: HelmRelease | undefined,
  guard: InterruptGuard,
  audit: (result: AuditResult, extra?: Record<string, unknown>) => Promise<unknown>,
  setStage: (s: string) => void,
): Promise<never> {
  const t = plan.target;
  setStage('checking the release after the interrupt');
  const now = await releaseStatus(plan).catch(() => undefined);
  let action = 'none';
  let left = '';
  if (now && (PENDING.test(now.info.status) || (now.info.status === 'failed' && now.version !== before?.version))) {
    const history = await releaseHistory(plan).catch(() => []);
    const good = [...history].reverse().find((h) => h.status === 'deployed' || h.status === 'superseded');
    const lastDeployed = history.filter((h) => h.revision < now.version && ['deployed', 'superseded'].includes(h.status)).at(-1) ?? good;
    if (lastDeployed) {
      setStage(`rolling ${t.release} back to revision ${lastDeployed.revision}`);
      const r = await run(plan.helm, ['rollback', t.release, String(lastDeployed.revision), ...clusterArgs(t), '--timeout', '5m'], { timeoutMs: 6 * 60_000 });
      action = `rolled back to revision ${lastDeployed.revision}`;
      if (r.exitCode !== 0) left = `the rollback failed (${redact(r.stderr.trim().split('\n').at(-1) ?? '')}); run: helm rollback ${t.release} ${lastDeployed.revision} --namespace ${t.namespace}`;
    } else {
      setStage(`removing the interrupted first install of ${t.release}`);
      const r = await run(plan.helm, ['uninstall', t.release, ...clusterArgs(t), '--timeout', '5m'], { timeoutMs: 6 * 60_000 });
      action = 'removed the interrupted first install';
      if (r.exitCode !== 0) left = `the uninstall failed (${redact(r.stderr.trim().split('\n').at(-1) ?? '')}); run: helm uninstall ${t.release} --namespace ${t.namespace}`;
    }
  } else if (now && now.version !== before?.version && now.info.status === 'deployed') {
    action = before && now.info.description?.startsWith('Rollback') ? `helm rolled back itself (now revision ${now.version})` : `revision ${now.version} was already applied`;
  }
  const final = await releaseStatus(plan).catch(() => undefined);
  setStage('recording the interrupt and releasing the lock');
  await audit('interrupted', { signal: guard.signalName, action, revision: final?.version, status: final?.info.status });
  const state = final ? `release ${t.release} is ${final.info.status} at revision ${final.version}` : `release ${t.release} is not installed`;
  throw new UserError(`deploy of ${t.release} to ${t.cluster} interrupted by ${guard.signalName}: ${action === 'none' ? 'nothing to undo' : action}; ${state}; the deploy lock is released.${left ? `\nLeft to do: ${left}` : ''}`, {
    exitCode: EXIT_INTERRUPTED,
    hint: left ? 'Run the command above, then deploy again.' : 'Deploy again when ready.',
    details: { interrupted: true, signal: guard.signalName, action, revision: final?.version, status: final?.info.status },
  });
}

/** How a plan is shown by --dry-run. */
export function describePlan(plan: DeployPlan): string {
  return [
    `cluster ${plan.target.cluster}: context ${plan.target.context}, namespace ${plan.target.namespace}, release ${plan.target.release}${plan.target.protected ? ' (protected)' : ''}`,
    plan.imageCheck === 'registry'
      ? `1. preflight: every workload image asked for at its registry (OCI distribution API, in parallel, 5 s each; a missing tag or digest stops the deploy, an unreachable registry is a warning); API reachable, namespace (created with Pod Security restricted if missing), permissions`
      : `1. preflight: API reachable, namespace (created with Pod Security restricted if missing), permissions (image check skipped: --skip-image-check)`,
    plan.diffMode === 'release'
      ? `2. diff: ${formatArgv('helm', plan.liveRenderArgs)} (run during validation) against the newest stored revision of ${plan.target.release} (Secret values masked)`
      : `2. diff: ${formatArgv('helm', plan.dryRunArgs)}  + kubectl diff --server-side`,
    `3. confirm${plan.target.protected ? ' (protected: --yes or a terminal answer)' : ' (not needed)'}`,
    `4. lock: Lease ${plan.lock.namespace}/${plan.lock.name} as "${plan.lock.holder}" for ${plan.lock.durationSeconds}s`,
    `5. ${formatArgv('helm', plan.upgradeArgs)}  (values below on stdin; skipped when nothing changed, unless --always-upgrade)`,
    `6. verify: rollout status of every Deployment/StatefulSet of the release`,
    `7. audit: ConfigMap conduit-audit in ${plan.target.namespace}`,
    '',
    'values on stdin (last, after the files; secret-looking fields masked here):',
    toYaml(maskSecretValues(parseYaml(plan.overridesYaml) ?? {})).trimEnd(),
  ].join('\n');
}
