// Typed access to the container engine: Docker (with buildx and the compose plugin) or podman
// (with Debian's podman-compose). Every call is an argv array built here; callers get plans
// (the commands) before anything runs, so --dry-run and tests see exactly what would happen.
import fs from 'node:fs';
import { toolError, UserError } from '../core/errors.ts';
import { CommandFailed, formatArgv, run, runChecked, type RunOptions, type RunResult } from '../core/exec.ts';

export type EngineName = 'docker' | 'podman';
export const ENGINES: readonly EngineName[] = ['docker', 'podman'];

export interface Engine {
  name: EngineName;
  /** The engine binary (docker or podman). */
  bin: string;
  version: string;
  /** The compose front end: ['docker', 'compose'] or ['podman-compose']. */
  compose: string[];
}

export interface Command {
  cmd: string;
  args: string[];
  /** Extra environment (never shown; secrets travel here, not in args). */
  env?: Record<string, string>;
}

export function showCommand(c: Command): string {
  return formatArgv(c.cmd, c.args);
}

export async function exec(c: Command, options: RunOptions = {}): Promise<RunResult> {
  return run(c.cmd, c.args, { ...options, env: { ...(options.env ?? {}), ...(c.env ?? {}) } });
}

export async function execChecked(c: Command, options: RunOptions = {}): Promise<RunResult> {
  return runChecked(c.cmd, c.args, { ...options, env: { ...(options.env ?? {}), ...(c.env ?? {}) } });
}

function binFor(name: EngineName): string {
  return process.env[`CONDUIT_${name.toUpperCase()}`] || name;
}

async function probe(cmd: string, args: string[]): Promise<RunResult | undefined> {
  try {
    const r = await run(cmd, args, { timeoutMs: 20_000 });
    return r.exitCode === 0 ? r : undefined;
  } catch {
    return undefined;
  }
}

/** Docker counts only with a reachable engine and buildx; otherwise podman. */
async function dockerUsable(): Promise<{ version: string } | string> {
  const bin = binFor('docker');
  const server = await probe(bin, ['version', '--format', '{{.Server.Version}}']);
  if (!server) return 'docker: no reachable Docker engine';
  const buildx = await probe(bin, ['buildx', 'version']);
  if (!buildx) return 'docker: the buildx plugin is missing';
  return { version: server.stdout.trim() };
}

async function podmanUsable(): Promise<{ version: string } | string> {
  const r = await probe(binFor('podman'), ['version', '--format', '{{.Client.Version}}']);
  return r ? { version: r.stdout.trim() } : 'podman: not installed or not working';
}

export interface DetectOptions {
  /** The user's --engine choice. */
  choice?: string;
  /** Also require the compose front end. */
  compose?: boolean;
  /** Dry runs accept a chosen engine without checking it is installed. */
  dryRun?: boolean;
}

const INSTALL_HINT = 'Install Docker with buildx and the compose plugin, or podman (Debian: apt-get install podman buildah runc podman-compose).';

export async function detectEngine(options: DetectOptions = {}): Promise<Engine> {
  const { choice } = options;
  if (choice !== undefined && !ENGINES.includes(choice as EngineName)) {
    throw toolError(`--engine must be docker or podman (got "${choice}")`);
  }
  const make = (name: EngineName, version: string): Engine => ({
    name,
    bin: binFor(name),
    version,
    compose: name === 'docker' ? [binFor('docker'), 'compose'] : [process.env.CONDUIT_PODMAN_COMPOSE || 'podman-compose'],
  });
  if (choice && options.dryRun) return make(choice as EngineName, 'unchecked');
  const reasons: string[] = [];
  const order: EngineName[] = choice ? [choice as EngineName] : ['docker', 'podman'];
  for (const name of order) {
    const ok = name === 'docker' ? await dockerUsable() : await podmanUsable();
    if (typeof ok === 'string') {
      reasons.push(ok);
      continue;
    }
    const engine = make(name, ok.version);
    if (options.compose) {
      const c = engine.compose;
      const r = await probe(c[0], [...c.slice(1), 'version']);
      if (!r) {
        reasons.push(`${name}: ${c.join(' ')} is missing`);
        continue;
      }
    }
    return engine;
  }
  throw toolError(`no usable container engine (${reasons.join('; ')})`, INSTALL_HINT);
}

/** What each engine offers on this machine, for `tools.ts doctor` (never throws; probes run at once). */
export interface EngineReport {
  docker: { bin: string; client: boolean; server?: string; buildx: boolean; compose: boolean };
  podman: { bin: string; version?: string; compose: boolean; runtime?: string; runc: boolean };
  /** CONTAINERS_CONF, when set (podman reads it instead of the system's containers.conf). */
  containersConf?: string;
}

