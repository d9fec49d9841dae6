#!/usr/bin/env -S npx zx
// compose.ts: run the ConduitLLM Compose stack: validate, start and wait for health, stop, inspect.
import path from 'node:path';
import YAML from 'yaml';
import { askOnTerminal, runCommand } from './lib/core/cli.ts';
import { containerLogs, detectEngine, exec, projectContainers, projectVolumes, showCommand, type Engine } from './lib/adapters/container.ts';
import { parseDuration } from './lib/domain/compose-model.ts';
import { planEnvInit, writeEnvFile, type EnvInitPlan } from './lib/engines/compose-init.ts';
import {
  configCommand,
  DEFAULT_COMPOSE_FILE,
  DEFAULT_ENV_FILE,
  describePlan,
  downCommand,
  frontEndCheck,
  lastLogs,
  loadProject,
  problemsError,
  renderPodmanProject,
  requireServices,
  runFrontEnd,
  statusOf,
  upCommands,
  validateProject,
  waitHealthy,
  type Project,
  type ProjectOptions,
  type Rendered,
} from './lib/engines/compose.ts';
import { usageError, UserError } from './lib/core/errors.ts';
import { redact, redactValue } from './lib/core/redact.ts';
import { displayPath } from './lib/core/paths.ts';
import { formatMs, table, type Reporter } from './lib/core/ui.ts';

const spec = {
  name: 'compose.ts',
  summary: 'Run the ConduitLLM Compose stack with Docker Compose or podman-compose.',
  usage: ['npx zx scripts/compose.ts init [FILE] [--force] [--dry-run] [--json]', 'npx zx scripts/compose.ts up | down | ps | logs [SERVICE...] | config | restart [SERVICE...] [flags]'],
  verbs: {
    init: 'Write the env file (FILE, --env-file or compose/.env) from .env.example with every secret generated; never prints them.',
    up: 'Validate the env file and the stack, start it, and wait until every service is healthy.',
    down: 'Stop and remove the containers. Volumes stay unless --volumes (asks first; --yes without a terminal).',
    ps: 'Show each service: container, state, health, ports.',
    logs: 'Print the last --tail lines of each (or the named) service.',
    config: 'Validate, then print the resolved stack (secrets masked).',
    restart: 'Restart the named services (all when none is named) and wait until they are healthy.',
  },
  flags: {
    'env-file': { type: 'string' as const, arg: 'F', description: `Env file with every variable (default: .env beside the compose file, ${displayPath(DEFAULT_ENV_FILE)}).` },
    profile: { type: 'string' as const, arg: 'P', multiple: true as const, description: 'Enable an optional part: webui.' },
    file: { type: 'string' as const, arg: 'F', description: `Compose file (default: ${displayPath(DEFAULT_COMPOSE_FILE)}).` },
    project: { type: 'string' as const, arg: 'NAME', description: "Project name (default: the file's name:, conduit)." },
    engine: { type: 'string' as const, arg: 'E', description: 'docker or podman (default: docker when its engine works, else podman).' },
    timeout: { type: 'string' as const, arg: 'DUR', default: '10m', description: 'How long up/restart wait for health (e.g. 90s, 5m; first starts run migrations).' },
    tail: { type: 'string' as const, arg: 'N', default: '100', description: 'Log lines per service for logs.' },
    volumes: { type: 'boolean' as const, description: 'With down: also delete the named volumes (database, Redis, RabbitMQ, metrics). Irreversible.' },
    yes: { type: 'boolean' as const, description: 'Confirm --volumes without a prompt (required when stdin is not a terminal).' },
    force: { type: 'boolean' as const, description: 'With init: replace an existing env file (new secrets; see the note below).' },
    'dry-run': { type: 'boolean' as const, description: 'Validate and print the engine commands (init: what it would write); change nothing.' },
  },
  examples: [
    'npx zx scripts/compose.ts init',
    'npx zx scripts/compose.ts up --env-file compose/.env',
    'npx zx scripts/compose.ts up --env-file compose/.env --profile webui',
    'npx zx scripts/compose.ts logs api --tail 50',
    'npx zx scripts/compose.ts down --volumes --yes',
  ],
  notes: [
    'Node 20 checks that an --env-file path exists before any script code runs: a missing file ends with "node: F: not found" (exit 9).',
    "  So init takes a new file's path as FILE (compose.ts init compose/prod.env); --env-file works for one that exists (with --force).",
    'init --force replaces every secret: a stack that already ran keeps its first PostgreSQL, RabbitMQ and Grafana passwords in its volumes.',
    'Environment: CONDUIT_DOCKER, CONDUIT_PODMAN, CONDUIT_PODMAN_COMPOSE point at other binaries; CONTAINERS_CONF is honoured by podman.',
  ],
};

