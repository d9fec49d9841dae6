// The deploy engine: given a resolved target (context, namespace, release) and the values to apply,
// it checks the cluster, shows what would change, asks when the cluster is protected, takes the
// deploy lock, runs `helm upgrade --install` with automatic rollback on failure, verifies the
// workloads and records the outcome in the audit trail. The plan (argv arrays, lock, steps) is data,
// so --dry-run prints it and tests assert on it; values reach helm on stdin, never in argv.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { checklistFailed, evaluateChecklist, type CheckResult } from '../domain/checklist.ts';
import { appendAudit, maskSecretValues, type AuditResult } from '../domain/audit.ts';
import { usageError, UserError } from '../core/errors.ts';
import { formatArgv, type RunResult } from '../core/exec.ts';
import { explainKubeError, isKubeError, type Kube, type KubeObject } from '../adapters/kube.ts';
import { InterruptGuard, EXIT_INTERRUPTED } from '../core/interrupt.ts';
import { acquireLock, defaultHolderIdentity, keepLock, LEASE_SECONDS, type HeldLock, type LockKeeper } from '../domain/lease.ts';
import { liveDrift } from '../domain/drift.ts';
import { NAMESPACE_LABELS } from '../domain/permissions.ts';
import { assertPermitted, checkPermissions, type PermissionCheck } from '../domain/permission-check.ts';
import { helmStoresSecrets, markRevisionFailed, readRelease, releaseRevisions, type HelmRelease } from '../domain/helmrelease.ts';
import { canonicalJson, diffManifests, releaseObjects, workloadImages } from '../domain/manifests.ts';
import { Helm, helmMajor, templateFailure, type HelmMajor } from '../adapters/helm.ts';
import { RenderGate } from '../domain/gate.ts';
import { redact, registerSecret } from '../core/redact.ts';
import { formatMs, table, type Reporter } from '../core/ui.ts';
import { durationSeconds } from '../core/duration.ts';
import { connectKube, helmBinary, resolveTarget, LOCAL_CONTEXT, type DeployTarget } from '../domain/target.ts';
import { loadRegistry, selectClusters, type ClusterConfig } from '../domain/clusters.ts';
import { checkImages, imageCheckFailure, summarizeImageCheck, workloadImageUses, type ImageCheckReport } from '../domain/imagecheck.ts';
import { loadChartDefaults, parseSetFlags, prepareValues, type PathSegment, type PreparedValues } from '../domain/values.ts';
import { KUBERNETES_VERSION } from '../adapters/tools.ts';
import { CHART_DIR } from '../core/paths.ts';

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
  /** The helm client of this target (binary, major version, kube context and namespace). */
  helm: Helm;
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

/** Build the plan with the helm binary given (pure apart from the default actor and reading the chart's Chart.yaml). */
export function planDeploy(req: DeployRequest, helmBinary: string): DeployPlan {
  const t = req.target;
  const helm = new Helm(helmBinary, req.helmMajor, { context: t.context, kubeconfig: t.kubeconfig, namespace: t.namespace });
  const install = { release: t.release, chart: req.chartDir, valuesFiles: req.valuesFiles, stdinValues: true };
  const timeoutSeconds = durationSeconds(req.timeout);
  return {
    target: t,
    helm,
    upgradeArgs: helm.upgradeArgs({ ...install, timeout: req.timeout, historyMax: 10, skipOpenApiValidation: req.strictlyValidated }),
    dryRunArgs: helm.upgradeDryRunArgs(install),
    // helm's own OpenAPI check costs 0.1-0.2 s here and is a subset of deploy.ts's strict kubeconform step.
    liveRenderArgs: helm.templateArgs({ ...install, live: true, skipOpenApiValidation: true }),
    diffMode: req.diff ?? 'release',
    valuesFiles: [...req.valuesFiles],
    // JSON (valid YAML): helm's YAML 1.1 reader would turn unquoted strings such as y or on into booleans.
    overridesYaml: JSON.stringify(req.overrides ?? {}, null, 2) + '\n',
    chart: readChartMetadata(req.chartDir),
    lock: { namespace: t.namespace, name: 'conduit-deploy-lock', holder: req.actor ?? defaultHolderIdentity(), durationSeconds: LEASE_SECONDS },
    timeoutSeconds,
    imageCheck: req.checkImages === false ? 'skipped' : 'registry',
  };
}

/** The newest revision of the release: read from its storage Secret when kube is given, else `helm status`. */
export async function releaseStatus(plan: DeployPlan, kube?: Kube): Promise<HelmRelease | undefined> {
  if (kube && helmStoresSecrets()) return readRelease(kube, plan.target.namespace, plan.target.release);
  return plan.helm.status<HelmRelease>(plan.target.release);
}

export async function releaseHistory(plan: DeployPlan): Promise<{ revision: number; status: string; description: string; chart: string; app_version: string }[]> {
  return (await plan.helm.history<{ revision: number; status: string; description: string; chart: string; app_version: string }[]>(plan.target.release, 20)) ?? [];
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
  const [current, r] = await Promise.all([releaseStatus(plan, kube), plan.helm.run(plan.dryRunArgs, { input: plan.overridesYaml, timeoutMs: 300_000 })]);
  if (r.exitCode !== 0)
    throw new UserError(`the chart does not render for ${plan.target.cluster}: ${redact(r.stderr.trim().split('\n').slice(-8).join('\n'))}`, {
      hint: 'Run npx zx scripts/validate.ts --cluster ' + plan.target.cluster + ' for details.',
    });
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
  const r = await plan.helm.run(plan.liveRenderArgs, { input: plan.overridesYaml, timeoutMs: 300_000 });
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
  return table(
    ['check', 'status', 'detail'],
    checks.map((c) => [c.title, c.status.toUpperCase(), c.status === 'pass' ? c.detail : `${c.detail}; fix: ${c.fix ?? ''}`]),
  );
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
      { hint: "Apply the fixes above in the cluster's values file, then deploy again.", details: { checklist: checks } },
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
  return (
    (st.observedGeneration ?? 0) >= (w.metadata.generation ?? 0) &&
    (st.updatedReplicas ?? 0) >= want &&
    (st.readyReplicas ?? 0) >= want &&
    (w.kind !== 'StatefulSet' || !st.updateRevision || st.currentRevision === st.updateRevision || (st.updatedReplicas ?? 0) >= want)
  );
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
  status?: {
    phase?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    containerStatuses?: { name: string; ready: boolean; state?: Record<string, { reason?: string; message?: string }> }[];
  };
};

