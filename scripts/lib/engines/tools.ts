// `tools.ts doctor`: what this machine has for the toolkit and what is missing, each problem with
// the command that fixes it. Facts are gathered by probes (all at once, each with a short timeout)
// and judged by pure functions, so the verdict is unit-tested with made-up facts.
//
// Required (a failure exits 1): Node >= the engines range of package.json; free disk space for the
// tool cache; every pinned tool either cached or obtainable, which means a download from the release
// hosts or a source build (then Go and the Go module proxy become required too).
// Optional (warnings only): Go and the module proxy while nothing has to be built, the release hosts
// (source builds replace them), a container engine (only compose.ts and build.ts use one) and the
// local cluster (deploy.ts starts it).
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import semver from 'semver';
import { inspectEngines, type EngineReport } from '../adapters/container.ts';
import { DEFAULT_GOPROXY, firstProxy, goInfo, goVersionAtLeast, requiredGoVersion, type GoInfo } from '../adapters/golang.ts';
import { cacheRoot, REPO_ROOT } from '../core/paths.ts';
import { currentPlatform, platformName, toolsMirror, toolsSource, type ToolsSource } from '../adapters/releases.ts';
import { overrideEnvVar, releaseAsset, releaseHosts, TOOLS, toolStatus, type ToolStatus } from '../adapters/tools.ts';

export const GIB = 1024 ** 3;
/** Free space the cache needs with every tool cached: the local cluster's etcd, logs and schemas. */
export const MIN_FREE_CACHE = 1 * GIB;
/** Extra free space while tools are missing (the pinned tools take about 0.9 GB together). */
export const MIN_FREE_FOR_TOOLS = 1 * GIB;
/** A cold source build of every tool fills about 15 GB of Go build and module caches. */
export const GO_BUILD_SPACE = 16 * GIB;
export const PROBE_TIMEOUT_MS = 3000;

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface UrlProbe {
  url: string;
  reachable: boolean;
  /** HTTP status when the server answered. */
  status?: number;
  ms: number;
  error?: string;
}

export interface DiskFacts {
  /** The directory asked about and the existing directory whose filesystem was measured. */
  path: string;
  measured: string;
  freeBytes: number;
}

export interface ClusterFacts {
  created: boolean;
  running: boolean;
  version?: string;
  nodes: number;
  readyNodes: number;
  error?: string;
}

export interface DoctorFacts {
  node: { version: string; required: string };
  go: GoInfo & { required: string };
  /** url: the first proxy of GOPROXY; lookup: what was asked of it (a pinned module's .info). */
  goProxy: UrlProbe & { setting: string; lookup?: string; why?: string };
  engines: EngineReport;
  disk: { cache: DiskFacts; goCache?: DiskFacts };
  /** Each pinned tool; `downloadable`: its publisher releases a binary for this platform. */
  tools: (ToolStatus & { downloadable: boolean })[];
  settings: { toolsSource: ToolsSource; noToolInstall: boolean; cacheDir: string; platform: string; mirror?: string };
  /** The official release hosts, or the one mirror (CONDUIT_TOOLS_MIRROR) that stands in for them. */
  releaseHosts: (UrlProbe & { host: string })[];
  cluster: ClusterFacts;
}

export interface DoctorProbes {
  settings(): DoctorFacts['settings'];
  node(): DoctorFacts['node'];
  go(): Promise<DoctorFacts['go']>;
  goProxy(go: GoInfo): Promise<DoctorFacts['goProxy']>;
  engines(): Promise<EngineReport>;
  disk(dir: string): DiskFacts;
  tools(): DoctorFacts['tools'];
  releaseHosts(): Promise<DoctorFacts['releaseHosts']>;
  cluster(): Promise<ClusterFacts>;
}

export interface Check {
  id: string;
  title: string;
  required: boolean;
  status: CheckStatus;
  summary: string;
  /** The command (or the one step) that fixes it. */
  fix?: string;
}

// ---- probes ----------------------------------------------------------------------------------------