function projectOptions(flags: { file?: string; 'env-file'?: string; profile: string[]; project?: string }): ProjectOptions {
  const file = flags.file ?? DEFAULT_COMPOSE_FILE;
  // Like Compose: the .env beside the compose file unless --env-file names another one.
  return { file, envFile: flags['env-file'] ?? path.join(path.dirname(path.resolve(file)), '.env'), profiles: flags.profile, project: flags.project };
}

/** Run fn with the rendered podman-compose file (podman only), always removing it afterwards. */
async function withRendered<T>(engine: Engine, p: Project, fn: (r?: Rendered) => Promise<T>): Promise<T> {
  if (engine.name !== 'podman') return fn(undefined);
  const r = renderPodmanProject(p);
  try {
    return await fn(r);
  } finally {
    r.cleanup();
  }
}

async function confirmVolumes(names: string[], yes: boolean, reporter: Reporter): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) throw usageError('--volumes deletes data and needs confirmation', 'Pass --yes (stdin is not a terminal).');
  reporter.warn(`this deletes the volumes ${names.join(', ') || '(none found)'}: all database, Redis, RabbitMQ and metrics data`);
  const answer = await askOnTerminal('Type "delete" to continue: ');
  if (answer !== 'delete') throw new UserError('aborted: volumes kept', { exitCode: 1 });
}

function describeInit(plan: EnvInitPlan, dryRun: boolean): string {
  const target = displayPath(plan.target);
  const lines = [
    dryRun
      ? `Dry run: nothing was written. init would ${plan.replaces ? 'replace' : 'write'} ${target} (mode 0600) from ${displayPath(plan.template)},`
      : `${plan.replaces ? 'Replaced' : 'Wrote'} ${target} (mode 0600) from ${displayPath(plan.template)},`,
    `with ${plan.generated.length} generated secrets of ${plan.secretLength} random letters and digits (not shown; read them in the file):`,
    ...plan.generated.map((v) => `  ${v}`),
  ];
  if (!dryRun) lines.push('It passes the env-file checks of `compose.ts up`.');
  const byProfile = new Map<string, string[]>();
  for (const t of plan.toFill) {
    const key = t.profiles.length ? t.profiles.join(', ') : '(used by no service)';
    byProfile.set(key, [...(byProfile.get(key) ?? []), t.variable]);
  }
  for (const [profiles, vars] of byProfile) {
    lines.push('', profiles === 'default' ? 'Still to fill in by hand before `up`:' : `Still to fill in by hand before using the profile ${profiles}:`, ...vars.map((v) => `  ${v}`));
  }
  const fileFlag = plan.composeFile === path.resolve(DEFAULT_COMPOSE_FILE) ? '' : ` --file ${displayPath(plan.composeFile)}`;
  const envFlag = plan.target === path.join(path.dirname(plan.composeFile), '.env') ? '' : ` --env-file ${target}`;
  lines.push('', `Next: npx zx scripts/compose.ts up${fileFlag}${envFlag}`);
  return lines.join('\n');
}

async function initEnvFile(flags: { file?: string; 'env-file'?: string; force: boolean; 'dry-run': boolean }, rest: string[], reporter: Reporter): Promise<number> {
  if (rest.length > 1) throw usageError(`init takes one env file path at most (got ${rest.join(' ')})`);
  if (rest.length && flags['env-file']) throw usageError('init got the env file twice (FILE and --env-file)', 'Pass one of them.');
  const composeFile = flags.file ?? DEFAULT_COMPOSE_FILE;
  const target = rest[0] ?? projectOptions({ file: composeFile, 'env-file': flags['env-file'], profile: [] }).envFile;
  const plan = planEnvInit({ composeFile, target, force: flags.force });
  const data = { ok: true, envFile: plan.target, template: plan.template, mode: '0600', replaced: plan.replaces, generated: plan.generated, secretLength: plan.secretLength, toFill: plan.toFill };
  if (flags['dry-run']) {
    reporter.result(describeInit(plan, true), { ...data, dryRun: true });
    return 0;
  }
  if (plan.replaces) reporter.warn(`replacing ${displayPath(plan.target)}: every secret in it changes`);
  await reporter.step(`generate ${plan.generated.length} secrets and write ${displayPath(plan.target)}`, async () => writeEnvFile(plan));
  reporter.result(describeInit(plan, false), data);
  return 0;
}

