// A Compose project on a real engine: validation before anything starts, the exact front-end
// commands for Docker Compose or podman-compose, and waiting until every service is healthy
// (on podman, running the health checks itself: Podman 4.3 schedules them with systemd timers).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { UserError, usageError } from '../core/errors.ts';
import { registerSecret } from '../core/redact.ts';
import { displayPath, REPO_ROOT } from '../core/paths.ts';
import {
  activeServices,
  checkEnv,
  checkImages,
  isSecretName,
  loadComposeFile,
  parseEnvText,
  readEnvFile,
  renderForPodman,
  resolveDocument,
  startLayers,
  variablesUsed,
  type ComposeDocument,
  type Env,
  type EnvProblem,
} from '../domain/compose-model.ts';
import { containerLogs, exec, projectContainers, runHealthcheck, showCommand, type Command, type ContainerState, type Engine } from '../adapters/container.ts';

export const DEFAULT_COMPOSE_FILE = path.join(REPO_ROOT, 'compose', 'compose.yaml');
export const DEFAULT_ENV_FILE = path.join(REPO_ROOT, 'compose', '.env');

export interface ProjectOptions {
  file: string;
  envFile: string;
  profiles: string[];
  project?: string;
  /** Down/ps/logs need names only: missing variables render empty instead of failing. */
  lenient?: boolean;
  /** All profiles (down removes every service the file knows). */
  allProfiles?: boolean;
}

export interface Project {
  file: string;
  dir: string;
  name: string;
  doc: ComposeDocument;
  env: Env;
  envFile: string;
  profiles: string[];
  services: string[];
  resolved: ComposeDocument;
  layers: string[][];
}

/** Load the file and env; the env seen by Compose is the file's values overridden by the shell's. */
export function loadProject(o: ProjectOptions): Project {
  const file = path.resolve(o.file);
  const doc = loadComposeFile(file);
  const allProfiles = [...new Set(Object.values(doc.services).flatMap((s) => s.profiles ?? []))];
  const profiles = o.allProfiles ? allProfiles : o.profiles;
  const services = activeServices(doc, profiles);
  const used = variablesUsed(doc, services);
  let fileEnv: Env = {};
  if (fs.existsSync(o.envFile)) fileEnv = readEnvFile(o.envFile).env;
  else if (!o.lenient) readEnvFile(o.envFile); // throws the friendly "does not exist" error
  const env: Env = { ...fileEnv };
  for (const name of used.keys()) if (process.env[name] !== undefined) env[name] = process.env[name] as string;
  for (const [k, v] of Object.entries(env)) if (isSecretName(k)) registerSecret(v);
  const resolved = resolveDocument(doc, env, services, !o.lenient);
  return {
    file,
    dir: path.dirname(file),
    name: o.project ?? doc.name ?? 'conduit',
    doc,
    env,
    envFile: path.resolve(o.envFile),
    profiles,
    services,
    resolved,
    layers: startLayers(doc, services),
  };
}

/** Everything `up` checks before it touches the engine; an empty list means go. */
export function validateProject(o: ProjectOptions): { project?: Project; problems: EnvProblem[] } {
  readEnvFile(o.envFile); // a missing or malformed env file is its own clear error
  const lenient = loadProject({ ...o, lenient: true });
  const examplePath = path.join(lenient.dir, '.env.example');
  const placeholders = fs.existsSync(examplePath) ? Object.fromEntries(parseEnvText(fs.readFileSync(examplePath, 'utf8')).map((e) => [e.key, e.value])) : undefined;
  const problems = checkEnv(lenient.env, variablesUsed(lenient.doc, lenient.services), { placeholders });
  problems.push(...checkImages(lenient.resolved));
  if (problems.length) return { problems };
  return { project: loadProject(o), problems };
}

export function problemsError(envFile: string, problems: EnvProblem[]): UserError {
  const lines = problems.map((p) => `  ${p.variable} ${p.problem} (${p.hint})`);
  return new UserError(`${displayPath(envFile)} is not ready for this stack:\n${lines.join('\n')}`, {
    hint: 'Fix the values above in the env file; nothing was started.',
    details: problems,
  });
}