export async function inspectEngines(): Promise<EngineReport> {
  const docker = binFor('docker');
  const podman = binFor('podman');
  const podmanCompose = process.env.CONDUIT_PODMAN_COMPOSE || 'podman-compose';
  const [client, server, buildx, dockerCompose, pv, pc, runtime, runc] = await Promise.all([
    probe(docker, ['--version']),
    probe(docker, ['version', '--format', '{{.Server.Version}}']),
    probe(docker, ['buildx', 'version']),
    probe(docker, ['compose', 'version']),
    probe(podman, ['version', '--format', '{{.Client.Version}}']),
    probe(podmanCompose, ['version']),
    probe(podman, ['info', '--format', '{{.Host.OCIRuntime.Name}}']),
    probe('runc', ['--version']),
  ]);
  return {
    docker: { bin: docker, client: Boolean(client), server: server?.stdout.trim() || undefined, buildx: Boolean(buildx), compose: Boolean(dockerCompose) },
    podman: { bin: podman, version: pv?.stdout.trim() || undefined, compose: Boolean(pc), runtime: runtime?.stdout.trim() || undefined, runc: Boolean(runc) },
    ...(process.env.CONTAINERS_CONF ? { containersConf: process.env.CONTAINERS_CONF } : {}),
  };
}

// ---- images ---------------------------------------------------------------------------------

export interface BuildSpec {
  dockerfile: string;
  context: string;
  /** An alternative ignore file (podman: --ignorefile; Docker reads <Dockerfile>.dockerignore itself). */
  ignorefile?: string;
  /** Named build contexts (--build-context NAME=DIR). */
  contexts: Record<string, string>;
  buildArgs: Record<string, string>;
  labels: Record<string, string>;
  /** Full references to tag the result with. */
  tags: string[];
  platform?: string;
}

export function buildCommand(engine: Engine, spec: BuildSpec): Command {
  const args: string[] = [];
  if (engine.name === 'docker') args.push('buildx', 'build', '--load');
  else args.push('build', '--format', 'docker'); // OCI format would drop HEALTHCHECK
  args.push('--file', spec.dockerfile);
  if (engine.name === 'podman' && spec.ignorefile) args.push('--ignorefile', spec.ignorefile);
  if (spec.platform) args.push('--platform', spec.platform);
  for (const [k, v] of Object.entries(spec.contexts)) args.push('--build-context', `${k}=${v}`);
  for (const [k, v] of Object.entries(spec.buildArgs)) args.push('--build-arg', `${k}=${v}`);
  for (const [k, v] of Object.entries(spec.labels)) args.push('--label', `${k}=${v}`);
  for (const t of spec.tags) args.push('--tag', t);
  args.push(spec.context);
  return { cmd: engine.bin, args };
}

export interface PushOptions {
  /** Plain HTTP / no TLS verification (a local registry). */
  insecure?: boolean;
  digestFile?: string;
}

export function pushCommand(engine: Engine, ref: string, options: PushOptions = {}): Command {
  if (engine.name === 'docker') return { cmd: engine.bin, args: ['push', ref] };
  const args = ['push'];
  if (options.insecure) args.push('--tls-verify=false');
  if (options.digestFile) args.push('--digestfile', options.digestFile);
  args.push(ref);
  return { cmd: engine.bin, args };
}

const DIGEST = /sha256:[0-9a-f]{64}/;

/** Push with retries (registries drop connections); returns the manifest digest the registry stored. */
export async function pushImage(engine: Engine, ref: string, options: PushOptions & { attempts?: number; delayMs?: number; onRetry?: (attempt: number, error: string) => void } = {}): Promise<string> {
  const attempts = options.attempts ?? 3;
  let last: RunResult | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const digestFile = engine.name === 'podman' ? fs.mkdtempSync('/tmp/conduit-push-') + '/digest' : undefined;
    try {
      last = await exec(pushCommand(engine, ref, { ...options, digestFile }), { timeoutMs: 30 * 60_000 });
      if (last.exitCode === 0) {
        const text = digestFile && fs.existsSync(digestFile) ? fs.readFileSync(digestFile, 'utf8') : last.stdout + last.stderr;
        const digest = DIGEST.exec(text)?.[0];
        if (!digest) throw new UserError(`pushed ${ref} but found no digest in the engine's answer`);
        return digest;
      }
    } finally {
      if (digestFile) fs.rmSync(digestFile.replace(/\/digest$/, ''), { recursive: true, force: true });
    }
    if (attempt < attempts) {
      options.onRetry?.(attempt, (last.stderr || last.stdout).trim().split('\n').pop() ?? '');
      await new Promise((r) => setTimeout(r, (options.delayMs ?? 2000) * attempt));
    }
  }
  throw new UserError(`push of ${ref} failed after ${attempts} attempts`, {
    hint: 'Check the registry address and your login (docker/podman login).',
    details: { error: new CommandFailed(last as RunResult).message },
  });
}