function statusTable(rows: { service: string; container: string; state: string; health: string; ports: string }[]): string {
  return table(
    ['service', 'container', 'state', 'health', 'ports'],
    rows.map((r) => [r.service, r.container, r.state, r.health, r.ports]),
  );
}

await runCommand(spec, async ({ flags, positionals, reporter }) => {
  const [verb, ...rest] = positionals;
  if (!verb) throw usageError('a verb is required', 'Use: compose.ts init | up | down | ps | logs | config | restart (see --help)');
  if (!['init', 'up', 'down', 'ps', 'logs', 'config', 'restart'].includes(verb)) throw usageError(`unknown verb "${verb}"`, 'Use: init | up | down | ps | logs | config | restart');
  if (verb === 'init') return initEnvFile(flags, rest, reporter);
  if (rest.length && !['logs', 'restart'].includes(verb)) throw usageError(`${verb} takes no service names`);
  if (flags.volumes && verb !== 'down') throw usageError('--volumes only applies to down');
  if (flags.force) throw usageError('--force only applies to init');
  const dryRun = flags['dry-run'];
  const timeoutMs = parseDuration(flags.timeout as string);
  const opts = projectOptions(flags);
  const started = performance.now();

  if (verb === 'up' || verb === 'config') {
    const { project, problems } = await reporter.step('validate env file and stack', async () => validateProject(opts));
    if (!project) throw problemsError(opts.envFile, problems);
    const engine = await detectEngine({ choice: flags.engine, compose: true, dryRun });
    if (verb === 'config') {
      await withRendered(engine, project, async (r) => reporter.step(`${engine.name} compose config`, () => frontEndCheck(engine, project, r)));
      const text = redact(YAML.stringify(project.resolved, { lineWidth: 0 }));
      reporter.result(text, { ok: true, engine: engine.name, project: project.name, services: project.services, config: redactValue(project.resolved) });
      return 0;
    }
    return withRendered(engine, project, async (rendered) => {
      const steps = upCommands(engine, project, rendered);
      if (dryRun) {
        const commands = [configCommand(engine, project, rendered), ...steps.map((s) => s.command)];
        reporter.result(
          `engine: ${engine.name}\nservices: ${project.services.join(', ')}\n\n${describePlan(commands)}${engine.name === 'podman' ? '\n(each podman-compose up is followed by a health wait for that layer)' : ''}`,
          {
            ok: true,
            dryRun: true,
            engine: engine.name,
            services: project.services,
            commands: commands.map((c) => [c.cmd, ...c.args]),
          },
        );
        return 0;
      }
      await reporter.step(`${engine.name} compose config`, () => frontEndCheck(engine, project, rendered));
      for (const [i, s] of steps.entries()) {
        await reporter.step(steps.length > 1 ? `start ${s.waitFor.join(', ')} (${i + 1}/${steps.length})` : `start ${project.services.length} services`, () => runFrontEnd(s.command, project.dir));
        const deadline = started + timeoutMs - performance.now();
        const result = await reporter.step(`wait for ${s.waitFor.length === project.services.length ? 'all services' : s.waitFor.join(', ')} to be healthy`, (progress) =>
          waitHealthy(engine, project.name, s.waitFor, { timeoutMs: Math.max(0, deadline), progress }),
        );
        if (!result.ok) {
          const logs = await lastLogs(engine, result.statuses);
          throw new UserError(
            `not healthy within ${flags.timeout}: ${result.statuses
              .filter((x) => !x.ready)
              .map((x) => x.service)
              .join(', ')}\n${statusTable(result.statuses)}\n${logs}`,
            {
              hint: 'Fix the cause shown in the logs, then run up again (it keeps the running services).',
              details: result.statuses,
            },
          );
        }
      }
      const statuses = statusOf(project.services, await projectContainers(engine, project.name));
      reporter.result(`${statusTable(statuses)}\n\n${project.services.length} services healthy in ${formatMs(performance.now() - started)} (project ${project.name}, ${engine.name}).`, {
        ok: true,
        engine: engine.name,
        project: project.name,
        services: statuses,
        ms: Math.round(performance.now() - started),
      });
      return 0;
    });
  }

  // The other verbs need names only: missing variables are no reason to refuse to stop a stack.
  const project = loadProject({ ...opts, lenient: true, allProfiles: verb === 'down' });
  const engine = await detectEngine({ choice: flags.engine, compose: verb === 'down', dryRun });

  if (verb === 'down') {
    const volumes = flags.volumes ? await projectVolumes(engine, project.name).catch(() => []) : [];
    return withRendered(engine, project, async (rendered) => {
      const cmd = downCommand(engine, project, flags.volumes, rendered);
      if (dryRun) {
        reporter.result(`engine: ${engine.name}\n\n${showCommand(cmd)}${flags.volumes ? `\n(would delete volumes: ${volumes.join(', ') || 'none found'})` : ''}`, {
          ok: true,
          dryRun: true,
          command: [cmd.cmd, ...cmd.args],
          volumes,
        });
        return 0;
      }
      if (flags.volumes) await confirmVolumes(volumes, flags.yes, reporter);
      await reporter.step(`stop and remove ${project.name}${flags.volumes ? ' and its volumes' : ''}`, () => runFrontEnd(cmd, project.dir));
      const left = await projectContainers(engine, project.name);
      const keptVolumes = await projectVolumes(engine, project.name);
      if (left.length) throw new UserError(`containers left after down: ${left.map((c) => c.name).join(', ')}`);
      reporter.result(`Project ${project.name} stopped. ${flags.volumes ? `Volumes deleted (${volumes.length}).` : `Volumes kept: ${keptVolumes.join(', ') || 'none'}.`}`, {
        ok: true,
        project: project.name,
        volumesDeleted: flags.volumes ? volumes : [],
        volumesKept: keptVolumes,
      });
      return 0;
    });
  }

  if (verb === 'ps') {
    const containers = await projectContainers(engine, project.name);
    const known = new Set(containers.map((c) => c.service));
    const services = [...new Set([...project.services.filter((s) => known.has(s) || !project.doc.services[s].profiles?.length), ...known])];
    const statuses = statusOf(services, containers);
    reporter.result(statuses.length ? statusTable(statuses) : `No containers in project ${project.name}.`, { ok: true, project: project.name, services: statuses });
    return 0;
  }

  if (verb === 'logs') {
    const services = requireServices(project, rest);
    const tail = Number(flags.tail);
    if (!Number.isInteger(tail) || tail < 1) throw usageError(`--tail must be a positive number (got ${flags.tail})`);
    const containers = (await projectContainers(engine, project.name)).filter((c) => services.includes(c.service));
    if (!containers.length) throw new UserError(`no containers for ${services.join(', ')} in project ${project.name}`, { hint: 'Start the stack with compose.ts up.' });
    const out: Record<string, string> = {};
    for (const c of containers) out[c.service] = redact(await containerLogs(engine, c.name, tail));
    reporter.result(
      Object.entries(out)
        .map(([s, l]) => `=== ${s}\n${l}`)
        .join('\n\n'),
      { ok: true, logs: out },
    );
    return 0;
  }

  // restart
  const services = requireServices(project, rest);
  const containers = (await projectContainers(engine, project.name)).filter((c) => services.includes(c.service));
  if (!containers.length) throw new UserError(`no containers for ${services.join(', ')} in project ${project.name}`, { hint: 'Start the stack with compose.ts up.' });
  const cmd = { cmd: engine.bin, args: ['restart', '--time', '60', ...containers.map((c) => c.name)] };
  if (dryRun) {
    reporter.result(showCommand(cmd), { ok: true, dryRun: true, command: [cmd.cmd, ...cmd.args] });
    return 0;
  }
  await reporter.step(`restart ${containers.map((c) => c.service).join(', ')}`, async () => {
    const r = await exec(cmd, { timeoutMs: 5 * 60_000 });
    if (r.exitCode !== 0) throw new UserError(`${showCommand(cmd)} exited ${r.exitCode}: ${r.stderr.trim()}`);
  });
  const names = containers.map((c) => c.service);
  const result = await reporter.step('wait for health', (progress) => waitHealthy(engine, project.name, names, { timeoutMs, progress }));
  if (!result.ok)
    throw new UserError(
      `not healthy within ${flags.timeout}: ${result.statuses
        .filter((x) => !x.ready)
        .map((x) => x.service)
        .join(', ')}\n${await lastLogs(engine, result.statuses)}`,
    );
  reporter.result(`${statusTable(result.statuses)}\n\nRestarted ${names.length} service(s) in ${formatMs(performance.now() - started)}.`, { ok: true, services: result.statuses });
  return 0;
});
