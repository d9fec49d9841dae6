// Every external program the toolkit uses, at a pinned version, kept in a per-user cache outside the
// repository (key: tool name and version). A missing tool is installed on demand: the publisher's
// official release binary when it can be downloaded and verified (releases.ts), else built from
// source with the registries an operator can always reach (Go modules, built here with `go`).
// A binary at exactly the pinned version already on the PATH is used as is, and an env var per tool
// points at a binary of the operator's own instead.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isDownloadError } from './download.ts';
import { toolError, usageError } from '../core/errors.ts';
import { run } from '../core/exec.ts';
import { cacheRoot, isExecutable, REPO_ROOT } from '../core/paths.ts';
import { currentPlatform, fallbackLine, fetchRelease, mirroredUrl, platformName, reportsVersion, toolsSource, type Platform, type ReleaseAsset } from './releases.ts';

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
  /** Arguments that make the binary print its version (checked after a download, on the PATH, and by `tools.ts list --verify`). */
  versionArgs: string[];
  /** The publisher's release binary for a platform (none: source build only, e.g. our own collector build). */
  release?: (p: Platform) => ReleaseAsset | undefined;
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

// Where the publishers put their release binaries and checksums (each layout checked against the
// publisher's release tooling: helm's Makefile, Kubernetes' dl.k8s.io layout, etcd's release script,
// kwok's hack/releases.sh, promu, goreleaser configurations, rclone's release signing page).
const githubRelease = (repo: string, tag: string, file: string) => `https://github.com/${repo}/releases/download/${tag}/${file}`;
const tarGz = (url: string, member: string, checksumUrl: string): ReleaseAsset => ({ url, archive: { kind: 'tar.gz', member }, checksum: { kind: 'sums', url: checksumUrl } });

/** get.helm.sh: helm-vX-linux-amd64.tar.gz (binary at linux-amd64/helm) and a `sha256sum` line beside it. */
const helmRelease =
  (version: string) =>
  ({ os, arch }: Platform) => {
    const url = `https://get.helm.sh/helm-v${version}-${os}-${arch}.tar.gz`;
    return tarGz(url, `${os}-${arch}/helm`, `${url}.sha256sum`);
  };
/** dl.k8s.io: the bare binary and `<binary>.sha256` holding its digest. */
const kubernetesRelease =
  (bin: string) =>
  ({ os, arch }: Platform): ReleaseAsset => {
    const url = `https://dl.k8s.io/release/${K8S}/bin/${os}/${arch}/${bin}`;
    return { url, archive: { kind: 'binary' }, checksum: { kind: 'single', url: `${url}.sha256` } };
  };
/**
 * kwok uploads bare binaries (kwok-linux-amd64) and no checksum file: the digest GitHub records for
 * every release asset is the check. Its release build assumes another default Kubernetes version than
 * ours; the local cluster passes its version explicitly, so the official binary serves the same.
 */
const kwokRelease =
  (bin: string) =>
  ({ os, arch }: Platform): ReleaseAsset => ({
    url: githubRelease('kubernetes-sigs/kwok', `v${KWOK}`, `${bin}-${os}-${arch}`),
    archive: { kind: 'binary' },
    checksum: { kind: 'github-release', url: `https://api.github.com/repos/kubernetes-sigs/kwok/releases/tags/v${KWOK}` },
  });

/** Prometheus 3.16.0; its Go module is tagged v0.316.0 (v0.3XX.Y for release 3.XX.Y; that go.mod has no replace/exclude). */
const PROMETHEUS_VERSION = '3.16.0';
const PROMETHEUS_MODULE_VERSION = 'v0.316.0';

/** A program of the Prometheus release (promtool, prometheus): one pinned version, built from its cmd/ package or taken from the release archive. */
function prometheusReleaseTool(binary: 'promtool' | 'prometheus', description: string): ToolSpec {
  const v = PROMETHEUS_VERSION;
  return {
    name: binary,
    version: v,
    binary,
    description,
    versionArgs: ['--version'],
    source: {
      kind: 'go-install',
      module: 'github.com/prometheus/prometheus',
      pkg: `cmd/${binary}`,
      moduleVersion: PROMETHEUS_MODULE_VERSION,
      ldflags: [`-X github.com/prometheus/common/version.Version=${v}`],
    },
    release: ({ os, arch }) => {
      const dir = `prometheus-${v}.${os}-${arch}`;
      return tarGz(githubRelease('prometheus/prometheus', `v${v}`, `${dir}.tar.gz`), `${dir}/${binary}`, githubRelease('prometheus/prometheus', `v${v}`, 'sha256sums.txt'));
    },
  };
}

