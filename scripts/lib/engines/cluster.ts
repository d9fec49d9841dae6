// The built-in local Kubernetes: a real control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler at the pinned Kubernetes version) run as plain processes by kwokctl, with kwok
// simulating the nodes and the pod lifecycles. Admission (Pod Security included), validation,
// scheduling, controllers and rollouts are the real ones; only kubelets and containers are simulated.
// Everything listens on 127.0.0.1 and lives under <cache>/clusters/; nothing is downloaded: every
// binary comes from tools.ts, and the user's ~/.kube/config is never touched.
import fs from 'node:fs';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { CRD_SOURCES, crdFiles } from '../adapters/crds.ts';
import { UserError } from '../core/errors.ts';
import { run, type RunResult } from '../core/exec.ts';
import { explainKubeError, isKubeError, Kube, type KubeObject } from '../adapters/kube.ts';
import { LOCAL_CLUSTER_NAME, LOCAL_CONTEXT, localClusterPaths, localTarget, type LocalClusterPaths } from '../domain/target.ts';
import { KUBERNETES_VERSION, toolSpec, toolStatus, installTool } from '../adapters/tools.ts';

/** Annotation on a pod: "true" makes the simulated pod run but never become Ready (failed rollouts). */
export const NEVER_READY_ANNOTATION = 'conduit.test/never-ready';
/** Annotation on a pod of a Job or a bare pod (helm test hook): "true" makes it end Failed (exit code 1). */
export const FAIL_ANNOTATION = 'conduit.test/fail';

