// Every external program the toolkit uses, at a pinned version, installed on demand into a per-user
// cache outside the repository (key: tool name and version). Sources are the registries an operator
// can always reach: Go modules (built here with `go`) and Debian packages. An env var per tool points
// at a binary of the operator's own instead.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { toolError, usageError } from './errors.ts';
import { run } from './exec.ts';
import { cacheRoot, REPO_ROOT } from './paths.ts';

export type ToolSource =
  /**
   * `go install MODULE/PKG@VERSION` (modules whose go.mod has no replace/exclude; pkg '' = module root).
   * `moduleVersion` when the Go module is versioned differently from the tool (Prometheus 3.16.0 is module v0.316.0).
   */
  | { kind: 'go-install'; module: string; pkg: string; moduleVersion?: string; ldflags?: string[] }
  /** `go build PKG` inside one of our wrapper modules under tools/go/ (upstream replace/exclude). */
  | { kind: 'go-wrapper'; dir: string; pkg: string; ldflags?: string[] }
  /** A program found on PATH, installed by the system package manager. */
  | { kind: 'system'; command: string; debianPackage: string };

export interface ToolSpec {
  name: string;
  version: string;
  binary: string;
  description: string;
  source: ToolSource;
  /** Arguments that make the binary print its version (used by `tools.ts list --verify`). */
  versionArgs: string[];
}

export const KUBERNETES_VERSION = '1.36.3';
const K8S = `v${KUBERNETES_VERSION}`;
const k8sVersionFlags = ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'].flatMap((p) => [
  `-X ${p}.gitVersion=${K8S}`,
  `-X ${p}.gitMajor=1`,
  `-X ${p}.gitMinor=${KUBERNETES_VERSION.split('.')[1]}`,
  `-X ${p}.gitTreeState=clean`,
]);

// Helm 3 built with `go install` skips the release ldflags and would claim Kubernetes v1.20 as its
// default capabilities; these are the values helm's own Makefile derives from its client-go (v0.37).
const HELM3 = '3.22.0';
const HELM4 = '4.3.2';
const KWOK = '0.8.0';
const kwokVersionFlags = [`-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK}`, `-X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBERNETES_VERSION}`];
// The newest etcd 3.6 patch; Kubernetes 1.36 is tested against etcd 3.6.
const ETCD = '3.6.16';
// The OpenTelemetry Collector release of tools/go/otelcol (its go.mod pins the same release) and of
// the upstream image logs/kubernetes/ runs.
export const OTELCOL = '0.165.0';