/** One line saying why a pod is not Ready (its failing conditions, waiting containers); none when it is. */
export function unreadyPodLine(p: PodState): string | undefined {
  const ready = p.status?.conditions?.find((c) => c.type === 'Ready');
  if (ready?.status === 'True' || p.status?.phase === 'Succeeded') return undefined;
  const failing = (p.status?.conditions ?? []).filter((c) => c.status !== 'True').map((c) => `${c.type}=${c.status}${c.reason ? ` (${c.reason}${c.message ? `: ${c.message}` : ''})` : ''}`);
  const waiting = (p.status?.containerStatuses ?? []).flatMap((c) =>
    Object.entries(c.state ?? {})
      .filter(([k]) => k !== 'running')
      .map(([k, v]) => `container ${c.name} ${k}${v.reason ? `: ${v.reason}` : ''}`),
  );
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
      if (Date.now() > deadline)
        throw new UserError(`namespace ${ns} is still being deleted after ${waitSeconds}s; nothing was deployed`, {
          hint: `See what holds it: kubectl get namespace ${ns} -o yaml (status.conditions); deploy again once it is gone.`,
        });
      await new Promise((r) => setTimeout(r, 1000));
      current = await kube.get('namespace', ns);
    }
  }
  if (current) return false;
  try {
    await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { ...NAMESPACE_LABELS } } });
  } catch (e) {
    if (!isKubeError(e, 'AlreadyExists')) throw e;
  }
  return true;
}

export interface DeployOptions {
  /** Deploy to a protected cluster without asking. */
  yes: boolean;
  /** The permission check (permissions.ts) the caller already passed; the preflight asks otherwise. */
  permissions?: PermissionCheck;
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

/** The running `helm upgrade`: its result once it exits, and the render gate it waits at (gated upgrades). */
interface HelmRun {
  result: Promise<RunResult>;
  gate?: RenderGate;
}

/**
 * One deploy as it runs: what it was asked, what it found and what it started. The phases below take
 * it in turn; each says what it changes. The interrupt guard names `stage` to the operator.
 */
class DeploySession {
  readonly plan: DeployPlan;
  readonly kube: Kube;
  readonly ui: DeploySteps;
  readonly options: DeployOptions;
  readonly target: DeployTarget;
  readonly started = performance.now();
  readonly warnings: string[] = [];
  /** A digest of the values this deploy hands helm (no value in it): the audit records it. */
  readonly digest: string;
  readonly guard: InterruptGuard;
  /**
   * While helm waits, the pods' states are sampled: after a failed rollout helm has rolled the pods
   * back, and these samples are what can still say why the new ones did not become ready.
   */
  readonly podWatch: UnreadyPodWatch;
  /** What the deploy is doing now, in the operator's words. */
  stage = 'taking the deploy lock';
  helm?: HelmRun;
  /** Gated: the validation of helm's render, started once helm runs; settles with its refusal or undefined. */
  validation?: Promise<UserError | undefined>;
  /** The newest revision, read under the lock. */
  before?: HelmRelease;
  /** The manifest helm applies (its render, or deploy.ts's render on the live cluster): the audit names its images. */
  manifest?: string;
  diff?: DiffSummary;
  /** helm may apply: `started` is recorded and the gate (if any) said ok. */
  approved = false;
  /** The deploy lock, once taken. */
  lock?: HeldLock;
  /** Records the programs started under the lock (helm), so the lock is not taken over while they run. */
  keeper?: LockKeeper;
  /** helm processes started before the lock was taken (gated): recorded once it is. */
  readonly untracked: number[] = [];

  constructor(plan: DeployPlan, kube: Kube, ui: DeploySteps, options: DeployOptions) {
    this.plan = plan;
    this.kube = kube;
    this.ui = ui;
    this.options = options;
    this.target = plan.target;
    this.manifest = options.manifest;
    this.digest = valuesDigest(plan);
    this.podWatch = new UnreadyPodWatch(kube, plan.target.namespace, plan.target.release);
    const t = plan.target;
    this.guard = new InterruptGuard({
      onFirst: (sig) =>
        ui.info(
          `${sig} received while ${this.stage}: bringing the deploy to a consistent state (stopping helm cleanly, rolling back a half-applied release, releasing the lock); this can take a minute.`,
        ),
      describeLeftovers: () =>
        `Now ${this.stage}. If abandoned: helm is told to stop too, the Lease ${t.namespace}/${plan.lock.name} frees itself (at once for a deploy on this host, ${plan.lock.durationSeconds}s after its last renewal elsewhere), and the next deploy.ts recovers a release left pending (rolls it back to its last deployed revision) before it deploys.`,
    });
  }

  /** A helm process started: recorded in the lock (now, or once the lock is taken). */
  helmStarted(pid: number): void {
    if (this.keeper) this.keeper.track(pid);
    else this.untracked.push(pid);
  }

  /** The lock is taken: what it keeps from now on. */
  locked(lock: HeldLock, keeper: LockKeeper): void {
    this.lock = lock;
    this.keeper = keeper;
    for (const pid of this.untracked.splice(0)) keeper.track(pid);
  }