/** The binaries the local cluster runs, in the order they are built on a fresh machine. */
export const LOCAL_BINARIES = ['kwokctl', 'kwok', 'etcd', 'kubectl', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const;
export type LocalBinary = (typeof LOCAL_BINARIES)[number];
export type LocalBinaries = Record<LocalBinary, string>;

/** Simulated nodes: 3 workers across 2 zones, sized like a small real pool. */
export const LOCAL_NODES = [
  { name: 'conduit-worker-a1', zone: 'local-a' },
  { name: 'conduit-worker-a2', zone: 'local-a' },
  { name: 'conduit-worker-b1', zone: 'local-b' },
] as const;
export const LOCAL_REGION = 'local';
const NODE_CAPACITY = { cpu: '8', memory: '32Gi', pods: '110', 'ephemeral-storage': '100Gi' };

// ---------------------------------------------------------------------------------------------
// Simulation rules (kwok Stages). kwokctl installs kwok's default stages (nodes become Ready, pods
// become Running/Ready, pods of Jobs complete, deleted pods go away). These add, with a weight so they
// win over a default that matches the same pod (kwok picks among matching stages by weight):
// - pods annotated never-ready run but stay unready (a readiness probe that never passes);
// - pods annotated fail, of a Job or standalone, end Failed with exit code 1;
// - standalone pods that run to completion (restartPolicy Never/OnFailure, no owner: helm test hooks)
//   end Succeeded, as kwok's default only completes pods owned by a Job.

export interface StageObject {
  apiVersion: 'kwok.x-k8s.io/v1alpha1';
  kind: 'Stage';
  metadata: { name: string };
  spec: {
    resourceRef: { apiGroup: 'v1'; kind: 'Pod' };
    selector: { matchExpressions: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[] };
    weight: number;
    next: { statusTemplate: string };
  };
}

const annotation = (key: string) => `.metadata.annotations["${key}"]`;
const notDeleting = { key: '.metadata.deletionTimestamp', operator: 'DoesNotExist' as const };
const STAGE_WEIGHT = 100;

function podIpsTemplate(): string {
  return [
    '{{ with NodeIPsWith .spec.nodeName }}',
    'hostIP: {{ index . 0 | Quote }}',
    'hostIPs:',
    '{{ range . }}',
    '- ip: {{ . | Quote }}',
    '{{ end }}',
    '{{ end }}',
    '{{ with PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}',
    'podIP: {{ index . 0 | Quote }}',
    'podIPs:',
    '{{ range . }}',
    '- ip: {{ . | Quote }}',
    '{{ end }}',
    '{{ end }}',
  ].join('\n');
}

function terminatedTemplate(exitCode: number, reason: string, message: string, phase: 'Succeeded' | 'Failed'): string {
  return [
    '{{ $now := Now }}',
    'containerStatuses:',
    '{{ range .spec.containers }}',
    '- name: {{ .name | Quote }}',
    '  image: {{ .image | Quote }}',
    '  ready: false',
    '  started: false',
    '  restartCount: 0',
    '  state:',
    '    terminated:',
    `      exitCode: ${exitCode}`,
    `      reason: ${reason}`,
    `      message: ${JSON.stringify(message)}`,
    '      startedAt: {{ $now | Quote }}',
    '      finishedAt: {{ $now | Quote }}',
    '{{ end }}',
    'conditions:',
    '- type: Ready',
    '  status: "False"',
    '  reason: PodCompleted',
    '  lastTransitionTime: {{ $now | Quote }}',
    '- type: ContainersReady',
    '  status: "False"',
    '  reason: PodCompleted',
    '  lastTransitionTime: {{ $now | Quote }}',
    `phase: ${phase}`,
  ].join('\n');
}

/** Status of a pod whose containers run but never become ready (init containers completed). */
function neverReadyTemplate(): string {
  const neverReadyMessage = `simulated: readiness never passes (${NEVER_READY_ANNOTATION}=true)`;
  return [
    '{{ $now := Now }}',
    'conditions:',
    '- type: PodScheduled',
    '  status: "True"',
    '  lastTransitionTime: {{ $now | Quote }}',
    '- type: Initialized',
    '  status: "True"',
    '  lastTransitionTime: {{ $now | Quote }}',
    '- type: ContainersReady',
    '  status: "False"',
    '  reason: ContainersNotReady',
    `  message: ${JSON.stringify(neverReadyMessage)}`,
    '  lastTransitionTime: {{ $now | Quote }}',
    '- type: Ready',
    '  status: "False"',
    '  reason: ContainersNotReady',
    `  message: ${JSON.stringify(neverReadyMessage)}`,
    '  lastTransitionTime: {{ $now | Quote }}',
    'containerStatuses:',
    '{{ range .spec.containers }}',
    '- name: {{ .name | Quote }}',
    '  image: {{ .image | Quote }}',
    '  ready: false',
    '  started: true',
    '  restartCount: 0',
    '  state:',
    '    running:',
    '      startedAt: {{ $now | Quote }}',
    '{{ end }}',
    'initContainerStatuses:',
    '{{ range .spec.initContainers }}',
    '- name: {{ .name | Quote }}',
    '  image: {{ .image | Quote }}',
    '  ready: true',
    '  restartCount: 0',
    '  state:',
    '    terminated:',
    '      exitCode: 0',
    '      reason: Completed',
    '      startedAt: {{ $now | Quote }}',
    '      finishedAt: {{ $now | Quote }}',
    '{{ end }}',
    podIpsTemplate(),
    'phase: Running',
    'startTime: {{ $now | Quote }}',
  ].join('\n');
}

function podStage(name: string, matchExpressions: StageObject['spec']['selector']['matchExpressions'], statusTemplate: string): StageObject {
  return {
    apiVersion: 'kwok.x-k8s.io/v1alpha1',
    kind: 'Stage',
    metadata: { name },
    spec: { resourceRef: { apiGroup: 'v1', kind: 'Pod' }, selector: { matchExpressions }, weight: STAGE_WEIGHT, next: { statusTemplate } },
  };
}

export function simulationStages(): StageObject[] {
  const runsToCompletion = { key: '.spec.restartPolicy', operator: 'In' as const, values: ['Never', 'OnFailure'] };
  return [
    podStage(
      'conduit-pod-never-ready',
      [notDeleting, { key: '.status.phase', operator: 'In', values: ['Pending'] }, { key: annotation(NEVER_READY_ANNOTATION), operator: 'In', values: ['true'] }],
      neverReadyTemplate(),
    ),
    podStage(
      'conduit-pod-fail',
      [notDeleting, { key: '.status.phase', operator: 'In', values: ['Running'] }, runsToCompletion, { key: annotation(FAIL_ANNOTATION), operator: 'In', values: ['true'] }],
      terminatedTemplate(1, 'Error', `simulated failure (${FAIL_ANNOTATION}=true)`, 'Failed'),
    ),
    podStage(
      'conduit-pod-complete-standalone',
      [
        notDeleting,
        { key: '.status.phase', operator: 'In', values: ['Running'] },
        runsToCompletion,
        { key: '.metadata.ownerReferences', operator: 'DoesNotExist' },
        { key: annotation(FAIL_ANNOTATION), operator: 'NotIn', values: ['true'] },
        { key: annotation(NEVER_READY_ANNOTATION), operator: 'NotIn', values: ['true'] },
      ],
      terminatedTemplate(0, 'Completed', 'simulated: ran to completion', 'Succeeded'),
    ),
  ];
}

// ---------------------------------------------------------------------------------------------
// kwokctl invocation (pure: the plan that `up --dry-run` prints and unit tests check).

export function kwokctlConfiguration(bins: LocalBinaries, paths: LocalClusterPaths): object {
  return {
    apiVersion: 'config.kwok.x-k8s.io/v1alpha1',
    kind: 'KwokctlConfiguration',
    options: {
      runtime: 'binary',
      kubeVersion: `v${KUBERNETES_VERSION}`,
      kwokVersion: `v${toolSpec('kwok').version}`,
      etcdVersion: toolSpec('etcd').version,
      bindAddress: '127.0.0.1',
      securePort: true,
      kubeAuthorization: true,
      kubeAdmission: true,
      quietPull: true,
      // Real-kubelet timings (kwokctl stretches them 5x by default). The node leases kwok holds then
      // expire in 20s, so after a restart (kwok takes a new identity) the nodes are taken back at once.
      heartbeatFactor: 1,
      nodeLeaseDurationSeconds: 20,
      cacheDir: path.join(paths.workdir, 'clusters', '.kwok-cache'),
      etcdBinary: bins.etcd,
      kubeApiserverBinary: bins['kube-apiserver'],
      kubeControllerManagerBinary: bins['kube-controller-manager'],
      kubeSchedulerBinary: bins['kube-scheduler'],
      kwokControllerBinary: bins.kwok,
      kubectlBinary: bins.kubectl,
    },
    componentsPatches: [{ name: 'kwok-controller', extraArgs: [{ key: 'config', value: paths.stagesFile }] }],
  };
}

/** Environment for every kwokctl call: where clusters live and, for the verbs that read no config, every binary. */
export function kwokctlEnv(bins: LocalBinaries, paths: LocalClusterPaths): Record<string, string> {
  return {
    KWOK_WORKDIR: paths.workdir,
    KWOK_RUNTIME: 'binary',
    KWOK_KUBECTL_BINARY: bins.kubectl,
    KWOK_ETCD_BINARY: bins.etcd,
    KWOK_KUBE_APISERVER_BINARY: bins['kube-apiserver'],
    KWOK_KUBE_CONTROLLER_MANAGER_BINARY: bins['kube-controller-manager'],
    KWOK_KUBE_SCHEDULER_BINARY: bins['kube-scheduler'],
    KWOK_CONTROLLER_BINARY: bins.kwok,
  };
}

export function createClusterArgs(bins: LocalBinaries): string[] {
  return [
    '--name',
    LOCAL_CLUSTER_NAME,
    '--config',
    '-',
    'create',
    'cluster',
    '--runtime',
    'binary',
    '--kube-apiserver-binary',
    bins['kube-apiserver'],
    '--kube-controller-manager-binary',
    bins['kube-controller-manager'],
    '--kube-scheduler-binary',
    bins['kube-scheduler'],
    '--kwok-controller-binary',
    bins.kwok,
    '--etcd-binary',
    bins.etcd,
    // Do not add a context to ~/.kube/config: the cluster's own kubeconfig is used explicitly.
    '--kubeconfig',
    '',
    '--wait',
    '2m',
  ];
}

export function nodeObjects(): KubeObject[] {
  return LOCAL_NODES.map((n) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: n.name,
      annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: {
        'kubernetes.io/hostname': n.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'node-role.kubernetes.io/worker': '',
        'topology.kubernetes.io/region': LOCAL_REGION,
        'topology.kubernetes.io/zone': n.zone,
        type: 'kwok',
      },
    },
    status: { allocatable: NODE_CAPACITY, capacity: NODE_CAPACITY },
  }));
}