export const TOOLS: readonly ToolSpec[] = [
  {
    name: 'helm', version: HELM4, binary: 'helm', description: 'Helm 4 (default major)', versionArgs: ['version', '--short'],
    source: { kind: 'go-install', module: 'helm.sh/helm/v4', pkg: 'cmd/helm', ldflags: [`-X helm.sh/helm/v4/internal/version.version=v${HELM4}`] },
  },
  {
    name: 'helm3', version: HELM3, binary: 'helm', description: 'Helm 3 (--helm 3)', versionArgs: ['version', '--short'],
    source: {
      kind: 'go-install', module: 'helm.sh/helm/v3', pkg: 'cmd/helm',
      ldflags: [
        `-X helm.sh/helm/v3/internal/version.version=v${HELM3}`,
        '-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1', '-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37',
        '-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1', '-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37',
      ],
    },
  },
  {
    name: 'helm-docs', version: '1.14.2', binary: 'helm-docs', description: 'chart README generator', versionArgs: ['--version'],
    source: { kind: 'go-install', module: 'github.com/norwoodj/helm-docs', pkg: 'cmd/helm-docs', ldflags: ['-X main.version=1.14.2'] },
  },
  {
    name: 'kubeconform', version: '0.7.0', binary: 'kubeconform', description: 'offline Kubernetes schema validation', versionArgs: ['-v'],
    source: { kind: 'go-install', module: 'github.com/yannh/kubeconform', pkg: 'cmd/kubeconform', ldflags: ['-X main.version=v0.7.0'] },
  },
  {
    // kube-linter's module host (golang.stackrox.io) is not served by the Go module proxy here;
    // kube-score covers the same ground (security contexts, probes, PDBs, network policies).
    name: 'kube-score', version: '1.20.0', binary: 'kube-score', description: 'manifest best-practice linter', versionArgs: ['version'],
    source: { kind: 'go-install', module: 'github.com/zegl/kube-score', pkg: 'cmd/kube-score', ldflags: ['-X main.version=1.20.0'] },
  },
  {
    name: 'promtool', version: '3.16.0', binary: 'promtool', description: 'Prometheus rule checks and unit tests', versionArgs: ['--version'],
    source: {
      // Prometheus tags its Go module v0.3XX.Y for release 3.XX.Y; that go.mod has no replace/exclude.
      kind: 'go-install', module: 'github.com/prometheus/prometheus', pkg: 'cmd/promtool', moduleVersion: 'v0.316.0',
      ldflags: ['-X github.com/prometheus/common/version.Version=3.16.0'],
    },
  },
  {
    // kwok simulates nodes and pod lifecycles for the local cluster; KubeVersion is what kwokctl
    // assumes for the control plane it runs (the binaries below), so it names the same release.
    name: 'kwok', version: KWOK, binary: 'kwok', description: 'kwok node/pod simulator (local cluster)', versionArgs: ['--version'],
    source: { kind: 'go-install', module: 'sigs.k8s.io/kwok', pkg: 'cmd/kwok', ldflags: kwokVersionFlags },
  },
  {
    name: 'kwokctl', version: KWOK, binary: 'kwokctl', description: 'kwok cluster manager (local cluster)', versionArgs: ['--version'],
    source: { kind: 'go-install', module: 'sigs.k8s.io/kwok', pkg: 'cmd/kwokctl', ldflags: kwokVersionFlags },
  },
  {
    // etcd's server module replaces its sibling modules with local paths: built from a wrapper module.
    name: 'etcd', version: ETCD, binary: 'etcd', description: 'etcd (local cluster storage)', versionArgs: ['--version'],
    source: { kind: 'go-wrapper', dir: 'etcd', pkg: 'go.etcd.io/etcd/server/v3', ldflags: [`-X go.etcd.io/etcd/api/v3/version.GitSHA=v${ETCD}`] },
  },
  {
    // S3-compatible server for the backup tests (`rclone serve s3`) and the uploader of the in-cluster
    // backup job (the public rclone/rclone image runs the same CLI). Debian's rclone is too old for serve s3.
    name: 'rclone', version: '1.76.0', binary: 'rclone', description: 'S3 client and S3-compatible test server', versionArgs: ['version'],
    source: { kind: 'go-install', module: 'github.com/rclone/rclone', pkg: '', ldflags: ['-X github.com/rclone/rclone/fs.Version=v1.76.0'] },
  },
  {
    // The log pipeline's collector (logs/otelcol/): `validate` checks the shipped configuration and
    // the e2e test runs it. No upstream distribution installs with `go install`, so a wrapper module
    // of ours assembles only the components the pipeline uses (core v0.165.0, contrib v0.165.0).
    name: 'otelcol', version: OTELCOL, binary: 'otelcol', description: 'OpenTelemetry Collector (log pipeline)', versionArgs: ['--version'],
    source: { kind: 'go-wrapper', dir: 'otelcol', pkg: '.', ldflags: [`-X main.version=${OTELCOL}`] },
  },
  ...['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl'].map((bin): ToolSpec => ({
    name: bin, version: KUBERNETES_VERSION, binary: bin, description: `Kubernetes ${bin} (local cluster)`, versionArgs: bin === 'kubectl' ? ['version', '--client'] : ['--version'],
    source: { kind: 'go-wrapper', dir: 'kubernetes', pkg: `k8s.io/kubernetes/cmd/${bin}`, ldflags: k8sVersionFlags },
  })),
];