// ---- front-end commands ---------------------------------------------------------------------

/** A private directory for the rendered podman-compose file and its env files (removed after use). */
export interface Rendered {
  dir: string;
  file: string;
  cleanup: () => void;
}

export function renderPodmanProject(p: Project): Rendered {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-compose-'));
  fs.chmodSync(dir, 0o700);
  const { document, envFiles } = renderForPodman(p.resolved, p.dir, dir);
  for (const [f, text] of Object.entries(envFiles)) fs.writeFileSync(f, text, { mode: 0o600 });
  const file = path.join(dir, 'compose.yaml');
  fs.writeFileSync(file, YAML.stringify(document, { lineWidth: 0 }), { mode: 0o600 });
  return { dir, file, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** The base of every front-end call: which files, which project, which env. */
export function composeBase(engine: Engine, p: Project, rendered?: Rendered, profiles: string[] = p.profiles): Command {
  if (engine.name === 'docker') {
    const args = [...engine.compose.slice(1), '--file', p.file, '--project-name', p.name];
    if (fs.existsSync(p.envFile)) args.push('--env-file', p.envFile);
    for (const pr of profiles) args.push('--profile', pr);
    return { cmd: engine.compose[0], args };
  }
  const file = rendered?.file ?? '<rendered compose file>';
  return { cmd: engine.compose[0], args: [...engine.compose.slice(1), '--file', file, '--project-name', p.name] };
}

export function withArgs(base: Command, ...args: string[]): Command {
  return { ...base, args: [...base.args, ...args] };
}

/** The commands `up` runs: docker starts everything at once (it honours depends_on conditions);
 *  podman-compose ignores conditions, so it gets one call per dependency layer, each followed by a wait. */
export function upCommands(engine: Engine, p: Project, rendered?: Rendered): { command: Command; waitFor: string[] }[] {
  const base = composeBase(engine, p, rendered);
  if (engine.name === 'docker') return [{ command: withArgs(base, 'up', '--detach', '--remove-orphans'), waitFor: p.services }];
  const started: string[] = [];
  return p.layers.map((layer) => {
    started.push(...layer);
    return { command: withArgs(base, 'up', '-d', ...started), waitFor: [...layer] };
  });
}

/** The project name the podman-compose parse check runs under (see configCommand). */
export function checkProjectName(p: Project): string {
  return `${p.name}-check-${process.pid}`;
}

/** Let the front end parse the whole stack without starting anything. podman-compose 1.0.3 has no
 *  `config` verb: `--dry-run up` runs its full parser (interpolation, every container's arguments),
 *  but still creates the project's network and named volumes, so it runs under a throwaway
 *  project name whose network and volumes frontEndCheck removes afterwards. */
export function configCommand(engine: Engine, p: Project, rendered?: Rendered): Command {
  if (engine.name === 'docker') return withArgs(composeBase(engine, p, rendered), 'config', '--quiet');
  const base = composeBase(engine, { ...p, name: checkProjectName(p) }, rendered);
  return { ...base, args: ['--dry-run', ...base.args, 'up', '-d'] };
}

/** Run the front end's parse check and leave nothing behind. */
export async function frontEndCheck(engine: Engine, p: Project, rendered?: Rendered): Promise<void> {
  try {
    await runFrontEnd(configCommand(engine, p, rendered), p.dir);
  } finally {
    if (engine.name === 'podman') await removeProjectResources(engine, checkProjectName(p));
  }
}

/** Remove the volumes and networks podman-compose created for a project (by its label). */
export async function removeProjectResources(engine: Engine, project: string): Promise<void> {
  const label = `label=io.podman.compose.project=${project}`;
  const vols = await exec({ cmd: engine.bin, args: ['volume', 'ls', '--quiet', '--filter', label] });
  const names = vols.stdout
    .split('\n')
    .map((v) => v.trim())
    .filter(Boolean);
  if (names.length) await exec({ cmd: engine.bin, args: ['volume', 'rm', ...names] });
  const nets = await exec({ cmd: engine.bin, args: ['network', 'ls', '--quiet', '--filter', label] });
  const ids = nets.stdout
    .split('\n')
    .map((v) => v.trim())
    .filter(Boolean);
  if (ids.length) await exec({ cmd: engine.bin, args: ['network', 'rm', ...ids] });
}

export function downCommand(engine: Engine, p: Project, volumes: boolean, rendered?: Rendered): Command {
  const base = composeBase(engine, p, rendered, engine.name === 'docker' ? ['*'] : p.profiles);
  const args = engine.name === 'docker' ? ['down', '--remove-orphans', '--timeout', '60'] : ['down', '-t', '60'];
  if (volumes) args.push(engine.name === 'docker' ? '--volumes' : '-v');
  return withArgs(base, ...args);
}

export function describePlan(commands: Command[]): string {
  return commands.map(showCommand).join('\n');
}

// ---- waiting for health -----------------------------------------------------------------------

export interface ServiceStatus {
  service: string;
  container: string;
  state: string;
  health: string;
  ready: boolean;
  ports: string;
}

export function statusOf(services: readonly string[], containers: ContainerState[]): ServiceStatus[] {
  return services.map((s) => {
    const c = containers.find((x) => x.service === s);
    if (!c) return { service: s, container: '-', state: 'missing', health: '-', ready: false, ports: '' };
    const ready = c.state === 'running' && (c.health === 'healthy' || c.health === 'none');
    return { service: s, container: c.name, state: c.state, health: c.health, ready, ports: c.ports };
  });
}

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  progress?: (note: string) => void;
}

/** Poll until every named service runs and is healthy (or has no health check); on podman, trigger the checks. */
export async function waitHealthy(engine: Engine, project: string, services: readonly string[], o: WaitOptions): Promise<{ ok: boolean; statuses: ServiceStatus[] }> {
  const deadline = Date.now() + o.timeoutMs;
  const interval = o.intervalMs ?? 2000;
  for (;;) {
    let containers = await projectContainers(engine, project);
    if (engine.name === 'podman') {
      const pending = containers.filter((c) => services.includes(c.service) && c.state === 'running' && c.health !== 'healthy' && c.health !== 'none');
      for (const c of pending) await runHealthcheck(engine, c.name);
      if (pending.length) containers = await projectContainers(engine, project);
    }
    const statuses = statusOf(services, containers);
    const waiting = statuses.filter((s) => !s.ready);
    o.progress?.(
      `${statuses.length - waiting.length}/${statuses.length} ready${waiting.length ? `; waiting for ${waiting.map((w) => `${w.service} (${w.state}${w.health !== '-' && w.health !== 'none' ? `, ${w.health}` : ''})`).join(', ')}` : ''}`,
    );
    if (!waiting.length) return { ok: true, statuses };
    if (Date.now() >= deadline) return { ok: false, statuses };
    await new Promise((r) => setTimeout(r, Math.min(interval, Math.max(0, deadline - Date.now()))));
  }
}

export async function lastLogs(engine: Engine, statuses: ServiceStatus[], lines = 20): Promise<string> {
  const parts: string[] = [];
  for (const s of statuses.filter((x) => !x.ready)) {
    const logs = s.container === '-' ? '(no container)' : await containerLogs(engine, s.container, lines);
    parts.push(`--- ${s.service}: ${s.state}${s.health !== '-' ? `, ${s.health}` : ''} (last ${lines} log lines)\n${logs || '(no output)'}`);
  }
  return parts.join('\n');
}

export function requireServices(p: Project, names: string[]): string[] {
  for (const n of names) {
    if (!p.doc.services[n]) throw usageError(`unknown service "${n}"`, `Services: ${Object.keys(p.doc.services).join(', ')}.`);
  }
  return names.length ? names : p.services;
}

export async function runFrontEnd(c: Command, cwd: string): Promise<void> {
  const r = await exec(c, { cwd, timeoutMs: 30 * 60_000 });
  if (r.exitCode !== 0) {
    const tail = (r.stderr + '\n' + r.stdout).trim().split('\n').slice(-20).join('\n');
    throw new UserError(`${showCommand(c)} exited ${r.exitCode}:\n${tail}`, { hint: 'See the output above; nothing after this step ran.' });
  }
}