/** Whether anything answers at a URL (any HTTP status counts), within a short timeout. file:// URLs: the path exists. */
export function probeUrl(url: string, o: { method?: 'HEAD' | 'GET'; timeoutMs?: number } = {}): Promise<UrlProbe> {
  const started = performance.now();
  const done = (r: Omit<UrlProbe, 'url' | 'ms'>): UrlProbe => ({ url, ms: Math.round(performance.now() - started), ...r });
  if (url.startsWith('file:')) {
    const ok = fs.existsSync(fileURLToPath(url));
    return Promise.resolve(done(ok ? { reachable: true } : { reachable: false, error: 'no such path' }));
  }
  return new Promise((resolve) => {
    const timeoutMs = o.timeoutMs ?? PROBE_TIMEOUT_MS;
    let req: http.ClientRequest;
    try {
      req = (url.startsWith('http:') ? http : https).request(url, { method: o.method ?? 'HEAD' });
    } catch (e) {
      resolve(done({ reachable: false, error: (e as Error).message }));
      return;
    }
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs / 1000}s`)), timeoutMs);
    req.on('response', (res) => {
      clearTimeout(timer);
      res.resume();
      req.destroy();
      resolve(done({ reachable: true, status: res.statusCode }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(done({ reachable: false, error: e.code ? `${e.code}` : e.message }));
    });
    req.end();
  });
}

/** A module path as the module proxy protocol spells it (capital letters become !lower-case). */
function escapeModule(module: string): string {
  return module.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
}

/** The proxy URL that answers 200 when the proxy serves a module a source build needs. */
export function proxyLookupUrl(proxy: string): string {
  const spec = TOOLS.find((t) => t.source.kind === 'go-install');
  if (!spec || spec.source.kind !== 'go-install') return `${proxy}/`;
  return `${proxy}/${escapeModule(spec.source.module)}/@v/${spec.source.moduleVersion ?? `v${spec.version}`}.info`;
}

/** Free space on the filesystem that holds dir (or would hold it: the nearest existing parent). */
export function diskFacts(dir: string): DiskFacts {
  let measured = path.resolve(dir);
  while (!fs.existsSync(measured) && path.dirname(measured) !== measured) measured = path.dirname(measured);
  const s = fs.statfsSync(measured);
  return { path: dir, measured, freeBytes: s.bavail * s.bsize };
}

function settings(): DoctorFacts['settings'] {
  const mirror = toolsMirror();
  return { toolsSource: toolsSource(), noToolInstall: process.env.CONDUIT_NO_TOOL_INSTALL === '1', cacheDir: cacheRoot(), platform: platformName(), ...(mirror ? { mirror } : {}) };
}

/** Where downloads come from: the mirror when one is set, else every official release host. */
async function probeReleaseHosts(): Promise<DoctorFacts['releaseHosts']> {
  const mirror = toolsMirror();
  if (mirror) return [{ host: mirror, ...(await probeUrl(mirror.endsWith('/') || mirror.startsWith('file:') ? mirror : `${mirror}/`)) }];
  if (!currentPlatform()) return [];
  return Promise.all(releaseHosts().map(async (host) => ({ host, ...(await probeUrl(`https://${host}/`)) })));
}

/** What the doctor needs of the local cluster's status (the cluster engine's localClusterStatus, handed in by the verb). */
export type LocalClusterStatusProbe = () => Promise<{ created: boolean; running: boolean; version?: string; nodes: { ready: boolean }[] }>;

async function clusterFacts(localClusterStatus: LocalClusterStatusProbe): Promise<ClusterFacts> {
  try {
    const s = await localClusterStatus();
    return { created: s.created, running: s.running, version: s.version, nodes: s.nodes.length, readyNodes: s.nodes.filter((n) => n.ready).length };
  } catch (e) {
    return { created: true, running: false, nodes: 0, readyNodes: 0, error: (e as Error).message.split('\n')[0] };
  }
}

export function realProbes(localClusterStatus: LocalClusterStatusProbe): DoctorProbes {
  return {
    settings,
    node: () => ({
      version: process.versions.node,
      required: (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { engines?: { node?: string } }).engines?.node ?? '>=20.11',
    }),
    go: async () => ({ ...(await goInfo()), required: requiredGoVersion() }),
    goProxy: async (go) => {
      const setting = go.proxy ?? process.env.GOPROXY ?? DEFAULT_GOPROXY;
      const { url, why } = firstProxy(setting);
      if (!url) return { setting, why, url: '', reachable: false, ms: 0 };
      const r = await probeUrl(proxyLookupUrl(url), { method: 'GET' });
      // The proxy answered, but without the module: it cannot serve the builds.
      return { setting, ...r, url, lookup: r.url, reachable: r.reachable && r.status === 200, ...(r.reachable && r.status !== 200 ? { error: `HTTP ${r.status}` } : {}) };
    },
    engines: inspectEngines,
    disk: diskFacts,
    tools: () => TOOLS.map((t) => ({ ...toolStatus(t), downloadable: Boolean(releaseAsset(t)) })),
    releaseHosts: probeReleaseHosts,
    cluster: () => clusterFacts(localClusterStatus),
  };
}

/** Run every probe; the independent ones at the same time. */
export async function collectFacts(p: DoctorProbes): Promise<DoctorFacts> {
  const settings = p.settings();
  const goWithProxy = p.go().then(async (go) => ({ go, goProxy: await p.goProxy(go) }));
  const [{ go, goProxy }, engines, hosts, cluster] = await Promise.all([goWithProxy, p.engines(), p.releaseHosts(), p.cluster()]);
  return {
    node: p.node(),
    go,
    goProxy,
    engines,
    disk: { cache: p.disk(settings.cacheDir), ...(go.cache ? { goCache: p.disk(go.cache) } : {}) },
    tools: p.tools(),
    settings,
    releaseHosts: hosts,
    cluster,
  };
}

// ---- verdict ---------------------------------------------------------------------------------------

const MISSING_STATES = new Set(['missing', 'override-missing', 'system-missing']);

type DoctorTool = DoctorFacts['tools'][number];

/** How missing tools can be obtained on this machine. */
interface Supply {
  /** Not in place: `missing`, or an override/system binary that does not exist. */
  missing: DoctorTool[];
  /** Missing tools that will be downloaded, built, or neither. */
  downloaded: DoctorTool[];
  built: DoctorTool[];
  stuck: DoctorTool[];
  hostsUp: boolean;
  goUsable: boolean;
  /** Some missing tool can only come from a source build: Go and the module proxy are required. */
  needBuild: boolean;
}

function supplyOf(f: DoctorFacts): Supply {
  const missing = f.tools.filter((t) => MISSING_STATES.has(t.state));
  const installs = !f.settings.noToolInstall;
  const goUsable = Boolean(f.go.version) && goVersionAtLeast(f.go.version as string, f.go.required) !== false;
  const hostsUp = f.releaseHosts.length > 0 && f.releaseHosts.every((h) => h.reachable);
  const canDownload = (t: DoctorTool) => installs && f.settings.toolsSource !== 'build' && t.downloadable && hostsUp;
  const mayBuild = installs && f.settings.toolsSource !== 'download';
  const canBuild = mayBuild && goUsable && f.goProxy.reachable;
  const absent = missing.filter((t) => t.state === 'missing');
  const downloaded = absent.filter(canDownload);
  const rest = absent.filter((t) => !canDownload(t));
  return {
    missing,
    downloaded,
    built: canBuild ? rest : [],
    stuck: canBuild ? [] : rest,
    hostsUp,
    goUsable,
    needBuild: mayBuild && rest.length > 0,
  };
}

const gib = (n: number) => `${(n / GIB).toFixed(1)} GiB`;
const installCommand = (names: string[]) => `npx zx scripts/tools.ts install ${names.join(' ')}`;

function checkNode(f: DoctorFacts): Check {
  const ok = semver.satisfies(f.node.version, f.node.required);
  return {
    id: 'node',
    title: 'Node.js',
    required: true,
    status: ok ? 'ok' : 'fail',
    summary: `${f.node.version} (${f.node.required} required)`,
    ...(ok ? {} : { fix: 'Install Node.js 20.11 or newer: https://nodejs.org/en/download (with nvm: nvm install 20)' }),
  };
}

const STATE_WORDS: Record<string, string> = { installed: 'cached', path: 'on the PATH', override: 'overridden', system: 'from the system' };

function inPlace(f: DoctorFacts): string {
  const counts = new Map<string, number>();
  for (const t of f.tools) counts.set(STATE_WORDS[t.state] ?? t.state, (counts.get(STATE_WORDS[t.state] ?? t.state) ?? 0) + 1);
  return [...counts].map(([w, n]) => `${n} ${w}`).join(', ');
}

/** What to do before the install command can fetch the stuck tools. */
function unblockSteps(f: DoctorFacts, s: Supply): string[] {
  const steps: string[] = [];
  const onlyBuilds = s.stuck.filter((t) => !t.downloadable).map((t) => t.name);
  if (f.settings.toolsSource === 'download') {
    if (!s.hostsUp) steps.push('Make the release hosts reachable (see release hosts)');
    if (onlyBuilds.length) steps.push(`export CONDUIT_TOOLS_SOURCE=auto (${onlyBuilds.join(', ')}: no release download, built from source)`);
  }
  if (f.settings.toolsSource !== 'download' || onlyBuilds.length) {
    if (!s.goUsable) steps.push('Install Go (see Go)');
    if (!f.goProxy.reachable) steps.push('make the Go module proxy reachable (see Go module proxy)');
  }
  return steps;
}

function checkTools(f: DoctorFacts, s: Supply): Check {
  const base = { id: 'tools', title: 'pinned tools', required: true };
  const broken = s.missing.filter((t) => t.state !== 'missing');
  if (broken.length) {
    return {
      ...base,
      status: 'fail',
      summary: `${broken.map((t) => `${t.name}: ${t.path} does not exist`).join('; ')}`,
      fix: broken.map((t) => `unset ${overrideEnvVar(t.name)}`).join(' && ') + ' (or point it at an existing binary)',
    };
  }
  if (!s.missing.length) return { ...base, status: 'ok', summary: `all ${f.tools.length} in place (${inPlace(f)}; cache ${f.settings.cacheDir})` };
  const names = s.missing.map((t) => t.name);
  const list = `${f.tools.length - names.length} of ${f.tools.length} in place; missing: ${names.join(', ')}`;
  if (f.settings.noToolInstall)
    return { ...base, status: 'fail', summary: `${list} (CONDUIT_NO_TOOL_INSTALL=1 forbids installing them)`, fix: `unset CONDUIT_NO_TOOL_INSTALL && ${installCommand(names)}` };
  const how = [
    s.downloaded.length ? `${s.downloaded.length === names.length ? 'they are' : s.downloaded.map((t) => t.name).join(', ') + ':'} downloaded` : '',
    s.built.length ? `${s.built.length === names.length ? 'they are' : s.built.map((t) => t.name).join(', ') + ':'} built from source` : '',
  ]
    .filter(Boolean)
    .join('; ');
  if (!s.stuck.length) return { ...base, status: 'warn', summary: `${list}; ${how} on first use`, fix: installCommand(names) };
  const stuck = s.stuck.map((t) => t.name);
  return {
    ...base,
    status: 'fail',
    summary: `${list}; no way to get ${stuck.length === names.length ? 'them' : stuck.join(', ')}: no download${f.settings.toolsSource === 'download' ? '' : ' and no source build'} is possible`,
    fix: `${unblockSteps(f, s)
      .join(' and ')
      .replace(/^(?!export )./, (c) => c.toUpperCase())}, then: ${installCommand(names)}`,
  };
}

function checkGo(f: DoctorFacts, s: Supply): Check {
  const base = { id: 'go', title: 'Go', required: s.needBuild };
  if (s.goUsable) return { ...base, status: 'ok', summary: `${f.go.version} at ${f.go.path} (>= ${f.go.required} builds every tool)` };
  const what = f.go.version ? `${f.go.version} at ${f.go.path} is older than ${f.go.required}` : (f.go.error ?? 'not found');
  const why = s.needBuild
    ? `${[...s.built, ...s.stuck].map((t) => t.name).join(', ')} can only be built from source`
    : s.missing.length
      ? 'only needed if a download fails'
      : 'only needed to build tools from source; none is missing';
  return { ...base, status: s.needBuild ? 'fail' : 'warn', summary: `${what} (${why})`, fix: `Install Go >= ${f.go.required} from https://go.dev/dl/ (or set CONDUIT_GO to a go binary)` };
}

function checkGoProxy(f: DoctorFacts, s: Supply): Check {
  const base = { id: 'goproxy', title: 'Go module proxy', required: s.needBuild };
  const p = f.goProxy;
  if (p.reachable) return { ...base, status: 'ok', summary: `${p.url} serves the pinned modules (${p.ms} ms)` };
  const what = p.why ?? `${p.url} ${p.status ? `answered ${p.error}` : `is unreachable (${p.error})`}`;
  const fix = p.setting.split(/[,|]/)[0] === 'off' ? `go env -w GOPROXY=${DEFAULT_GOPROXY}` : 'Allow HTTPS to the proxy, or use a reachable mirror: go env -w GOPROXY=https://YOUR-MIRROR,direct';
  return { ...base, status: s.needBuild ? 'fail' : 'warn', summary: p.why ? what : `${what}; GOPROXY=${p.setting}`, fix };
}

function checkReleaseHosts(f: DoctorFacts): Check {
  const base = { id: 'release-hosts', title: f.settings.mirror ? 'release mirror' : 'release hosts', required: false };
  if (f.settings.toolsSource === 'build') return { ...base, status: 'skip', summary: 'not used (CONDUIT_TOOLS_SOURCE=build)' };
  if (!f.releaseHosts.length) return { ...base, status: 'skip', summary: `no official downloads for ${f.settings.platform}: tools are built from source` };
  const down = f.releaseHosts.filter((h) => !h.reachable);
  if (f.settings.mirror) {
    const [m] = f.releaseHosts;
    return m.reachable
      ? { ...base, status: 'ok', summary: `CONDUIT_TOOLS_MIRROR ${m.host} answers (${m.ms} ms)` }
      : {
          ...base,
          status: 'warn',
          summary: `CONDUIT_TOOLS_MIRROR ${m.host} is unreachable (${m.error ?? 'no answer'}); tools are built from source instead`,
          fix: 'Check the mirror URL in CONDUIT_TOOLS_MIRROR (or unset it to use the official hosts)',
        };
  }
  if (!down.length) return { ...base, status: 'ok', summary: `all ${f.releaseHosts.length} reachable (${f.releaseHosts.map((h) => h.host).join(', ')})` };
  return {
    ...base,
    status: 'warn',
    summary: `${f.releaseHosts.length - down.length} of ${f.releaseHosts.length} reachable; unreachable: ${down.map((h) => `${h.host} (${h.error ?? 'no answer'})`).join(', ')}; tools are built from source instead`,
    fix: `Allow HTTPS to ${down.map((h) => h.host).join(', ')} for downloads, or set CONDUIT_TOOLS_MIRROR to an internal mirror (or CONDUIT_TOOLS_SOURCE=build to skip trying)`,
  };
}

const ENGINE_PACKAGES = 'apt-get install podman buildah runc podman-compose';

function checkEngine(f: DoctorFacts): Check {
  const base = { id: 'engine', title: 'container engine', required: false };
  const { docker, podman, containersConf } = f.engines;
  if (docker.server && docker.buildx && docker.compose) return { ...base, status: 'ok', summary: `Docker ${docker.server} with buildx and compose` };
  if (podman.version) {
    const conf = containersConf ? `; CONTAINERS_CONF=${containersConf}` : '';
    if (!podman.compose)
      return { ...base, status: 'warn', summary: `podman ${podman.version} without podman-compose (compose.ts needs it; build.ts does not)${conf}`, fix: 'apt-get install podman-compose' };
    if (podman.runtime === 'runc' && !podman.runc)
      return { ...base, status: 'warn', summary: `podman ${podman.version} is set to the runc runtime, which is not installed${conf}`, fix: 'apt-get install runc' };
    const hint =
      podman.runtime !== 'runc' && !containersConf
        ? `; if containers fail to start under ${podman.runtime ?? 'its runtime'} or with ulimit errors: CONTAINERS_CONF=test/fixtures/containers.conf (runc, no default ulimits)`
        : '';
    return { ...base, status: 'ok', summary: `podman ${podman.version} (runtime ${podman.runtime ?? 'unknown'}) with podman-compose${conf}${hint}` };
  }
  const dockerWhy = !docker.client
    ? 'no docker'
    : !docker.server
      ? 'docker cannot reach an engine'
      : `docker lacks ${[docker.buildx ? '' : 'buildx', docker.compose ? '' : 'the compose plugin'].filter(Boolean).join(' and ')}`;
  return {
    ...base,
    status: 'warn',
    summary: `none usable (${dockerWhy}; no podman); only compose.ts and build.ts need one`,
    fix: docker.client && !docker.server ? `Start the Docker engine, or: ${ENGINE_PACKAGES}` : `${ENGINE_PACKAGES} (or Docker with buildx and the compose plugin)`,
  };
}

function checkDisk(f: DoctorFacts, s: Supply): Check {
  const base = { id: 'disk', title: 'disk space', required: true };
  const { cache, goCache } = f.disk;
  const need = MIN_FREE_CACHE + (s.missing.length ? MIN_FREE_FOR_TOOLS : 0);
  const where = `${gib(cache.freeBytes)} free for ${cache.path}${cache.measured !== cache.path ? ` (measured at ${cache.measured})` : ''}`;
  if (cache.freeBytes < need) {
    return { ...base, status: 'fail', summary: `${where}; needs ${gib(need)}`, fix: `Free space on that filesystem, or point the cache at a larger disk: export CONDUIT_CACHE_DIR=/path/with/space` };
  }
  if (s.built.length && goCache && goCache.freeBytes < GO_BUILD_SPACE) {
    return {
      ...base,
      status: 'warn',
      summary: `${where}; Go's caches (${goCache.path}) have ${gib(goCache.freeBytes)}, and a cold source build of every tool fills about 15 GB`,
      fix: 'Free space there, or move them: go env -w GOCACHE=/path/with/space/go-build GOMODCACHE=/path/with/space/go-mod',
    };
  }
  return { ...base, status: 'ok', summary: where };
}

function checkCluster(f: DoctorFacts): Check {
  const base = { id: 'cluster', title: 'local cluster', required: false };
  const c = f.cluster;
  if (c.error) return { ...base, status: 'warn', summary: `status unknown: ${c.error}`, fix: 'npx zx scripts/cluster.ts status' };
  if (!c.created) return { ...base, status: 'ok', summary: 'not created yet (deploy.ts and cluster.ts up create it)' };
  if (!c.running) return { ...base, status: 'warn', summary: 'created but not running', fix: 'npx zx scripts/cluster.ts up' };
  return { ...base, status: 'ok', summary: `running (Kubernetes ${c.version}), ${c.readyNodes} of ${c.nodes} nodes ready` };
}

/** Every check, in the order a reader fixes them. */
export function evaluate(f: DoctorFacts): Check[] {
  const s = supplyOf(f);
  return [checkNode(f), checkTools(f, s), checkGo(f, s), checkGoProxy(f, s), checkReleaseHosts(f), checkDisk(f, s), checkEngine(f), checkCluster(f)];
}

export function verdict(checks: readonly Check[]): { ok: boolean; exitCode: 0 | 1; failed: string[]; warnings: string[] } {
  const failed = checks.filter((c) => c.status === 'fail').map((c) => c.id);
  return { ok: !failed.length, exitCode: failed.length ? 1 : 0, failed, warnings: checks.filter((c) => c.status === 'warn').map((c) => c.id) };
}

const MARK: Record<CheckStatus, string> = { ok: '✔', warn: '!', fail: '✖', skip: '-' };

export function renderChecks(checks: readonly Check[]): string {
  const w = Math.max(...checks.map((c) => c.title.length));
  const lines = checks.flatMap((c) => [
    `${MARK[c.status]} ${c.title.padEnd(w)}  ${c.required ? 'required' : 'optional'}  ${c.summary}`,
    ...(c.fix && c.status !== 'ok' ? [`  ${' '.repeat(w)}  fix:      ${c.fix}`] : []),
  ]);
  const v = verdict(checks);
  const warn = v.warnings.length ? ` (${v.warnings.length} warning${v.warnings.length > 1 ? 's' : ''}: ${v.warnings.join(', ')})` : '';
  lines.push('', v.ok ? `Everything required is there${warn}.` : `Required and missing: ${v.failed.join(', ')}${warn}. Run the fix lines above, then this check again.`);
  return lines.join('\n');
}