  get ms(): number {
    return Math.round(performance.now() - this.started);
  }
}

/**
 * Run a deploy: preflight, diff, confirm, lock, then either keep the deployed revision (nothing to
 * change; see unchangedSince) or helm upgrade with rollback on failure, verify, audit.
 */
export async function executeDeploy(plan: DeployPlan, kube: Kube, ui: DeploySteps, options: DeployOptions): Promise<DeployOutcome> {
  const s = new DeploySession(plan, kube, ui, options);
  try {
    // Gated (an upgrade: the namespace and the release exist), the preflight runs while helm renders.
    if (!options.gate) await reviewBeforeLock(s);
    return await deployUnderGuard(s);
  } catch (e) {
    const t = plan.target;
    if (isKubeError(e)) throw explainKubeError(e, `deploying to ${t.cluster}`, { context: t.context, kubeconfig: t.kubeconfig });
    throw e;
  }
}

/** API reachable, the namespace there (created when missing), the permissions a deploy needs. */
async function preflight(s: DeploySession): Promise<void> {
  const { kube, target: t } = s;
  // Every permission the deploy needs is asked for before anything changes, the namespace included
  // (see permissions.ts); a gated deploy asked before it took the lock.
  const checking = s.options.gate || s.options.permissions ? s.options.permissions : checkPermissions(kube, 'deploy', t.namespace).catch(() => undefined);
  const [reachable, permitted] = await Promise.all([kube.reachable(10_000), checking]);
  if (!reachable) {
    throw new UserError(`cannot reach the API server of context "${t.context}"`, {
      hint: t.cluster === 'local' ? 'Start the local cluster: npx zx scripts/cluster.ts up' : 'Check the context, your credentials and the network.',
    });
  }
  if (!s.options.gate) assertPermitted(permitted ?? (await checkPermissions(kube, 'deploy', t.namespace)), t);
  if (await ensureNamespace(kube, t.namespace, (m) => s.ui.info(m))) s.ui.info(`created namespace ${t.namespace} (Pod Security: restricted)`);
}

/** Not gated: the preflight, the diff of deploy.ts's render and the confirmation come before the lock. Sets `diff`. */
async function reviewBeforeLock(s: DeploySession): Promise<void> {
  const t = s.target;
  await s.ui.step(`preflight: ${t.cluster} (context ${t.context}, namespace ${t.namespace})`, () => preflight(s));
  s.diff = await showDiff(s.plan, s.kube, s.ui, s.options.manifest);
  await confirmProtected(s.plan, s.ui, s.options.yes);
}

/**
 * From the lock on, Ctrl-C and SIGTERM no longer kill the deploy mid-write: see settleInterrupted.
 * Gated, helm starts before the lock is even asked for: its start-up, release reads and render overlap
 * with the lock, the validation and the preflight. It cannot store or apply anything before the gate
 * says ok, which happens only under the lock, once the release is found as it was when helm started
 * (otherwise that helm is refused and a new one renders).
 */
async function deployUnderGuard(s: DeploySession): Promise<DeployOutcome> {
  const t = s.target;
  s.guard.install();
  try {
    if (s.options.gate) {
      // The permissions are asked while helm starts, and answered before the lock is taken.
      const permitted = checkPermissions(s.kube, 'deploy', t.namespace);
      permitted.catch(() => undefined);
      await startGatedHelm(s);
      assertPermitted(await permitted, t);
      s.validation = s.options.gate.validate();
      s.validation.catch(() => undefined);
    }
    const lock = await s.ui.step('take the deploy lock', () =>
      acquireLock(s.kube, { ...s.plan.lock, cluster: t.cluster, reason: `deploy ${t.release} to ${t.cluster}`, waitForOrphansMs: 120_000, onWait: (m) => s.ui.info(m) }),
    );
    if (lock.tookOverFrom) {
      const why = lock.tookOverBecause === 'holder-gone' ? 'none of its processes is alive on this host' : 'it was not renewed in time: its holder is gone';
      s.ui.info(`took over the deploy lock from ${lock.tookOverFrom} (${why})`);
    }
    return await keepLock(s.kube, lock, (held, keeper) => (s.locked(held, keeper), deployUnderLock(s)));
  } catch (e) {
    // A signal that killed a kubectl call while taking the lock: the lock was not (or no longer) ours to keep.
    if (s.guard.interrupted && !(e instanceof UserError && e.exitCode === EXIT_INTERRUPTED)) {
      throw new UserError(`deploy of ${t.release} to ${t.cluster} interrupted by ${s.guard.signalName} before anything was applied`, { exitCode: EXIT_INTERRUPTED });
    }
    throw e;
  } finally {
    await closeGate(s);
    s.guard.dispose();
  }
}

/** Under the lock: review helm's render (gated), keep an unchanged revision, or apply the upgrade. */
async function deployUnderLock(s: DeploySession): Promise<DeployOutcome> {
  s.before = await releaseStatus(s.plan, s.kube);
  if (s.guard.interrupted) return settleInterrupt(s);
  if ((s.before && PENDING.test(s.before.info.status)) || s.lock?.tookOverFrom) await recoverInterrupted(s, s.before);
  if (s.guard.interrupted) return settleInterrupt(s);
  if (s.options.gate && (await reviewGatedRender(s, s.options.gate)) === 'interrupted') return settleInterrupt(s);
  const kept = await keepIfUnchanged(s);
  if (kept) return kept;
  if (s.guard.interrupted) return settleInterrupt(s);
  if (!s.approved && !(await beginApplying(s))) return settleInterrupt(s);
  return applyUpgrade(s);
}

/** Starts `helm upgrade --install` (behind `gate` when given). */
function startHelm(s: DeploySession, gate?: RenderGate): HelmRun {
  s.podWatch.start();
  // Own process group: a terminal Ctrl-C does not reach helm; on an interrupt it gets SIGTERM
  // (helm then cancels and, with rollback-on-failure/--atomic, rolls back), SIGKILL 90s later.
  const result = s.plan.helm.run([...s.plan.upgradeArgs, ...(gate?.helmArgs ?? [])], {
    input: s.plan.overridesYaml,
    env: gate?.env ?? {},
    timeoutMs: (s.plan.timeoutSeconds + 300) * 1000,
    detached: true,
    signal: s.guard.signal,
    killAfterMs: 90_000,
    // Should deploy.ts itself die (SIGKILL, OOM), helm is told to stop and roll back too.
    parentDeathSignal: 'SIGTERM',
    onSpawn: (pid) => s.helmStarted(pid),
  });
  result.finally(() => s.podWatch.stop()).catch(() => undefined);
  if (gate) result.finally(() => gate.cancel()).catch(() => undefined);
  return { result, gate };
}

/** helm upgrade behind a new render gate: it reads the release and renders, then waits for a verdict. Sets `helm`. */
async function startGatedHelm(s: DeploySession): Promise<void> {
  s.helm = startHelm(s, await RenderGate.open(s.plan.helm));
}

/** The running gated helm and its gate. */
function gatedHelm(s: DeploySession): { result: Promise<RunResult>; gate: RenderGate } {
  const run = s.helm;
  if (!run?.gate) throw new Error('internal: the gated helm was not started');
  return { result: run.result, gate: run.gate };
}

/** A helm still waiting at the gate (the deploy stopped on an error) is told to stop, never left hanging. */
async function closeGate(s: DeploySession): Promise<void> {
  const gate = s.helm?.gate;
  if (!gate) return;
  if (gate.pending) await gate.refuse('refused by deploy.ts: the deploy stopped before applying').catch(() => undefined);
  await s.helm?.result.catch(() => undefined);
  await gate.close();
}

/**
 * Gated: helm hands its render to the gate; the validation, the diff and the confirmation happen on
 * exactly that render while helm waits. Nothing is stored or applied until the gate says ok. Sets
 * `manifest` and `diff`; 'interrupted' when a signal came in meanwhile.
 */
async function reviewGatedRender(s: DeploySession, gated: NonNullable<DeployOptions['gate']>): Promise<'interrupted' | undefined> {
  const t = s.target;
  const before = s.before;
  if (!before) throw new UserError(`release ${t.release} is no longer installed in ${t.namespace}; nothing was changed`, { hint: 'Deploy again (a first install is not gated).' });
  if (!s.helm) await startGatedHelm(s);
  else if (!sameRevision(before, gated.release)) await renderAgain(s, before);
  s.stage = 'rendering (helm) and validating';
  const rendered = await validatedRender(s);
  if (s.guard.interrupted) return 'interrupted';
  s.manifest = rendered;
  if (rendered === undefined) return undefined;
  // Other values than the deployed revision's (or --always-upgrade) mean an upgrade whatever the
  // diff shows; with nothing to ask either, helm applies now and the diff of its render is worked
  // out and shown meanwhile.
  const upgradeAnyway = s.options.alwaysUpgrade || (s.options.values !== undefined && valuesDiffer(before, s.options.values));
  if (!upgradeAnyway || (t.protected && !s.options.yes)) return confirmRender(s, rendered, before);
  s.ui.info(`upgrading: ${s.options.alwaysUpgrade ? '--always-upgrade' : `the values differ from revision ${before.version}'s`} (the diff of helm's render follows while it applies)`);
  if (!(await beginApplying(s))) return 'interrupted';
  // helm is applying: a diff that cannot be shown is a warning, not the deploy's failure.
  s.diff = await showDiff(s.plan, s.kube, s.ui, rendered, before).catch((e: Error) => void s.warnings.push(`no diff: ${e.message}`));
  return undefined;
}

/** The release changed after helm read it (another deploy, a rollback): that helm would upgrade from a stale revision. */
async function renderAgain(s: DeploySession, now: HelmRelease): Promise<void> {
  s.ui.info(`release ${s.target.release} changed while the deploy waited for the lock (now revision ${now.version}, ${now.info.status}): helm renders it again`);
  const stale = gatedHelm(s);
  await stale.gate.refuse('refused by deploy.ts: the release changed before the deploy lock was taken');
  await stale.result.catch(() => undefined);
  await stale.gate.close();
  await startGatedHelm(s);
}

/** helm's render once it reaches the gate (undefined when helm stopped first), validated with the preflight; refused at the gate when either fails. */
async function validatedRender(s: DeploySession): Promise<string | undefined> {
  const { result, gate } = gatedHelm(s);
  const checked = preflight(s).then(
    () => undefined,
    (e: unknown) => e,
  );
  void import('diff');
  return s.ui.step(`helm renders the chart; validate that render; preflight (context ${s.target.context}, namespace ${s.target.namespace})`, async () => {
    const [m, invalid, failed] = await Promise.all([Promise.race([gate.manifest(), result.then(() => undefined)]), s.validation, checked]);
    const stop = invalid ?? failed;
    if (stop) {
      await gate.refuse(`refused by deploy.ts: ${stop instanceof Error ? stop.message : String(stop)}`);
      throw stop;
    }
    return m;
  });
}

/** The diff of helm's render, then the confirmation (a protected cluster); a refusal stops helm at the gate. Sets `diff`. */
async function confirmRender(s: DeploySession, rendered: string, before: HelmRelease): Promise<'interrupted' | undefined> {
  s.stage = 'showing the diff';
  s.diff = await showDiff(s.plan, s.kube, s.ui, rendered, before);
  // A signal while the question waits (Ctrl-C at it, a SIGTERM) stops helm (the guard) and counts as "no".
  const aborted = new Promise<boolean>((r) => s.guard.signal.addEventListener('abort', () => r(false), { once: true }));
  const confirmed = await Promise.race([confirmProtected(s.plan, s.ui, s.options.yes, false), aborted]);
  if (s.guard.interrupted) return 'interrupted';
  if (confirmed) return undefined;
  await gatedHelm(s).gate.refuse('refused by deploy.ts: the deploy was not confirmed');
  throw new UserError(`deploy to protected cluster ${s.target.cluster} not confirmed; nothing was changed`, { hint: 'Pass --yes to confirm without a terminal.' });
}

/**
 * From here helm may apply: recorded as `started` first, then the gate (if any) says ok. False when
 * an interrupt came in meanwhile (the caller settles it; nothing was approved). Sets `approved`.
 */
async function beginApplying(s: DeploySession): Promise<boolean> {
  s.stage = 'applying the release (helm upgrade --install)';
  await recordAudit(s, 'started');
  if (s.guard.interrupted) return false;
  const gate = s.helm?.gate;
  if (gate && s.manifest !== undefined) await gate.approve();
  s.approved = true;
  return true;
}

/** What the no-change check needs, when the diff found nothing against the deployed revision and nothing forces an upgrade. */
function unchangedCandidate(s: DeploySession): { before: HelmRelease; manifest: string; values: Record<string, unknown> } | undefined {
  const { before, manifest, diff } = s;
  const values = s.options.values;
  if (s.approved || s.options.alwaysUpgrade || !diff || manifest === undefined || values === undefined || !before) return undefined;
  return !diff.changed && diff.revision === before.version ? { before, manifest, values } : undefined;
}

/** Nothing to change (same values and objects, no edits outside helm): the deployed revision is kept and verified. */
async function keepIfUnchanged(s: DeploySession): Promise<DeployOutcome | undefined> {
  const c = unchangedCandidate(s);
  if (!c) return undefined;
  s.stage = 'checking whether anything changed';
  const unchanged = await s.ui.step('check for edits made outside helm', () => unchangedSince(c.before, c.manifest, c.values, s.kube, s.target.namespace));
  if (!unchanged.same) {
    s.ui.info(`upgrading anyway: ${unchanged.why}`);
    return undefined;
  }
  if (s.helm?.gate) {
    await s.helm.gate.refuse('nothing to change: deploy.ts keeps the deployed revision');
    await s.helm.result;
  }
  s.stage = 'verifying the workloads';
  const verified = await s.ui.step('verify the workloads', () => verifyRelease(s.plan, s.kube));
  const chart = c.before.chart?.metadata ?? s.plan.chart;
  const recorded = await recordAudit(s, 'unchanged', { revision: c.before.version, chart: chart?.version, app: chart?.appVersion });
  return {
    result: 'unchanged',
    audit: recorded,
    revision: c.before.version,
    previousRevision: c.before.version,
    chartVersion: chart?.version,
    appVersion: chart?.appVersion,
    workloads: verified.workloads,
    diff: { firstInstall: false, changed: false, objects: [] },
    warnings: s.warnings,
    ms: s.ms,
  };
}

/** helm's result: started here unless the gated helm runs already; a failed run is returned, not thrown. */
async function runUpgrade(s: DeploySession): Promise<RunResult> {
  return s.ui
    .step(`helm upgrade --install (timeout ${s.plan.timeoutSeconds}s, rollback on failure)`, async () => {
      if (!s.helm) s.helm = startHelm(s);
      const r = await s.helm.result;
      if (r.exitCode !== 0) throw new Error(s.guard.interrupted ? 'interrupted' : 'helm upgrade failed');
      return r;
    })
    .catch(async (e: unknown) => {
      const r = s.helm ? await s.helm.result : undefined;
      if (!r || r.exitCode === 0) throw e;
      return r;
    });
}

/** helm upgrade, then the release read back and the workloads verified (the two at once), audit. */
async function applyUpgrade(s: DeploySession): Promise<DeployOutcome> {
  const upgrade = await runUpgrade(s);
  if (s.guard.interrupted) return settleInterrupt(s);
  s.stage = 'checking the release';
  const afterPromise = releaseStatus(s.plan, s.kube);
  // Started with the status read when helm succeeded: one round trip less on the common path.
  const verifying = upgrade.exitCode === 0 ? s.ui.step('verify the workloads', () => verifyRelease(s.plan, s.kube)) : undefined;
  verifying?.catch(() => undefined);
  const after = await afterPromise;
  if (!verifying) throw await upgradeFailed(s, upgrade, after);
  s.stage = 'verifying the workloads';
  let verified: VerifyResult;
  try {
    verified = await verifying;
  } catch (e) {
    // A terminal Ctrl-C also kills the kubectl we were waiting on: that is the interrupt, not a failure.
    if (s.guard.interrupted) return settleInterrupt(s);
    throw e;
  }
  if (s.guard.interrupted) return settleInterrupt(s);
  // helm 4's status has no chart metadata: the deployed chart is the one in chartDir.
  const chart = after?.chart?.metadata ?? s.plan.chart;
  const recorded = await recordAudit(s, 'succeeded', { revision: after?.version, chart: chart?.version, app: chart?.appVersion });
  return {
    result: 'succeeded',
    audit: recorded,
    revision: after?.version,
    previousRevision: s.before?.version,
    chartVersion: chart?.version,
    appVersion: chart?.appVersion,
    workloads: verified.workloads,
    diff: { firstInstall: s.diff?.firstInstall ?? false, changed: s.diff?.changed ?? true, objects: s.diff?.objects ?? [] },
    warnings: s.warnings,
    ms: s.ms,
  };
}

/** A failed upgrade, recorded (rolled back, or failed) and explained with the pods and events that say why. */
async function upgradeFailed(s: DeploySession, upgrade: RunResult, after: HelmRelease | undefined): Promise<UserError> {
  const { target: t, before } = s;
  const lastUnready = await s.podWatch.settled();
  const rolledBack = Boolean(before && after && after.version > before.version && after.info.status === 'deployed');
  const events = (await s.kube.events(t.namespace, { limit: 200 }).catch(() => [])).filter((e) => e.type === 'Warning').slice(-8);
  await recordAudit(s, rolledBack ? 'rolled-back' : 'failed', { error: redact(upgrade.stderr.trim().split('\n').slice(-3).join(' ')) });
  const outcome = rolledBack ? ` and was rolled back to the previous revision (now revision ${after?.version})` : before ? '' : '; the failed first install was removed';
  return new UserError(
    `the upgrade of ${t.release} on ${t.cluster} failed${outcome}:\n${redact(upgrade.stderr.trim().split('\n').slice(-6).join('\n'))}` +
      (lastUnready.length ? `\nPods not ready while helm waited:\n${lastUnready.map((p) => `  ${p}`).join('\n')}` : '') +
      (events.length ? `\nRecent warnings:\n${events.map((e) => `  ${e.object}: ${e.reason}: ${e.message}`).join('\n')}` : ''),
    { hint: failureHint(s, upgrade), details: { rolledBack, revision: after?.version, unreadyPods: lastUnready } },
  );
}

/**
 * Revisions left pending-* below the newest one (their deploy stopped and the release moved on, e.g.
 * helm rolled back by itself when its deploy died) are marked failed, as helm marks a failed
 * upgrade, so that `helm history` shows no operation still in progress. Returns the revisions marked.
 */
async function settleStalePending(s: DeploySession): Promise<number[]> {
  const t = s.target;
  const revisions = await releaseRevisions(s.kube, t.namespace, t.release).catch(() => []);
  const newest = revisions.at(-1)?.version ?? 0;
  const marked: number[] = [];
  for (const r of revisions.filter((x) => x.version < newest && PENDING.test(x.status))) {
    const why = `Interrupted: the deploy that applied it stopped before it completed; revision ${newest} followed`;
    if (await markRevisionFailed(s.kube, t.namespace, t.release, r.version, why).catch(() => false)) marked.push(r.version);
  }
  return marked;
}

/** The lock was taken over from a holder that is gone, and the release needs no repair: the audit says what was found. */
async function noteTakeover(s: DeploySession, found: HelmRelease | undefined): Promise<void> {
  const state = found
    ? `release ${s.target.release} is ${found.info.status} at revision ${found.version}${found.info.description ? ` (${found.info.description})` : ''}`
    : `release ${s.target.release} is not installed`;
  const marked = await settleStalePending(s);
  const settled = marked.length ? `; interrupted revision ${marked.join(', ')} marked failed` : '';
  s.ui.info(`the previous holder of the lock is gone; ${state}: nothing to repair${settled}`);
  await recordAudit(s, 'recovered', {
    action: `none needed${settled}`,
    found: state,
    lockTakenOverFrom: s.lock?.tookOverFrom,
    because: s.lock?.tookOverBecause,
    ...(found ? { revision: found.version, status: found.info.status } : {}),
  });
}

/** Where an operator goes next after a failed upgrade: never a command that cannot help. */
function failureHint(s: DeploySession, upgrade: RunResult): string {
  const t = s.target;
  if (/another operation \(install\/upgrade\/rollback\) is in progress/.test(upgrade.stderr)) {
    return `A helm operation on ${t.release} started outside deploy.ts (it holds no deploy lock) is still running or died: npx zx scripts/runbook.ts status --cluster ${t.cluster} --namespace ${t.namespace} names it; once it is gone, deploy again (deploy.ts recovers a pending release under the lock).`;
  }
  return `Inspect: npx zx scripts/runbook.ts diagnose --cluster ${t.cluster}`;
}

/** Records an audit entry; resolves with what the outcome reports of it (undefined when it could not be written). */
function recordAudit(s: DeploySession, result: AuditResult, extra: Record<string, unknown> = {}): Promise<DeployOutcome['audit']> {
  const { target: t, plan, before, diff, digest } = s;
  const images = s.manifest !== undefined ? workloadImages(s.manifest, t.namespace) : undefined;
  return appendAudit(s.kube, {
    time: new Date().toISOString(),
    actor: plan.lock.holder,
    action: 'deploy',
    result,
    cluster: t.cluster,
    namespace: t.namespace,
    release: t.release,
    summary: `${t.release} ${before ? `revision ${before.version}` : '(new)'} -> ${result} (values ${digest})`,
    durationMs: s.ms,
    // A deploy that applies while its diff is worked out records the count at the end only.
    details: { helm: plan.helm.major, valuesDigest: digest, ...(images ? { images } : {}), ...(diff ? { changedObjects: diff.objects.length } : {}), ...extra },
  }).then(
    (entry) => ({ key: entry.key, valuesDigest: digest, ...(images ? { images } : {}) }),
    (e: Error) => void s.warnings.push(`audit entry not written: ${e.message}`),
  );
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
 * After an interrupt: helm first (a render waiting at the gate is refused, an upgrade is let finish
 * its cancel and rollback), then a release left `pending-*` (or `failed` by the cancel) goes back to
 * its last deployed revision and a failed first install is removed. Then an audit entry
 * `interrupted` and exit 130; keepLock releases the Lease on the way out.
 */
async function settleInterrupt(s: DeploySession): Promise<never> {
  const { target: t, guard } = s;
  if (s.helm?.gate?.pending) await s.helm.gate.refuse('refused by deploy.ts: interrupted').catch(() => undefined);
  await s.helm?.result.catch(() => undefined);
  s.stage = 'checking the release after the interrupt';
  const { action, left } = await undoInterrupted(s);
  const final = await releaseStatus(s.plan).catch(() => undefined);
  s.stage = 'recording the interrupt and releasing the lock';
  await recordAudit(s, 'interrupted', { signal: guard.signalName, action, revision: final?.version, status: final?.info.status });
  const state = final ? `release ${t.release} is ${final.info.status} at revision ${final.version}` : `release ${t.release} is not installed`;
  throw new UserError(
    `deploy of ${t.release} to ${t.cluster} interrupted by ${guard.signalName}: ${action === 'none' ? 'nothing to undo' : action}; ${state}; the deploy lock is released.${left ? `\nLeft to do: ${left}` : ''}`,
    {
      exitCode: EXIT_INTERRUPTED,
      hint: left ? 'Run the command above, then deploy again.' : 'Deploy again when ready.',
      details: { interrupted: true, signal: guard.signalName, action, revision: final?.version, status: final?.info.status },
    },
  );
}

/** Brings a release the interrupt left half-applied back: what was done, and what is left to do by hand. */
async function undoInterrupted(s: DeploySession): Promise<{ action: string; left: string }> {
  const { target: t, plan, before } = s;
  const now = await releaseStatus(plan).catch(() => undefined);
  if (now && now.version !== before?.version && now.info.status === 'deployed') {
    return { action: before && now.info.description?.startsWith('Rollback') ? `helm rolled back itself (now revision ${now.version})` : `revision ${now.version} was already applied`, left: '' };
  }
  if (!now || !(PENDING.test(now.info.status) || (now.info.status === 'failed' && now.version !== before?.version))) return { action: 'none', left: '' };
  return repairRelease(s, now);
}

/**
 * A release left half-applied (pending-*, or failed by a cancel) goes back to its last deployed
 * revision; a first install that never completed is uninstalled (its Secrets marked
 * `helm.sh/resource-policy: keep` and the StatefulSets' volumes stay: no data is lost).
 */
async function repairRelease(s: DeploySession, now: HelmRelease): Promise<{ action: string; left: string }> {
  const { target: t, plan } = s;
  const history = await releaseHistory(plan).catch(() => []);
  const good = [...history].reverse().find((h) => h.status === 'deployed' || h.status === 'superseded');
  const lastDeployed = history.filter((h) => h.revision < now.version && ['deployed', 'superseded'].includes(h.status)).at(-1) ?? good;
  const lastLine = (r: RunResult) => redact(r.stderr.trim().split('\n').at(-1) ?? '');
  if (lastDeployed) {
    s.stage = `rolling ${t.release} back to revision ${lastDeployed.revision}`;
    const r = await plan.helm.run(plan.helm.rollbackArgs({ release: t.release, revision: lastDeployed.revision, timeout: '5m', wait: false }), { timeoutMs: 6 * 60_000 });
    if (r.exitCode !== 0)
      return {
        action: `rolled back to revision ${lastDeployed.revision}`,
        left: `the rollback failed (${lastLine(r)}); run: npx zx scripts/runbook.ts rollback --cluster ${t.cluster} --to ${lastDeployed.revision}`,
      };
    const marked = await settleStalePending(s);
    return { action: `rolled back to revision ${lastDeployed.revision}${marked.length ? ` (revision ${marked.join(', ')} marked failed)` : ''}`, left: '' };
  }
  s.stage = `removing the interrupted first install of ${t.release}`;
  const r = await plan.helm.run(plan.helm.uninstallArgs({ release: t.release, timeout: '5m' }), { timeoutMs: 6 * 60_000 });
  const left = r.exitCode !== 0 ? `the uninstall failed (${lastLine(r)}); run: helm uninstall ${t.release} --namespace ${t.namespace}` : '';
  return { action: 'removed the first install that never completed (kept: its generated Secrets and the volumes)', left };
}

/**
 * Under the lock, before anything else: a release left pending-install/-upgrade/-rollback cannot be
 * in the hands of a live deploy (that one would hold the lock), so its deploy died (SIGKILL, a vanished
 * CI runner). It is repaired (repairRelease), the recovery is audited, and the requested deploy goes on.
 * A gated helm started meanwhile saw the pending release and stopped: a new one renders afterwards.
 */
async function recoverInterrupted(s: DeploySession, found: HelmRelease | undefined): Promise<void> {
  const t = s.target;
  const started = performance.now();
  if (!found || !PENDING.test(found.info.status)) return noteTakeover(s, found);
  s.stage = `recovering ${t.release}, left ${found.info.status} at revision ${found.version}`;
  if (s.helm) {
    await closeGate(s);
    s.helm = undefined;
  }
  const title = `recover ${t.release}: revision ${found.version} was left ${found.info.status} by a deploy that is gone`;
  const { action, left } = await s.ui.step(title, () => repairRelease(s, found));
  const now = await releaseStatus(s.plan, s.kube).catch(() => undefined);
  const ms = Math.round(performance.now() - started);
  const taken = s.lock?.tookOverFrom ? { lockTakenOverFrom: s.lock.tookOverFrom, because: s.lock.tookOverBecause } : {};
  await recordAudit(s, 'recovered', { interrupted: { revision: found.version, status: found.info.status }, action, revision: now?.version, status: now?.info.status, recoveryMs: ms, ...taken });
  if (left || (now && PENDING.test(now.info.status))) {
    throw new UserError(`could not recover ${t.release} (left ${found.info.status} at revision ${found.version}): ${left || `it is still ${now?.info.status}`}`, {
      hint: 'Run the command above, then deploy again.',
    });
  }
  s.ui.info(`recovered ${t.release}: ${action} in ${formatMs(ms)}; now the requested deploy`);
  s.before = now;
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

// ---------------------------------------------------------------------------------------------
// One deploy as a verb asks for it (deploy.ts for one cluster, rollout.ts per cluster of a wave):
// the request checked and resolved once, the cluster reached, the values and the render validated,
// the deployment checklist and the image check, then executeDeploy. The verbs only report. What
// belongs to other verbs' engines (the validation, the local cluster) is handed in: an engine never
// imports another verb's engine.

const IMAGE_TAG = /^[\w][\w.-]{0,127}$/;
const SECRET_KEY = /(pass(word)?|secret|token|key|credential)/i;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$/;

/** The deploy request, with deploy.ts's flag names. */
export interface DeployFlags {
  cluster?: string;
  registry?: string;
  values: string[];
  set: string[];
  'image-tag'?: string;
  'dry-run'?: boolean;
  yes?: boolean;
  timeout?: string;
  namespace?: string;
  release?: string;
  helm?: string;
  'always-upgrade'?: boolean;
  diff?: string;
  'skip-image-check'?: boolean;
}

/** What the validation engine (engines/validate.ts) reports, as far as a deploy reads it. */
export interface ValidationOutcome {
  ok: boolean;
  clusters: { steps: { step: string; findings: { message: string; key?: string; location?: string; hint?: string }[] }[] }[];
}

/** A render of the validation: the manifest and the merged values. */
export interface ValidatedRender {
  manifest: string;
  values: Record<string, unknown>;
}

/** engines/validate.ts's startValidation, as a deploy calls it. */
export type StartValidation = (options: {
  clusters: ClusterConfig[];
  prepared: Record<string, PreparedValues>;
  kubeVersions: string[];
  helm: HelmMajor;
  skip: ('kube-score' | 'lint')[];
  progress?: (note: string) => void;
}) => Promise<{ renders: ValidatedRender[]; report: Promise<ValidationOutcome> }>;

/** What a deploy needs from other verbs' engines, handed in by the verb. */
export interface DeployRunHooks {
  /** Loads the validation (the module is loaded when needed: in a gated upgrade, while helm runs). */
  validation: () => Promise<StartValidation>;
  /** The built-in local cluster: whether it runs, and starting it. */
  localCluster?: { running: () => Promise<boolean>; up: (reporter: Reporter) => Promise<void> };
  /** Asks for confirmation on a protected cluster. */
  confirm: (question: string) => Promise<boolean>;
}

/** Values of secret-looking --set keys are registered so that no output shows them. */
function registerSecretSets(sets: { path: PathSegment[]; value: unknown }[]): void {
  for (const s of sets) if (s.path.some((p) => typeof p === 'string' && SECRET_KEY.test(p)) && typeof s.value === 'string') registerSecret(s.value);
}

/** What the request asks for, checked and resolved once: the target, the helm version, the values. */
export interface DeployRun {
  flags: DeployFlags;
  reporter: Reporter;
  hooks: DeployRunHooks;
  cluster: ClusterConfig;
  target: DeployTarget;
  isLocal: boolean;
  major: HelmMajor;
  diffMode: DiffMode;
  skipImageCheck: boolean;
  /** The values files in helm's order: the cluster's layers, then --values. */
  valuesFiles: string[];
  /** Merged once: validated, compared with the deployed revision, handed to helm. */
  values: PreparedValues;
}

/** The cluster as found: reachable or not, its Kubernetes version, the installed release (read alongside). */
export interface LiveCluster {
  kube: Kube;
  reachable: boolean;
  kubeVersion: string;
  installed: Promise<HelmRelease | undefined>;
}

/** What the pre-flight found on a valid render: the checklist and the images' registries' answers. */
export interface Checked {
  checklist: CheckResult[];
  images: ImageCheckReport;
}

/** A validation of this deploy's values and render; the image check runs from the moment the images are known. */
interface Validated {
  report: ValidationOutcome;
  render?: ValidatedRender;
  images?: Promise<ImageCheckReport>;
}

/** How a deploy ended: deployed (or found unchanged), or, with --dry-run, what it would do. */
export type DeployRunResult =
  { kind: 'deployed'; outcome: DeployOutcome; checklist: CheckResult[]; images?: ImageCheckReport } | { kind: 'dry-run'; plan: DeployPlan; reachable: boolean; checked: Checked; diff?: DiffSummary };

export function resolveDeployRun(flags: DeployFlags, positionals: string[], reporter: Reporter, hooks: DeployRunHooks): DeployRun {
  if (positionals.length) throw usageError(`unexpected arguments: ${positionals.join(' ')}`, 'deploy.ts takes flags only (see --help).');
  const major = helmMajor(flags.helm);
  const diffMode = flags.diff ?? 'release';
  if (diffMode !== 'release' && diffMode !== 'live') throw usageError(`--diff "${diffMode}" is not known`, 'Use --diff release (the default) or --diff live.');
  const [cluster] = selectClusters(loadRegistry(flags.registry), { cluster: flags.cluster });
  for (const f of ['namespace', 'release'] as const) {
    const v = flags[f];
    if (v !== undefined && !DNS_LABEL.test(v))
      throw usageError(`--${f} "${v}" is not a valid name`, 'Use lower-case letters, digits and "-", at most 53 characters, starting and ending with a letter or digit.');
  }
  const tag = flags['image-tag'];
  if (tag !== undefined && !IMAGE_TAG.test(tag)) throw usageError(`--image-tag "${tag}" is not a valid image tag`, 'Use letters, digits, ".", "_" and "-" (e.g. master-7c3fd76).');
  const assignments = parseSetFlags([...flags.set, ...(tag ? ['api', 'admin', 'webui'].map((c) => `${c}.image.tag=${tag}`) : [])]);
  registerSecretSets(assignments);
  const valuesFiles = [...cluster.layers, ...flags.values];
  return {
    flags,
    reporter,
    hooks,
    cluster,
    major,
    diffMode,
    target: resolveTarget(cluster, { namespace: flags.namespace, release: flags.release }),
    isLocal: cluster.context === LOCAL_CONTEXT,
    skipImageCheck: Boolean(flags['skip-image-check']),
    valuesFiles,
    values: prepareValues(loadChartDefaults(CHART_DIR), valuesFiles, assignments),
  };
}

/**
 * Reach the cluster; the built-in one comes up on demand. Its status is only asked when the API server
 * does not answer (the status check costs more than the answer itself). An upgrade of an installed
 * release is gated (see below): the release is read alongside the checks.
 */
async function connect(run: DeployRun): Promise<LiveCluster> {
  const { target, flags, isLocal } = run;
  const kube = await connectKube({ context: target.context, kubeconfig: target.kubeconfig });
  const gateable = !flags['dry-run'] && run.diffMode === 'release' && helmStoresSecrets() && process.env.CONDUIT_DEPLOY_GATE !== 'off';
  const readInstalled = () => (gateable ? readRelease(kube, target.namespace, target.release).catch(() => undefined) : Promise.resolve(undefined));
  let installed = readInstalled();
  let [reachable, version] = await Promise.all([kube.reachable(10_000), kube.serverVersion().catch(() => undefined)]);
  const local = run.hooks.localCluster;
  if (!reachable && isLocal && local && !flags['dry-run'] && !(await local.running())) {
    run.reporter.info('The local cluster is not running: starting it (npx zx scripts/cluster.ts up).');
    await local.up(run.reporter);
    [reachable, version] = await Promise.all([kube.reachable(10_000), kube.serverVersion().catch(() => undefined)]);
    installed = readInstalled();
  }
  const liveVersion = reachable && version ? version.gitVersion.replace(/^v/, '').replace(/[-+].*$/, '') : undefined;
  const kubeVersion = liveVersion ?? (isLocal ? KUBERNETES_VERSION : run.cluster.kubeVersion ? `${run.cluster.kubeVersion}.0` : KUBERNETES_VERSION);
  return { kube, reachable, kubeVersion, installed: reachable ? installed : Promise.resolve(undefined) };
}

function planFor(run: DeployRun, helm: string): DeployPlan {
  const { flags } = run;
  return planDeploy(
    {
      target: run.target,
      chartDir: CHART_DIR,
      valuesFiles: run.valuesFiles,
      overrides: run.values.overrides,
      helmMajor: run.major,
      timeout: flags.timeout ?? '10m',
      diff: run.diffMode,
      strictlyValidated: true,
      checkImages: !run.skipImageCheck,
    },
    helm,
  );
}

/** The values (merged once, by resolveDeployRun) and the render, validated for the cluster's Kubernetes; the images' registries are asked meanwhile. */
async function validateRender(run: DeployRun, live: LiveCluster, progress?: (note: string) => void): Promise<Validated> {
  const startValidation = await run.hooks.validation();
  const { cluster, target } = run;
  const staged = await startValidation({
    clusters: [{ ...cluster, namespace: target.namespace, release: target.release }],
    prepared: { [cluster.name]: run.values },
    kubeVersions: [live.kubeVersion],
    helm: run.major,
    skip: ['kube-score', 'lint'],
    progress,
  });
  const render = staged.renders.at(-1);
  // The registries are asked as soon as the images are known, alongside the rest of the validation.
  const images =
    render && !run.skipImageCheck
      ? checkImages(workloadImageUses(render.manifest, { values: render.values, namespace: target.namespace }), { namespace: target.namespace, kube: live.reachable ? live.kube : undefined })
      : undefined;
  images?.catch(() => undefined);
  return { report: await staged.report, render, images };
}

function validationFailure(run: DeployRun, report: ValidationOutcome): UserError {
  const findings = report.clusters.flatMap((c) =>
    c.steps.flatMap((s) => s.findings.map((f) => `  ${s.step}: ${f.location ? `${f.location}: ` : ''}${f.key ? `${f.key}: ` : ''}${f.message}${f.hint ? ` (${f.hint})` : ''}`)),
  );
  return new UserError(`validation failed for ${run.cluster.name}; nothing was deployed:\n${findings.join('\n')}`, {
    hint: `Fix the values named above, then run: npx zx scripts/validate.ts --cluster ${run.cluster.name}`,
    details: report,
  });
}

/** The deployment checklist over the validated render (or, when there is one, the live render: the same objects, parsed once for the diff and drift check too). */
function runChecklist(run: DeployRun, render: ValidatedRender | undefined, manifest?: string): CheckResult[] {
  if (!render) throw new Error('validation passed without a render');
  const { cluster, reporter } = run;
  const checks = preflightChecklist(cluster.name, cluster.environment, { values: render.values, manifest: manifest ?? render.manifest });
  reporter.info(
    `deployment checklist (${cluster.environment}): ${checks.filter((c) => c.status === 'pass').length} pass, ${checks.filter((c) => c.status === 'warn').length} warn\n${formatChecklist(checks)}`,
  );
  return checks;
}

/** The registries' answers, reported; throws (UserError) when an image does not exist. */
async function imagesChecked(run: DeployRun, images: Promise<ImageCheckReport> | undefined): Promise<ImageCheckReport> {
  const report: ImageCheckReport = run.skipImageCheck
    ? { skipped: '--skip-image-check', results: [], warnings: [], ms: 0 }
    : await (images ?? Promise.reject(new Error('validation passed without a render')));
  run.reporter.info(summarizeImageCheck(report));
  for (const w of report.warnings) run.reporter.warn(w);
  const refused = imageCheckFailure(report, run.cluster.name);
  if (refused) throw refused;
  return report;
}

function deploySteps(run: DeployRun): DeploySteps {
  return Object.assign(run.reporter, { confirm: run.hooks.confirm });
}

/**
 * The checks of a gated upgrade, run on helm's own render while helm waits at the gate; what they
 * found is kept here for the final report.
 */
class GatedChecks {
  readonly run: DeployRun;
  readonly live: LiveCluster;
  found?: Checked;

  constructor(run: DeployRun, live: LiveCluster) {
    this.run = run;
    this.live = live;
  }

  /** Settles with the reason to refuse the upgrade, or undefined when it may go on. */
  async validate(): Promise<UserError | undefined> {
    const v = await validateRender(this.run, this.live);
    if (!v.report.ok) return validationFailure(this.run, v.report);
    this.run.reporter.info(`validated the values and the rendered chart (Kubernetes ${this.live.kubeVersion})`);
    try {
      const checklist = runChecklist(this.run, v.render);
      this.found = { checklist, images: await imagesChecked(this.run, v.images) };
    } catch (e) {
      if (e instanceof UserError) return e;
      throw e;
    }
    return undefined;
  }
}

/**
 * An upgrade of an installed release is gated (see lib/gate.ts): helm starts at once and its own
 * render is validated, diffed and confirmed before it may apply anything. The validation runs from
 * then on, alongside the lock, the preflight and helm's start-up.
 */
async function gatedUpgrade(run: DeployRun, live: LiveCluster, plan: DeployPlan, installed: HelmRelease): Promise<DeployRunResult> {
  const checks = new GatedChecks(run, live);
  const outcome = await executeDeploy(plan, live.kube, deploySteps(run), {
    yes: Boolean(run.flags.yes),
    values: run.values.merged.user,
    alwaysUpgrade: run.flags['always-upgrade'],
    gate: { release: installed, validate: () => checks.validate() },
  });
  return { kind: 'deployed', outcome, checklist: checks.found?.checklist ?? [], images: checks.found?.images };
}

/**
 * Otherwise (a first install, --diff live, --dry-run): validate first; meanwhile helm renders the
 * chart on the live cluster (lookups resolve), the manifest the upgrade applies, for the diff.
 */
async function validateThenDeploy(run: DeployRun, live: LiveCluster, plan: DeployPlan): Promise<DeployRunResult> {
  const livePromise = live.reachable ? renderLive(plan) : undefined;
  livePromise?.catch(() => undefined);
  // The deploy's permissions, asked alongside: a live render that RBAC refused is told as the missing permission.
  const permitted = live.reachable && !run.flags['dry-run'] ? checkPermissions(live.kube, 'deploy', run.target.namespace) : undefined;
  permitted?.catch(() => undefined);
  const validated = await run.reporter.step(`validate the values and the rendered chart (Kubernetes ${live.kubeVersion})`, async (progress) => {
    const v = await validateRender(run, live, progress);
    if (permitted) assertPermitted(await permitted, run.target);
    return { ...v, liveManifest: v.report.ok ? await livePromise : undefined };
  });
  if (!validated.report.ok) throw validationFailure(run, validated.report);
  const checked = { checklist: runChecklist(run, validated.render, validated.liveManifest), images: await imagesChecked(run, validated.images) };
  if (run.flags['dry-run']) return { kind: 'dry-run', plan, reachable: live.reachable, checked, diff: await dryRunDiff(run, live, plan, validated.liveManifest) };
  const outcome = await executeDeploy(plan, live.kube, deploySteps(run), {
    yes: Boolean(run.flags.yes),
    permissions: await permitted,
    manifest: validated.liveManifest,
    values: run.values.merged.user,
    alwaysUpgrade: run.flags['always-upgrade'],
  });
  return { kind: 'deployed', outcome, checklist: checked.checklist, images: checked.images };
}

/** --dry-run: what the deploy would change against the cluster (undefined when it cannot be told). */
async function dryRunDiff(run: DeployRun, live: LiveCluster, plan: DeployPlan, manifest: string | undefined): Promise<DiffSummary | undefined> {
  if (!live.reachable) return undefined;
  return run.reporter
    .step(diffStepTitle(plan, manifest), () => diffRelease(plan, live.kube, manifest))
    .catch((e: Error) => {
      run.reporter.warn(`no diff: ${e.message}`);
      return undefined;
    });
}

/** The whole deploy of a resolved request: reach the cluster, validate, check, deploy (or, with --dry-run, diff). */
export async function executeDeployRun(run: DeployRun): Promise<DeployRunResult> {
  const live = await connect(run);
  const plan = planFor(run, await helmBinary(run.major));
  const installed = await live.installed;
  // A first install that never completed (pending-install) is recovered and installed afresh, like a first install.
  if (installed && installed.info.status !== 'pending-install') return gatedUpgrade(run, live, plan, installed);
  return validateThenDeploy(run, live, plan);
}