export const TOOLS: readonly ToolSpec[] = [
  {
    name: 'helm',
    version: HELM4,
    binary: 'helm',
    description: 'Helm 4 (default major)',
    versionArgs: ['version', '--short'],
    source: { kind: 'go-install', module: 'helm.sh/helm/v4', pkg: 'cmd/helm', ldflags: [`-X helm.sh/helm/v4/internal/version.version=v${HELM4}`] },
    release: helmRelease(HELM4),
  },
  {
    name: 'helm3',
    version: HELM3,
    binary: 'helm',
    description: 'Helm 3 (--helm 3)',
    versionArgs: ['version', '--short'],
    source: {
      kind: 'go-install',
      module: 'helm.sh/helm/v3',
      pkg: 'cmd/helm',
      ldflags: [
        `-X helm.sh/helm/v3/internal/version.version=v${HELM3}`,
        '-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1',
        '-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37',
        '-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1',
        '-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37',
      ],
    },
    release: helmRelease(HELM3),
  },
  {
    name: 'helm-docs',
    version: '1.14.2',
    binary: 'helm-docs',
    description: 'chart README generator',
    versionArgs: ['--version'],
    source: { kind: 'go-install', module: 'github.com/norwoodj/helm-docs', pkg: 'cmd/helm-docs', ldflags: ['-X main.version=1.14.2'] },
    release: ({ os, arch }) => {
      const tag = 'v1.14.2';
      return tarGz(
        githubRelease('norwoodj/helm-docs', tag, `helm-docs_1.14.2_${os === 'linux' ? 'Linux' : os}_${arch === 'amd64' ? 'x86_64' : arch}.tar.gz`),
        'helm-docs',
        githubRelease('norwoodj/helm-docs', tag, 'checksums.txt'),
      );
    },
  },
  {
    name: 'kubeconform',
    version: '0.7.0',
    binary: 'kubeconform',
    description: 'offline Kubernetes schema validation',
    versionArgs: ['-v'],
    source: { kind: 'go-install', module: 'github.com/yannh/kubeconform', pkg: 'cmd/kubeconform', ldflags: ['-X main.version=v0.7.0'] },
    release: ({ os, arch }) => tarGz(githubRelease('yannh/kubeconform', 'v0.7.0', `kubeconform-${os}-${arch}.tar.gz`), 'kubeconform', githubRelease('yannh/kubeconform', 'v0.7.0', 'CHECKSUMS')),
  },
  {
    // kube-linter's module host (golang.stackrox.io) is not served by the Go module proxy here;
    // kube-score covers the same ground (security contexts, probes, PDBs, network policies).
    name: 'kube-score',
    version: '1.20.0',
    binary: 'kube-score',
    description: 'manifest best-practice linter',
    versionArgs: ['version'],
    source: { kind: 'go-install', module: 'github.com/zegl/kube-score', pkg: 'cmd/kube-score', ldflags: ['-X main.version=1.20.0'] },
    release: ({ os, arch }) => tarGz(githubRelease('zegl/kube-score', 'v1.20.0', `kube-score_1.20.0_${os}_${arch}.tar.gz`), 'kube-score', githubRelease('zegl/kube-score', 'v1.20.0', 'checksums.txt')),
  },
  prometheusReleaseTool('promtool', 'Prometheus rule checks and unit tests'),
  // The server the rollout gate asks (and its tests run on loopback with the rule files of alerts/):
  // the same release and Go module as promtool. Built without the web UI's assets (the HTTP API is what we use).
  prometheusReleaseTool('prometheus', 'Prometheus server (rollout gate tests)'),
  {
    // kwok simulates nodes and pod lifecycles for the local cluster; KubeVersion is what kwokctl
    // assumes for the control plane it runs (the binaries below), so it names the same release.
    name: 'kwok',
    version: KWOK,
    binary: 'kwok',
    description: 'kwok node/pod simulator (local cluster)',
    versionArgs: ['--version'],
    source: { kind: 'go-install', module: 'sigs.k8s.io/kwok', pkg: 'cmd/kwok', ldflags: kwokVersionFlags },
    release: kwokRelease('kwok'),
  },
  {
    name: 'kwokctl',
    version: KWOK,
    binary: 'kwokctl',
    description: 'kwok cluster manager (local cluster)',
    versionArgs: ['--version'],
    source: { kind: 'go-install', module: 'sigs.k8s.io/kwok', pkg: 'cmd/kwokctl', ldflags: kwokVersionFlags },
    release: kwokRelease('kwokctl'),
  },
  {
    // etcd's server module replaces its sibling modules with local paths: built from a wrapper module.
    name: 'etcd',
    version: ETCD,
    binary: 'etcd',
    description: 'etcd (local cluster storage)',
    versionArgs: ['--version'],
    source: { kind: 'go-wrapper', dir: 'etcd', pkg: 'go.etcd.io/etcd/server/v3', ldflags: [`-X go.etcd.io/etcd/api/v3/version.GitSHA=v${ETCD}`] },
    release: ({ os, arch }) => {
      const dir = `etcd-v${ETCD}-${os}-${arch}`;
      return tarGz(githubRelease('etcd-io/etcd', `v${ETCD}`, `${dir}.tar.gz`), `${dir}/etcd`, githubRelease('etcd-io/etcd', `v${ETCD}`, 'SHA256SUMS'));
    },
  },
  {
    // S3-compatible server for the backup tests (`rclone serve s3`) and the uploader of the in-cluster
    // backup job (the public rclone/rclone image runs the same CLI). Debian's rclone is too old for serve s3.
    name: 'rclone',
    version: '1.76.0',
    binary: 'rclone',
    description: 'S3 client and S3-compatible test server',
    versionArgs: ['version'],
    source: { kind: 'go-install', module: 'github.com/rclone/rclone', pkg: '', ldflags: ['-X github.com/rclone/rclone/fs.Version=v1.76.0'] },
    release: ({ os, arch }) => {
      // A PGP clear-signed SHA256SUMS: its digest lines read like a plain one (the signature is not checked).
      const dir = `rclone-v1.76.0-${os}-${arch}`;
      return {
        url: `https://downloads.rclone.org/v1.76.0/${dir}.zip`,
        archive: { kind: 'zip', member: `${dir}/rclone` },
        checksum: { kind: 'sums', url: 'https://downloads.rclone.org/v1.76.0/SHA256SUMS' },
      };
    },
  },
  {
    // The log pipeline's collector (logs/otelcol/): `validate` checks the shipped configuration and
    // the e2e test runs it. No upstream distribution installs with `go install`, so a wrapper module
    // of ours assembles only the components the pipeline uses (core v0.165.0, contrib v0.165.0).
    name: 'otelcol',
    version: OTELCOL,
    binary: 'otelcol',
    description: 'OpenTelemetry Collector (log pipeline)',
    versionArgs: ['--version'],
    source: { kind: 'go-wrapper', dir: 'otelcol', pkg: '.', ldflags: [`-X main.version=${OTELCOL}`] },
  },
  ...['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl'].map((bin): ToolSpec => ({
    name: bin,
    version: KUBERNETES_VERSION,
    binary: bin,
    description: `Kubernetes ${bin} (local cluster)`,
    versionArgs: bin === 'kubectl' ? ['version', '--client'] : ['--version'],
    source: { kind: 'go-wrapper', dir: 'kubernetes', pkg: `k8s.io/kubernetes/cmd/${bin}`, ldflags: k8sVersionFlags },
    release: kubernetesRelease(bin),
  })),
];