/** The Deployment `up` rolls out to prove the cluster schedules and runs workloads. */
export const SMOKE_NAMESPACE = 'conduit-smoke';
export function smokeObjects(): KubeObject[] {
  const labels = { 'app.kubernetes.io/name': 'smoke', 'app.kubernetes.io/managed-by': 'conduit-deploy' };
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: SMOKE_NAMESPACE, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'smoke', namespace: SMOKE_NAMESPACE, labels },
      spec: {
        replicas: 2,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            automountServiceAccountToken: false,
            securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [
              {
                name: 'smoke',
                image: 'registry.local/smoke:1',
                resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '16Mi' } },
                securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              },
            ],
          },
        },
      },
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Binaries

/** Which of the binaries still need a build (a fresh machine builds them once, then they are cached). */
export function missingBinaries(): LocalBinary[] {
  return LOCAL_BINARIES.filter((b) => {
    const st = toolStatus(toolSpec(b)).state;
    return st === 'missing';
  });
}

// ---------------------------------------------------------------------------------------------
// Running kwokctl

export async function kwokctl(bins: LocalBinaries, paths: LocalClusterPaths, args: string[], input?: string, timeoutMs = 5 * 60_000): Promise<RunResult> {
  return run(bins.kwokctl, args, { env: kwokctlEnv(bins, paths), input, timeoutMs });
}