/** Tool names as typed by users, e.g. for `tools.ts install helm helm3`. */
export function toolNames(): string[] {
  return TOOLS.map((t) => t.name);
}

export function toolSpec(name: string): ToolSpec {
  const spec = TOOLS.find((t) => t.name === name);
  if (!spec) throw usageError(`unknown tool "${name}"`, `Known tools: ${toolNames().join(', ')}.`);
  return spec;
}

/** CONDUIT_TOOL_<NAME>: a binary of the operator's own, used instead of the pinned build. */
export function overrideEnvVar(name: string): string {
  return `CONDUIT_TOOL_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

export function toolsDir(): string {
  return path.join(cacheRoot(), 'tools');
}

export function installedPath(spec: ToolSpec): string {
  return path.join(toolsDir(), spec.name, spec.version, spec.binary);
}

export type ToolState = 'installed' | 'missing' | 'override' | 'override-missing' | 'system' | 'system-missing';

export interface ToolStatus {
  name: string;
  version: string;
  path: string;
  state: ToolState;
  description: string;
}

export function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(command: string): string | undefined {
  return (process.env.PATH ?? '').split(path.delimiter).map((dir) => path.join(dir, command)).find(isExecutable);
}

export function toolStatus(spec: ToolSpec): ToolStatus {
  const base = { name: spec.name, version: spec.version, description: spec.description };
  const override = process.env[overrideEnvVar(spec.name)];
  if (override) return { ...base, path: override, state: fs.existsSync(override) ? 'override' : 'override-missing' };
  if (spec.source.kind === 'system') {
    const found = onPath(spec.source.command);
    return { ...base, path: found ?? spec.source.command, state: found ? 'system' : 'system-missing' };
  }
  const p = installedPath(spec);
  return { ...base, path: p, state: fs.existsSync(p) ? 'installed' : 'missing' };
}

export function howToInstall(spec: ToolSpec): string {
  const src = spec.source;
  if (src.kind === 'system') return `Install it with: apt-get install ${src.debianPackage} (or set ${overrideEnvVar(spec.name)} to its path).`;
  return `Run: npx zx scripts/tools.ts install ${spec.name} (needs Go >= 1.26 and the Go module proxy), or set ${overrideEnvVar(spec.name)} to a ${spec.name} ${spec.version} binary.`;
}

// One install at a time per tool and version, across processes (tests run in parallel).
async function withInstallLock<T>(spec: ToolSpec, fn: () => Promise<T>): Promise<T> {
  const lock = path.join(toolsDir(), spec.name, `${spec.version}.lock`);
  fs.mkdirSync(path.dirname(lock), { recursive: true });
  const deadline = Date.now() + 60 * 60_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      let holderAlive = false;
      try {
        const pid = Number(fs.readFileSync(path.join(lock, 'pid'), 'utf8'));
        process.kill(pid, 0);
        holderAlive = true;
      } catch {
        /* no pid yet, or holder gone */
      }
      if (!holderAlive && Date.now() - fs.statSync(lock, { throwIfNoEntry: false })!?.mtimeMs > 5000) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw toolError(`timed out waiting for another install of ${spec.name} (${lock})`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

async function goBuild(spec: ToolSpec, dest: string, progress?: (note: string) => void): Promise<void> {
  const src = spec.source;
  if (src.kind === 'system') throw new Error('not a Go tool');
  const goBin = process.env.CONDUIT_GO ?? onPath('go');
  if (!goBin) throw toolError(`cannot install ${spec.name}: the Go toolchain is not on PATH`, 'Install Go >= 1.26, or set ' + overrideEnvVar(spec.name) + ' to an existing binary.');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `conduit-tool-${spec.name}-`));
  const ldflags = ['-s', '-w', ...(src.ldflags ?? [])].join(' ');
  const env = { CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false' };
  try {
    let r;
    if (src.kind === 'go-install') {
      // An empty pkg means the main package sits at the module root (rclone).
      const target = `${src.module}${src.pkg ? `/${src.pkg}` : ''}@${src.moduleVersion ?? `v${spec.version}`}`;
      progress?.(`go install ${target}`);
      r = await run(goBin, ['install', '-trimpath', '-ldflags', ldflags, target], { env: { ...env, GOBIN: tmp } });
    } else {
      const dir = path.join(REPO_ROOT, 'tools', 'go', src.dir);
      progress?.(`go build ${src.pkg} (module tools/go/${src.dir})`);
      r = await run(goBin, ['build', '-trimpath', '-ldflags', ldflags, '-o', path.join(tmp, spec.binary), src.pkg], { cwd: dir, env });
    }
    if (r.exitCode !== 0) {
      throw toolError(`building ${spec.name} ${spec.version} failed:\n${(r.stderr || r.stdout).trim().split('\n').slice(-12).join('\n')}`, howToInstall(spec));
    }
    const built = path.join(tmp, spec.binary);
    if (!fs.existsSync(built)) throw toolError(`building ${spec.name} produced no ${spec.binary} binary`, howToInstall(spec));
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    // Copy then rename, so a reader never sees a half-written binary.
    fs.copyFileSync(built, dest + '.partial');
    fs.chmodSync(dest + '.partial', 0o755);
    fs.renameSync(dest + '.partial', dest);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** Install a tool if needed. Returns its status and whether anything was built. */
export async function installTool(name: string, progress?: (note: string) => void): Promise<{ status: ToolStatus; built: boolean }> {
  const spec = toolSpec(name);
  const status = toolStatus(spec);
  if (status.state === 'installed' || status.state === 'override' || status.state === 'system') return { status, built: false };
  if (status.state === 'override-missing') throw toolError(`${overrideEnvVar(spec.name)} points at ${status.path}, which does not exist`, `Fix or unset ${overrideEnvVar(spec.name)}.`);
  if (status.state === 'system-missing') throw toolError(`${spec.name} is not installed`, howToInstall(spec));
  return withInstallLock(spec, async () => {
    const again = toolStatus(spec);
    if (again.state === 'installed') return { status: again, built: false };
    await goBuild(spec, installedPath(spec), progress);
    return { status: toolStatus(spec), built: true };
  });
}

/** The path of a tool's binary, installing it first when it is missing (the normal entry point). */
export async function tool(name: string, progress?: (note: string) => void): Promise<string> {
  if (process.env.CONDUIT_NO_TOOL_INSTALL === '1') {
    const st = toolStatus(toolSpec(name));
    if (st.state === 'installed' || st.state === 'override' || st.state === 'system') return st.path;
    throw toolError(`${name} ${st.version} is not installed (CONDUIT_NO_TOOL_INSTALL=1)`, howToInstall(toolSpec(name)));
  }
  const { status } = await installTool(name, progress ?? ((n) => process.stderr.write(`installing ${name}: ${n}\n`)));
  return status.path;
}

export type HelmMajor = 3 | 4;

/** Which Helm major a script uses: --helm flag, else CONDUIT_HELM_MAJOR, else 4. */
export function helmMajor(flag?: string): HelmMajor {
  const v = flag ?? process.env.CONDUIT_HELM_MAJOR ?? '4';
  if (v === '3' || v === '4') return Number(v) as HelmMajor;
  throw usageError(`--helm must be 3 or 4, not "${v}"`, 'Use --helm 3 or --helm 4 (or CONDUIT_HELM_MAJOR).');
}

export function helmToolName(major: HelmMajor): string {
  return major === 3 ? 'helm3' : 'helm';
}