/** The release asset of a tool for this machine (undefined: no official build of it, or not for this platform). */
export function releaseAsset(spec: ToolSpec, platform = currentPlatform()): ReleaseAsset | undefined {
  return platform && spec.release ? spec.release(platform) : undefined;
}

/** The official URLs (assets and checksum files) of every tool with a release, for these platforms: what a mirror holds. */
export function releaseUrls(platforms: readonly Platform[]): string[] {
  return [...new Set(TOOLS.flatMap((t) => platforms.flatMap((p) => t.release?.(p) ?? []).flatMap((a) => [a.url, a.checksum.url])))];
}

/** The hosts the official release binaries of the pinned tools come from (for reachability checks). */
export function releaseHosts(): string[] {
  return [...new Set(releaseUrls([{ os: 'linux', arch: 'amd64' }]).map((u) => new URL(u).host))];
}

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

/**
 * Where a tool comes from: `installed` (the per-user cache), `path` (a binary on the PATH that reports
 * exactly the pinned version), `override` (CONDUIT_TOOL_<NAME>), `missing` (installed on first use).
 */
export type ToolState = 'installed' | 'path' | 'missing' | 'override' | 'override-missing' | 'system' | 'system-missing';

/** How a cached tool got there, recorded next to it. */
export interface InstallRecord {
  via: 'download' | 'build';
  /** The URL downloaded, or the Go package built. */
  from: string;
}