export function clusterCreated(paths = localClusterPaths()): boolean {
  return fs.existsSync(path.join(paths.clusterDir, 'kwok.yaml'));
}

export interface ComponentState {
  name: string;
  status: string;
}

export async function componentStates(bins: LocalBinaries, paths: LocalClusterPaths): Promise<ComponentState[]> {
  const r = await kwokctl(bins, paths, ['--name', LOCAL_CLUSTER_NAME, 'get', 'components', '-o', 'wide'], undefined, 30_000);
  if (r.exitCode !== 0) return [];
  return r.stdout
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((p) => p.length >= 2)
    .map(([name, ...rest]) => ({ name, status: rest.join(' ') }));
}

/** A lock so two `up`/`down` runs on one machine do not race (directory creation is atomic). */
export async function withClusterLock<T>(paths: LocalClusterPaths, fn: () => Promise<T>, waitNote?: () => void): Promise<T> {
  fs.mkdirSync(path.dirname(paths.lockDir), { recursive: true });
  const deadline = Date.now() + 15 * 60_000;
  let noted = false;
  for (;;) {
    try {
      fs.mkdirSync(paths.lockDir);
      fs.writeFileSync(path.join(paths.lockDir, 'pid'), String(process.pid));
      break;
    } catch {
      let alive = false;
      try {
        process.kill(Number(fs.readFileSync(path.join(paths.lockDir, 'pid'), 'utf8')), 0);
        alive = true;
      } catch {
        /* holder gone, or pid not written yet */
      }
      const age = Date.now() - (fs.statSync(paths.lockDir, { throwIfNoEntry: false })?.mtimeMs ?? 0);
      if (!alive && age > 5000) {
        fs.rmSync(paths.lockDir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new UserError(`another cluster.ts run holds ${paths.lockDir}`, { hint: 'Wait for it to finish, or remove the directory if no such run exists.' });
      if (!noted) {
        waitNote?.();
        noted = true;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(paths.lockDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// CRDs

export interface CrdSetStatus {
  source: string;
  version: string;
  installed: number;
  total: number;
}

/** Names of the CustomResourceDefinitions in a manifest (other kinds, e.g. admission policies, are skipped). */
export function crdNamesIn(manifest: string): string[] {
  // A line scan instead of a YAML parse: the CRD files are megabytes, and `up` must stay fast.
  return manifest
    .split(/^---[ \t]*$/m)
    .filter((doc) => /^kind:\s*CustomResourceDefinition\s*$/m.test(doc))
    .map((doc) => /^metadata:[ \t]*\n(?:[ \t]+.*\n)*?[ \t]+name:[ \t]*["']?([^"'\s]+)/m.exec(doc)?.[1])
    .filter((n): n is string => Boolean(n));
}

/** CRD names per pinned source (read from the CRD files). */
export async function expectedCrds(): Promise<{ source: string; version: string; names: string[] }[]> {
  const out = [];
  for (const s of CRD_SOURCES) {
    const names = (await crdFiles(s)).flatMap((f) => crdNamesIn(fs.readFileSync(f, 'utf8')));
    out.push({ source: s.name, version: s.version, names });
  }
  return out;
}

export async function crdStatus(kube: Kube): Promise<CrdSetStatus[]> {
  const present = new Set((await kube.list('customresourcedefinitions.apiextensions.k8s.io')).map((c) => c.metadata.name));
  return (await expectedCrds()).map((s) => ({ source: s.source, version: s.version, installed: s.names.filter((n) => present.has(n)).length, total: s.names.length }));
}

export async function installCrds(kube: Kube, progress?: (note: string) => void): Promise<number> {
  let n = 0;
  // One server-side apply per source (the CRDs are large: client-side apply would overflow the
  // last-applied annotation); re-applying an unchanged CRD is a no-op on the server.
  for (const s of CRD_SOURCES) {
    const files = await crdFiles(s);
    progress?.(`${s.name} ${s.version}`);
    const texts = files.map((f) => fs.readFileSync(f, 'utf8'));
    await kube.applyManifest(texts.join('\n---\n'), { fieldManager: 'conduit-local-cluster', forceConflicts: true, timeoutMs: 180_000 });
    n += texts.flatMap(crdNamesIn).length;
  }
  progress?.('waiting until established');
  await kube.wait('customresourcedefinitions.apiextensions.k8s.io', 'condition=Established', { all: true, timeoutSeconds: 120 });
  return n;
}
// ---------------------------------------------------------------------------------------------
// The verbs (cluster.ts stays a thin shell around these).

export interface StepReporter {
  step<T>(title: string, fn: (progress: (note: string) => void) => Promise<T>): Promise<T>;
  info(message: string): void;
}

export interface UpResult {
  name: string;
  context: string;
  kubeconfig: string;
  alreadyRunning: boolean;
  action: 'none' | 'created' | 'started' | 'repaired';
  built: string[];
  crds: number;
  /** Milliseconds from the start of `up` (binaries present) until everything was ready (CRDs included). */
  readyMs: number;
  /** Milliseconds from the start until the API had accepted and rolled out the smoke Deployment. */
  rolloutMs?: number;
}

function yamlDocs(docs: object[]): string {
  return docs.map((d) => toYaml(d, { lineWidth: 0 })).join('---\n');
}

export interface UpPlan {
  missingBinaries: string[];
  kwokctlArgv: string[];
  kwokctlEnv: Record<string, string>;
  kwokctlConfig: string;
  stagesFile: string;
  stages: string;
  nodes: KubeObject[];
  crdSources: string[];
  smoke: KubeObject[];
}

/** What `up` would do on a machine where nothing exists yet (for --dry-run and tests). */
export function planUp(paths = localClusterPaths()): UpPlan {
  const bins = Object.fromEntries(LOCAL_BINARIES.map((b) => [b, toolStatus(toolSpec(b)).path])) as LocalBinaries;
  return {
    missingBinaries: missingBinaries(),
    kwokctlArgv: [bins.kwokctl, ...createClusterArgs(bins)],
    kwokctlEnv: kwokctlEnv(bins, paths),
    kwokctlConfig: yamlDocs([kwokctlConfiguration(bins, paths)]),
    stagesFile: paths.stagesFile,
    stages: yamlDocs(simulationStages()),
    nodes: nodeObjects(),
    crdSources: CRD_SOURCES.map((s) => `${s.name} ${s.version}`),
    smoke: smokeObjects(),
  };
}

async function pollUntil(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new UserError(`timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function kwokctlFailure(what: string, r: RunResult, paths: LocalClusterPaths): UserError {
  const tail = (r.stderr || r.stdout).trim().split('\n').slice(-15).join('\n');
  return new UserError(`${what} failed (kwokctl exited ${r.exitCode}):\n${tail}`, {
    hint: `Component logs are in ${path.join(paths.clusterDir, 'logs')}. Run \`npx zx scripts/cluster.ts down\` and \`up\` again to start from scratch.`,
  });
}

/** Build what is missing, then create (or start, or repair) the cluster; a no-op when it already runs. */
export async function upLocalCluster(reporter: StepReporter, paths = localClusterPaths()): Promise<UpResult> {
  try {
    return await bringUp(reporter, paths);
  } catch (e) {
    if (isKubeError(e)) throw explainKubeError(e, 'bringing up the local cluster', localTarget(paths));
    throw e;
  }
}

async function bringUp(reporter: StepReporter, paths: LocalClusterPaths): Promise<UpResult> {
  const built: string[] = [];
  const missing = missingBinaries();
  if (missing.length)
    reporter.info(`Installing ${missing.length} missing binar${missing.length === 1 ? 'y' : 'ies'} (official release downloads, else built from source; cached afterwards): ${missing.join(', ')}`);
  return withClusterLock(
    paths,
    async () => {
      const binaries = {} as LocalBinaries;
      for (const b of LOCAL_BINARIES) {
        if (missing.includes(b) && toolStatus(toolSpec(b)).state === 'missing') {
          const i = built.length + 1;
          binaries[b] = await reporter.step(`install ${b} ${toolSpec(b).version} (${i}/${missing.length})`, async (progress) => (await installTool(b, progress)).status.path);
          built.push(b);
        } else binaries[b] = (await installTool(b)).status.path;
      }
      const started = performance.now();
      const kube = new Kube(binaries.kubectl, localTarget(paths));
      const result = (action: UpResult['action'], crds: number): UpResult => ({
        name: LOCAL_CLUSTER_NAME,
        context: LOCAL_CONTEXT,
        kubeconfig: paths.kubeconfig,
        alreadyRunning: action === 'none',
        action,
        built,
        crds,
        readyMs: Math.round(performance.now() - started),
      });

      let action: UpResult['action'];
      if (clusterCreated(paths) && (await kube.reachable(5000))) {
        const crds = await crdStatus(kube);
        const nodes = await kube.list('nodes');
        if (crds.every((c) => c.installed === c.total) && nodes.length >= LOCAL_NODES.length) {
          return result(
            'none',
            crds.reduce((n, c) => n + c.total, 0),
          );
        }
        action = 'repaired';
      } else if (clusterCreated(paths)) {
        action = 'started';
        await reporter.step('start the stopped control plane', async () => {
          // The kwok controller reads its stage file when it starts: write the current rules first.
          fs.writeFileSync(paths.stagesFile, yamlDocs(simulationStages()));
          // Started under load a component can exit early (e.g. the API server before etcd answers):
          // `start` only starts what is stopped, so a second round completes the set.
          for (let round = 1; ; round++) {
            const r = await kwokctl(binaries, paths, ['--name', LOCAL_CLUSTER_NAME, 'start', 'cluster', '--wait', '2m']);
            if (r.exitCode !== 0 && round >= 2) throw kwokctlFailure('kwokctl start cluster', r, paths);
            const states = await componentStates(binaries, paths);
            if (r.exitCode === 0 && states.length && states.every((c) => c.status === 'Ready')) break;
            if (round >= 3)
              throw new UserError(
                `components did not start: ${states
                  .filter((c) => c.status !== 'Ready')
                  .map((c) => `${c.name} ${c.status}`)
                  .join(', ')}`,
                { hint: `See the logs in ${path.join(paths.clusterDir, 'logs')}.` },
              );
          }
        });
        await reporter.step('hand the nodes to the restarted simulator', async () => {
          // The node leases still name the previous kwok process; dropping them lets the new one take
          // the nodes over now instead of after they expire.
          await pollUntil('the API server to answer /readyz', 120_000, () => kube.reachable(5000));
          await kube.call(['delete', 'leases.coordination.k8s.io', '--all', '--wait=false'], { namespace: 'kube-node-lease' });
        });
      } else {
        action = 'created';
        await reporter.step('create the control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)', async () => {
          fs.mkdirSync(path.dirname(paths.stagesFile), { recursive: true });
          fs.writeFileSync(paths.stagesFile, yamlDocs(simulationStages()));
          const r = await kwokctl(binaries, paths, createClusterArgs(binaries), yamlDocs([kwokctlConfiguration(binaries, paths)]));
          if (r.exitCode !== 0) throw kwokctlFailure('kwokctl create cluster', r, paths);
        });
      }
      await reporter.step('wait for the API server', () => pollUntil('the API server to answer /readyz', 120_000, () => kube.reachable(5000)));
      await reporter.step(`simulated nodes (${LOCAL_NODES.length} across ${new Set(LOCAL_NODES.map((n) => n.zone)).size} zones)`, async () => {
        await kube.apply(nodeObjects(), { fieldManager: 'conduit-local-cluster', forceConflicts: true });
        await kube.wait('nodes', 'condition=Ready', { all: true, timeoutSeconds: 120 });
      });
      await reporter.step('roll out a smoke-test Deployment', async () => {
        const [ns, ...rest] = smokeObjects();
        // A smoke namespace from an earlier run may still be terminating: wait until it is gone.
        if ((await kube.get('namespace', SMOKE_NAMESPACE))?.metadata.deletionTimestamp) await kube.wait(`namespace/${SMOKE_NAMESPACE}`, 'delete', { timeoutSeconds: 120 });
        await kube.apply([ns], { fieldManager: 'conduit-local-cluster', forceConflicts: true });
        await pollUntil(`the default ServiceAccount of ${SMOKE_NAMESPACE}`, 60_000, async () => Boolean(await kube.get('serviceaccount', 'default', { namespace: SMOKE_NAMESPACE })));
        await kube.apply(rest, { fieldManager: 'conduit-local-cluster', forceConflicts: true });
        await kube.rolloutStatus('deployment/smoke', { namespace: SMOKE_NAMESPACE, timeoutSeconds: 120 });
      });
      const rolledOutMs = Math.round(performance.now() - started);
      const crdCount = await reporter.step('CustomResourceDefinitions', (progress) => installCrds(kube, progress));
      const out = { ...result(action, crdCount), rolloutMs: rolledOutMs };
      await kube.delete('namespace', SMOKE_NAMESPACE, { wait: false }).catch(() => false);
      return out;
    },
    () => reporter.info('waiting for another cluster.ts run to finish...'),
  );
}

export interface LocalClusterStatus {
  name: string;
  context: string;
  kubeconfig: string;
  created: boolean;
  running: boolean;
  version?: string;
  components: ComponentState[];
  nodes: { name: string; zone: string; ready: boolean }[];
  crds: CrdSetStatus[];
  simulation: { neverReadyAnnotation: string; failAnnotation: string };
}

export async function localClusterStatus(paths = localClusterPaths()): Promise<LocalClusterStatus> {
  const base: LocalClusterStatus = {
    name: LOCAL_CLUSTER_NAME,
    context: LOCAL_CONTEXT,
    kubeconfig: paths.kubeconfig,
    created: clusterCreated(paths),
    running: false,
    components: [],
    nodes: [],
    crds: [],
    simulation: { neverReadyAnnotation: `${NEVER_READY_ANNOTATION}=true`, failAnnotation: `${FAIL_ANNOTATION}=true` },
  };
  if (!base.created) return base;
  const kwokctlPath = toolStatus(toolSpec('kwokctl')).path;
  const kubectlPath = toolStatus(toolSpec('kubectl')).path;
  const bins = Object.fromEntries(LOCAL_BINARIES.map((b) => [b, toolStatus(toolSpec(b)).path])) as LocalBinaries;
  bins.kwokctl = kwokctlPath;
  base.components = await componentStates(bins, paths);
  const kube = new Kube(kubectlPath, localTarget(paths));
  base.running = await kube.reachable(5000);
  if (!base.running) return base;
  base.version = (await kube.serverVersion()).gitVersion;
  type NodeObj = KubeObject & { status?: { conditions?: { type: string; status: string }[] } };
  base.nodes = (await kube.list<NodeObj>('nodes')).map((n) => ({
    name: n.metadata.name,
    zone: n.metadata.labels?.['topology.kubernetes.io/zone'] ?? '',
    ready: n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
  }));
  base.crds = await crdStatus(kube);
  return base;
}

export interface DownResult {
  removed: boolean;
  paths: string[];
}

export async function downLocalCluster(reporter: StepReporter, paths = localClusterPaths()): Promise<DownResult> {
  return withClusterLock(paths, async () => {
    const leftovers = [paths.clusterDir, paths.stagesFile, path.join(paths.workdir, 'clusters', '.kwok-cache')].filter((p) => fs.existsSync(p));
    if (!leftovers.length) return { removed: false, paths: [] };
    if (clusterCreated(paths)) {
      await reporter.step('stop and delete the control plane', async () => {
        const bins = Object.fromEntries(LOCAL_BINARIES.map((b) => [b, toolStatus(toolSpec(b)).path])) as LocalBinaries;
        if (!fs.existsSync(bins.kwokctl)) bins.kwokctl = (await installTool('kwokctl')).status.path;
        const r = await kwokctl(bins, paths, ['--name', LOCAL_CLUSTER_NAME, 'delete', 'cluster', '--kubeconfig', paths.kubeconfig]);
        if (r.exitCode !== 0) throw kwokctlFailure('kwokctl delete cluster', r, paths);
      });
    }
    for (const p of leftovers) fs.rmSync(p, { recursive: true, force: true });
    return { removed: true, paths: leftovers };
  });
}