export interface ImageInfo {
  id: string;
  labels: Record<string, string>;
  user: string;
  healthcheck?: string[];
}

export async function inspectImage(engine: Engine, ref: string): Promise<ImageInfo> {
  const r = await execChecked({ cmd: engine.bin, args: ['image', 'inspect', ref] });
  type Raw = { Id: string; Healthcheck?: { Test?: string[] }; Config?: { Labels?: Record<string, string>; User?: string; Healthcheck?: { Test?: string[] } } };
  const [img] = JSON.parse(r.stdout) as Raw[];
  // Docker keeps the health check in Config; podman reports it beside Config.
  return { id: img.Id, labels: img.Config?.Labels ?? {}, user: img.Config?.User ?? '', healthcheck: (img.Config?.Healthcheck ?? img.Healthcheck)?.Test };
}

// ---- containers -----------------------------------------------------------------------------

export type Health = 'healthy' | 'unhealthy' | 'starting' | 'none';

export interface ContainerState {
  id: string;
  name: string;
  service: string;
  /** running, exited, created, restarting, ... */
  state: string;
  exitCode: number;
  health: Health;
  ports: string;
}

/** The containers of a Compose project (both front ends set com.docker.compose.* labels). */
export async function projectContainers(engine: Engine, project: string): Promise<ContainerState[]> {
  const list = await execChecked({ cmd: engine.bin, args: ['ps', '-a', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.ID}}'] });
  const ids = list.stdout
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!ids.length) return [];
  const r = await execChecked({ cmd: engine.bin, args: ['inspect', '--type', 'container', ...ids] });
  type Raw = {
    Id: string;
    Name: string;
    Config?: { Labels?: Record<string, string>; Healthcheck?: { Test?: string[] } };
    State?: { Status?: string; ExitCode?: number; Health?: { Status?: string }; Healthcheck?: { Status?: string } };
    NetworkSettings?: { Ports?: Record<string, { HostIp?: string; HostPort?: string }[] | null> };
  };
  return (JSON.parse(r.stdout) as Raw[]).map((c) => {
    const hs = c.State?.Health?.Status ?? c.State?.Healthcheck?.Status ?? '';
    const hasCheck = Boolean(c.Config?.Healthcheck?.Test?.length) && c.Config?.Healthcheck?.Test?.[0] !== 'NONE';
    const health: Health = hs === 'healthy' || hs === 'unhealthy' || hs === 'starting' ? hs : hasCheck ? 'starting' : 'none';
    const ports = Object.entries(c.NetworkSettings?.Ports ?? {})
      .flatMap(([p, binds]) => (binds ?? []).map((b) => `${b.HostIp || '0.0.0.0'}:${b.HostPort}->${p}`))
      .join(', ');
    return {
      id: c.Id.slice(0, 12),
      name: c.Name.replace(/^\//, ''),
      service: c.Config?.Labels?.['com.docker.compose.service'] ?? '',
      state: c.State?.Status ?? 'unknown',
      exitCode: c.State?.ExitCode ?? 0,
      health,
      ports,
    };
  });
}

/**
 * Podman 4.3 schedules health checks with systemd timers; without systemd they never run.
 * Run one check now: exit 0 healthy, 1 unhealthy (still within retries/start period counts as starting).
 */
export async function runHealthcheck(engine: Engine, container: string): Promise<boolean> {
  const r = await exec({ cmd: engine.bin, args: ['healthcheck', 'run', container] }, { timeoutMs: 60_000 });
  return r.exitCode === 0;
}

export async function containerLogs(engine: Engine, container: string, tail: number): Promise<string> {
  const r = await exec({ cmd: engine.bin, args: ['logs', '--tail', String(tail), container] }, { timeoutMs: 30_000 });
  return (r.stdout + r.stderr).trimEnd();
}

export async function projectVolumes(engine: Engine, project: string): Promise<string[]> {
  const r = await exec({ cmd: engine.bin, args: ['volume', 'ls', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.Name}}'] });
  return r.exitCode === 0
    ? r.stdout
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean)
        .sort()
    : [];
}