export interface ToolStatus {
  name: string;
  version: string;
  path: string;
  state: ToolState;
  description: string;
  /** For a cached tool: how it was installed (absent for binaries cached before this was recorded). */
  origin?: InstallRecord;
}

function onPath(command: string): string | undefined {
  return (process.env.PATH ?? '')
    .split(path.delimiter)
    .map((dir) => path.join(dir, command))
    .find(isExecutable);
}

function recordPath(spec: ToolSpec): string {
  return path.join(path.dirname(installedPath(spec)), '.installed.json');
}

function readRecord(spec: ToolSpec): InstallRecord | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(recordPath(spec), 'utf8')) as InstallRecord;
    return r.via === 'download' || r.via === 'build' ? r : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Binaries on the PATH. One is run once to read its version; the answer is kept in the cache, keyed
// by path, size and modification time, so later runs only stat the file.

interface PathProbe {
  size: number;
  mtimeMs: number;
  output: string;
}

function probesFile(): string {
  return path.join(toolsDir(), 'path-probes.json');
}

function readProbes(): Record<string, PathProbe> {
  try {
    return JSON.parse(fs.readFileSync(probesFile(), 'utf8')) as Record<string, PathProbe>;
  } catch {
    return {};
  }
}

function recordProbe(file: string, probe: PathProbe): void {
  fs.mkdirSync(toolsDir(), { recursive: true });
  const tmp = `${probesFile()}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ ...readProbes(), [file]: probe }, null, 1) + '\n');
  fs.renameSync(tmp, probesFile());
}

/** The first file named like the tool's binary on the PATH, outside the tool cache. */
function pathCandidate(spec: ToolSpec): string | undefined {
  const cache = toolsDir() + path.sep;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(path.resolve(dir), spec.binary);
    if (!p.startsWith(cache) && isExecutable(p) && fs.statSync(p).isFile()) return p;
  }
  return undefined;
}

function recordedProbe(file: string): PathProbe | undefined {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  const p = readProbes()[file];
  return st && p && p.size === st.size && p.mtimeMs === st.mtimeMs ? p : undefined;
}

/** The PATH binary when it reports exactly the pinned version (run once per file version). */
async function probePath(spec: ToolSpec): Promise<string | undefined> {
  const file = pathCandidate(spec);
  if (!file) return undefined;
  let probe = recordedProbe(file);
  if (!probe) {
    const st = fs.statSync(file);
    const r = await run(file, spec.versionArgs, { timeoutMs: 20_000 });
    probe = { size: st.size, mtimeMs: st.mtimeMs, output: r.exitCode === 0 ? `${r.stdout}\n${r.stderr}`.trim().slice(0, 2000) : '' };
    recordProbe(file, probe);
  }
  return reportsVersion(probe.output, spec.version) ? file : undefined;
}

/** Where a tool is now, without running anything (a PATH binary counts once its version was read). */
export function toolStatus(spec: ToolSpec): ToolStatus {
  const base = { name: spec.name, version: spec.version, description: spec.description };
  const override = process.env[overrideEnvVar(spec.name)];
  if (override) return { ...base, path: override, state: fs.existsSync(override) ? 'override' : 'override-missing' };
  if (spec.source.kind === 'system') {
    const found = onPath(spec.source.command);
    return { ...base, path: found ?? spec.source.command, state: found ? 'system' : 'system-missing' };
  }
  const p = installedPath(spec);
  if (fs.existsSync(p)) return { ...base, path: p, state: 'installed', origin: readRecord(spec) };
  const candidate = pathCandidate(spec);
  const probe = candidate ? recordedProbe(candidate) : undefined;
  if (candidate && probe && reportsVersion(probe.output, spec.version)) return { ...base, path: candidate, state: 'path' };
  return { ...base, path: p, state: 'missing' };
}

/** toolStatus, after reading the version of a PATH binary not seen before (runs it once). */
export async function resolveToolStatus(spec: ToolSpec): Promise<ToolStatus> {
  const st = toolStatus(spec);
  if (st.state !== 'missing') return st;
  const found = await probePath(spec);
  return found ? { ...st, path: found, state: 'path' } : st;
}

/** Is the tool usable as it is (nothing to install)? */
export function isReady(st: ToolStatus): boolean {
  return st.state === 'installed' || st.state === 'path' || st.state === 'override' || st.state === 'system';
}

/** How a missing tool would be installed now: downloaded from a host, or built (and why). */
export function plannedInstall(spec: ToolSpec): { via: 'download'; host: string } | { via: 'build'; why: string } {
  const asset = releaseAsset(spec);
  if (toolsSource() === 'build') return { via: 'build', why: 'CONDUIT_TOOLS_SOURCE=build' };
  if (!spec.release) return { via: 'build', why: 'no official release of this build' };
  if (!asset) return { via: 'build', why: `no official release binary for ${platformName()}` };
  return { via: 'download', host: new URL(mirroredUrl(asset.url)).host };
}

export function howToInstall(spec: ToolSpec): string {
  const src = spec.source;
  if (src.kind === 'system') return `Install it with: apt-get install ${src.debianPackage} (or set ${overrideEnvVar(spec.name)} to its path).`;
  const how = spec.release ? 'downloads the official release, or builds it with Go >= 1.26' : 'builds it with Go >= 1.26 and the Go module proxy';
  return `Run: npx zx scripts/tools.ts install ${spec.name} (${how}), or set ${overrideEnvVar(spec.name)} to a ${spec.name} ${spec.version} binary.`;
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

/** What an install killed half-way left behind (never the binary itself, which only appears by rename). */
function removeLeftovers(spec: ToolSpec): void {
  const dir = path.dirname(installedPath(spec));
  if (!fs.existsSync(dir)) return;
  for (const f of fs.readdirSync(dir, { withFileTypes: true })) if (f.isFile() && f.name.startsWith(`${spec.binary}.partial`)) fs.rmSync(path.join(dir, f.name), { force: true });
}

/** Build the tool with Go into dest; returns what was built (for the install record). */
async function goBuild(spec: ToolSpec, dest: string, progress?: (note: string) => void): Promise<string> {
  const src = spec.source;
  if (src.kind === 'system') throw new Error('not a Go tool');
  const goBin = process.env.CONDUIT_GO ?? onPath('go');
  if (!goBin) throw toolError(`cannot build ${spec.name} ${spec.version}: the Go toolchain is not on PATH`, 'Install Go >= 1.26, or set ' + overrideEnvVar(spec.name) + ' to an existing binary.');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `conduit-tool-${spec.name}-`));
  const ldflags = ['-s', '-w', ...(src.ldflags ?? [])].join(' ');
  const env = { CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false' };
  const partial = `${dest}.partial-${process.pid}`;
  try {
    let r;
    let target: string;
    if (src.kind === 'go-install') {
      // An empty pkg means the main package sits at the module root (rclone).
      target = `${src.module}${src.pkg ? `/${src.pkg}` : ''}@${src.moduleVersion ?? `v${spec.version}`}`;
      progress?.(`go install ${target}`);
      r = await run(goBin, ['install', '-trimpath', '-ldflags', ldflags, target], { env: { ...env, GOBIN: tmp } });
    } else {
      const dir = path.join(REPO_ROOT, 'tools', 'go', src.dir);
      target = `${src.pkg} (module tools/go/${src.dir})`;
      progress?.(`go build ${target}`);
      r = await run(goBin, ['build', '-trimpath', '-ldflags', ldflags, '-o', path.join(tmp, spec.binary), src.pkg], { cwd: dir, env });
    }
    if (r.exitCode !== 0) {
      throw toolError(`building ${spec.name} ${spec.version} failed:\n${(r.stderr || r.stdout).trim().split('\n').slice(-12).join('\n')}`, howToInstall(spec));
    }
    const built = path.join(tmp, spec.binary);
    if (!fs.existsSync(built)) throw toolError(`building ${spec.name} produced no ${spec.binary} binary`, howToInstall(spec));
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    // Copy then rename, so a reader never sees a half-written binary.
    fs.copyFileSync(built, partial);
    fs.chmodSync(partial, 0o755);
    fs.renameSync(partial, dest);
    return target;
  } finally {
    fs.rmSync(partial, { force: true });
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** What a binary prints for the tool's version command (rejects when it does not run). */
async function versionOutput(spec: ToolSpec, binary: string): Promise<string> {
  const r = await run(binary, spec.versionArgs, { timeoutMs: 20_000 });
  const out = `${r.stdout}\n${r.stderr}`.trim();
  if (r.exitCode !== 0) throw new Error(`\`${spec.versionArgs.join(' ')}\` exited ${r.exitCode}: ${out.split('\n')[0] ?? ''}`);
  return out;
}

/** A line for the operator outside any step's spinner (stderr). */
function notice(line: string): void {
  process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[2K' : ''}${line}\n`);
}

/** Download the official release (when there is one and CONDUIT_TOOLS_SOURCE allows), else build from source. */
async function obtain(spec: ToolSpec, dest: string, progress?: (note: string) => void): Promise<InstallRecord> {
  const source = toolsSource();
  const asset = source === 'build' ? undefined : releaseAsset(spec);
  if (source === 'download' && !asset) {
    throw toolError(
      `${spec.name} ${spec.version} has no official release download ${spec.release ? `for ${platformName()}` : '(the toolkit assembles its own build)'}, and CONDUIT_TOOLS_SOURCE=download does not build`,
      'Unset CONDUIT_TOOLS_SOURCE (or set it to auto) to build it from source with Go >= 1.26.',
    );
  }
  if (asset) {
    const allAssets = TOOLS.flatMap((t) => releaseAsset(t) ?? []);
    try {
      const from = await fetchRelease({ name: spec.name, version: spec.version, asset, dest, versionOf: (binary) => versionOutput(spec, binary), allAssets }, progress);
      return { via: 'download', from };
    } catch (e) {
      if (!isDownloadError(e)) throw e;
      if (source === 'download') {
        throw toolError(
          `downloading ${spec.name} ${spec.version} failed: ${e.message}`,
          'CONDUIT_TOOLS_SOURCE=download never builds from source: fix the download (network, CONDUIT_TOOLS_MIRROR), or unset CONDUIT_TOOLS_SOURCE.',
        );
      }
      const line = fallbackLine(spec.name, spec.version, e);
      if (line) notice(line);
    }
  }
  return { via: 'build', from: await goBuild(spec, dest, progress) };
}

/** Where a tool comes from, in words (`tools.ts list`): the cache and how it got there, the PATH, an env override, or what installing it will do. */
export function originText(spec: ToolSpec, st: ToolStatus): string {
  switch (st.state) {
    case 'installed':
      if (!st.origin) return 'cache';
      return st.origin.via === 'download' ? `cache (downloaded from ${new URL(st.origin.from).host})` : 'cache (built from source)';
    case 'path':
      return 'PATH';
    case 'override':
      return `env ${overrideEnvVar(spec.name)}`;
    case 'override-missing':
      return `env ${overrideEnvVar(spec.name)} (file missing)`;
    case 'system':
    case 'system-missing':
      return 'system package';
    default: {
      const plan = plannedInstall(spec);
      return plan.via === 'download' ? `to download from ${plan.host}` : `to build from source (${plan.why})`;
    }
  }
}

export interface InstallResult {
  status: ToolStatus;
  /** Whether this call installed it (downloaded or built). */
  built: boolean;
  via?: InstallRecord['via'];
}

/** Install a tool if needed: cache, PATH and override first, then a download or a source build. */
export async function installTool(name: string, progress?: (note: string) => void): Promise<InstallResult> {
  const spec = toolSpec(name);
  const status = await resolveToolStatus(spec);
  if (isReady(status)) return { status, built: false };
  if (status.state === 'override-missing') throw toolError(`${overrideEnvVar(spec.name)} points at ${status.path}, which does not exist`, `Fix or unset ${overrideEnvVar(spec.name)}.`);
  if (status.state === 'system-missing') throw toolError(`${spec.name} is not installed`, howToInstall(spec));
  return withInstallLock(spec, async () => {
    const again = toolStatus(spec);
    if (again.state === 'installed') return { status: again, built: false };
    removeLeftovers(spec);
    const record = await obtain(spec, installedPath(spec), progress);
    fs.writeFileSync(recordPath(spec), JSON.stringify(record) + '\n');
    return { status: toolStatus(spec), built: true, via: record.via };
  });
}

/** The path of a tool's binary, installing it first when it is missing (the normal entry point). */
export async function tool(name: string, progress?: (note: string) => void): Promise<string> {
  if (process.env.CONDUIT_NO_TOOL_INSTALL === '1') {
    const st = await resolveToolStatus(toolSpec(name));
    if (isReady(st)) return st.path;
    throw toolError(`${name} ${st.version} is not installed (CONDUIT_NO_TOOL_INSTALL=1)`, howToInstall(toolSpec(name)));
  }
  const { status } = await installTool(name, progress ?? ((n) => process.stderr.write(`installing ${name}: ${n}\n`)));
  return status.path;
}
