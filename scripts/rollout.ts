#!/usr/bin/env -S npx zx
// rollout.ts: move a release through the fleet in waves (values/clusters.yaml `rollout:`), each wave
// deployed by the deploy engine and soaked under the gate of our SLO rules.
import path from 'node:path';
import { confirmOnTerminal, runCommand, type ParsedFlags } from './lib/core/cli.ts';
import { loadRegistry, type ClusterConfig } from './lib/domain/clusters.ts';
import { executeDeployRun, resolveDeployRun, type DeployRunHooks } from './lib/engines/deploy.ts';
import { localClusterStatus, upLocalCluster } from './lib/engines/cluster.ts';
import { executeChange, helmScopeOf, planAction, readFacts, type RunbookContext } from './lib/engines/runbook.ts';
import { abortRollout, readRolloutState, resumable, resumeRollout, startRollout, type RolloutContext, type RolloutHooks, type WaveSummary } from './lib/engines/rollout.ts';
import { gateChecksFromRules, gateQueries, type GateChecks } from './lib/domain/rollout-gate.ts';
import { inputsDigest, planWaves, type RolloutInputs, type RolloutPlan, type RolloutState } from './lib/domain/rollout.ts';
import { loadRules } from './lib/domain/rules.ts';
import { connectKube, helmClient, resolveTarget } from './lib/domain/target.ts';
import { helmMajor } from './lib/adapters/helm.ts';
import { usageError, UserError } from './lib/core/errors.ts';
import { displayPath } from './lib/core/paths.ts';
import { formatMs, table, type Reporter } from './lib/core/ui.ts';

const VERBS = ['plan', 'start', 'resume', 'status', 'abort'] as const;
type Verb = (typeof VERBS)[number];

const spec = {
  name: 'rollout.ts',
  summary: 'Roll a release out to the fleet in waves (values/clusters.yaml rollout:), each wave soaked under the gate of our SLO burn-rate rules and critical alerts.',
  usage: [
    'npx zx scripts/rollout.ts plan|start|resume [--image-tag T] [--values FILE]... [--set k=v]... [--soak DUR] [--interval DUR] [--dry-run] [--yes] [--json]',
    'npx zx scripts/rollout.ts status [--id ID] [--json]',
    'npx zx scripts/rollout.ts abort [--reason TEXT] [--json]',
  ],
  verbs: {
    plan: "The waves, their soak, the gate queries and thresholds per cluster, and what each deploy would change (the deploy engine's diff). Changes nothing.",
    start: "Ask every cluster's Prometheus, then deploy wave by wave; after each wave soak it under the gate. A breach stops the rollout and rolls the breached cluster back.",
    resume: 'Go on with the newest unfinished rollout (same inputs) from its first wave that has not passed; a breached or interrupted wave is soaked again.',
    status: "The newest rollout (or --id) as the clusters' audit trails tell it: waves, clusters, every step with the gate's values.",
    abort: 'End the newest unfinished rollout: recorded in every cluster it touched; nothing is rolled back.',
  },
  flags: {
    'image-tag': { type: 'string' as const, arg: 'T', description: 'Image tag of api, admin and webui for every cluster.' },
    values: { type: 'string' as const, arg: 'FILE', multiple: true as const, description: 'Extra values file for every cluster, after its layers.' },
    set: { type: 'string' as const, arg: 'K=V', multiple: true as const, description: 'Value override for every cluster (values are never recorded; resume needs them again).' },
    soak: { type: 'string' as const, arg: 'DUR', description: "Soak time of every wave instead of the registry's (e.g. 10m; 0s checks once)." },
    interval: { type: 'string' as const, arg: 'DUR', description: "How often the gate asks Prometheus during a soak instead of the registry's." },
    'dry-run': { type: 'boolean' as const, description: 'With start or resume: show the plan only (as plan does).' },
    yes: { type: 'boolean' as const, description: 'Confirm deploys to protected clusters without asking.' },
    timeout: { type: 'string' as const, arg: 'DUR', description: "How long helm waits for each cluster's rollout before rolling it back.", default: '10m' },
    helm: { type: 'string' as const, arg: '3|4', description: 'Helm major version (default 4, or CONDUIT_HELM_MAJOR).' },
    'skip-image-check': { type: 'boolean' as const, description: "Do not ask the images' registries whether each tag exists." },
    'gate-fail-open': { type: 'boolean' as const, description: 'Count a Prometheus that does not answer as holding (warned) instead of stopping.' },
    registry: { type: 'string' as const, arg: 'FILE', description: 'Cluster registry to read instead of values/clusters.yaml.' },
    id: { type: 'string' as const, arg: 'ID', description: 'With status: this rollout instead of the newest.' },
    reason: { type: 'string' as const, arg: 'TEXT', description: 'With abort: why (recorded).' },
  },
  examples: [
    'npx zx scripts/rollout.ts plan --image-tag master-7c3fd76',
    'npx zx scripts/rollout.ts start --image-tag master-7c3fd76 --yes',
    'npx zx scripts/rollout.ts status',
    'npx zx scripts/rollout.ts resume --image-tag master-7c3fd76 --yes',
  ],
  notes: [
    'Exit codes: 0 done, 1 stopped (gate breached, Prometheus unreachable, deploy failed) or invalid input, 2 usage, 130 interrupted (resumable).',
    'Prometheus credentials come from the env var or file the registry names (prometheus.bearerTokenEnv, ...), never from flags.',
  ],
};

type Flags = ParsedFlags<typeof spec.flags>;

function verbOf(positionals: string[]): Verb {
  const [verb, ...rest] = positionals;
  if (!verb || !(VERBS as readonly string[]).includes(verb)) throw usageError(`${verb ? `unknown verb "${verb}"` : 'no verb given'}`, `Use one of: ${VERBS.join(', ')} (see --help).`);
  if (rest.length) throw usageError(`unexpected arguments: ${rest.join(' ')}`, 'rollout.ts takes one verb and flags (see --help).');
  return verb as Verb;
}

function inputsOf(flags: Flags): RolloutInputs {
  const values = flags.values.map((f) => path.resolve(f));
  const setKeys = flags.set.map((s) => s.split('=')[0]);
  return { imageTag: flags['image-tag'], values: values.map(displayPath), setKeys, digest: inputsDigest(values, flags.set, flags['image-tag']), helm: helmMajor(flags.helm) };
}

const deployHooks: DeployRunHooks = {
  validation: async () => (await import('./lib/engines/validate.ts')).startValidation,
  localCluster: { running: async () => (await localClusterStatus()).running, up: async (reporter) => void (await upLocalCluster(reporter)) },
  confirm: confirmOnTerminal,
};

/** One cluster's deploy, as deploy.ts would run it with the same flags. */
function deployRequest(flags: Flags, reporter: Reporter, registry: string, c: ClusterConfig, dryRun: boolean) {
  const { values, set, yes, timeout, helm } = flags;
  const request = { cluster: c.name, registry, values, set, 'image-tag': flags['image-tag'], 'dry-run': dryRun, yes, timeout, helm, diff: 'release', 'skip-image-check': flags['skip-image-check'] };
  return resolveDeployRun(request, [], reporter, deployHooks);
}

/** The deploy engine per cluster (as deploy.ts runs it) and the runbook's rollback. */
function rolloutHooks(flags: Flags, reporter: Reporter, registry: string): RolloutHooks {
  return {
    deploy: async (c) => {
      const r = await executeDeployRun(deployRequest(flags, reporter, registry, c, false));
      if (r.kind !== 'deployed') throw new Error('a rollout deploy ran as a dry run');
      const o = r.outcome;
      const summary =
        o.result === 'unchanged' ? `revision ${o.revision} kept (nothing to change)` : `revision ${o.revision}${o.previousRevision ? ` (was ${o.previousRevision})` : ' (first install)'}`;
      return { result: o.result, revision: o.revision, previousRevision: o.previousRevision, summary };
    },
    rollback: async (c, revision) => {
      const target = resolveTarget(c);
      const helm = await helmClient(helmMajor(flags.helm));
      const ctx: RunbookContext = { target, kube: await connectKube(target), helm: helm.withScope(helmScopeOf(target)), step: (title, fn) => reporter.step(title, () => fn()) };
      const req = { action: 'rollback' as const, toRevision: revision, timeout: flags.timeout ?? '10m' };
      const out = await executeChange(ctx, planAction(target, req, await readFacts(ctx, req), helm));
      return out.summary;
    },
  };
}

/** plan (and start/resume --dry-run): the waves, the gate per cluster, each deploy's diff. */
async function showPlan(flags: Flags, reporter: Reporter, plan: RolloutPlan, checks: GateChecks): Promise<number> {
  const waves = [];
  for (const w of plan.waves) {
    const clusters = [];
    for (const c of w.clusters) {
      const dry = await executeDeployRun(deployRequest(flags, reporter, plan.registry, c, true));
      const diff = dry.kind === 'dry-run' ? dry.diff : undefined;
      const change =
        dry.kind !== 'dry-run'
          ? ''
          : !dry.reachable
            ? 'cluster not reachable: no diff'
            : !diff
              ? 'no diff'
              : diff.firstInstall
                ? `first install (${diff.objects.length} objects)`
                : diff.changed
                  ? `${diff.objects.length} object(s) change: ${diff.objects.join(', ')}`
                  : 'no change';
      clusters.push({
        cluster: c.name,
        context: c.context,
        namespace: c.namespace,
        prometheus: c.prometheus!.url,
        queries: gateQueries(checks, c.namespace, c.prometheus!.selector).map((q) => q.expr),
        change,
      });
    }
    waves.push({ wave: w.name, soak: w.soak, clusters });
  }
  const thresholds = checks.burn.map((b) => `${b.slo}: ${b.series} > ${b.factor} * ${b.budget} = ${b.threshold} (short window of ${b.alert}, ${b.file})`);
  const human = [
    `Rollout plan (${displayPath(plan.registry)}), the gate every ${plan.interval}; nothing was changed.`,
    '',
    table(
      ['wave', 'soak', 'cluster', 'namespace', 'what the deploy would change'],
      waves.flatMap((w) => w.clusters.map((c) => [w.wave, w.soak, c.cluster, c.namespace, c.change])),
    ),
    '',
    'Gate (from alerts/): a wave goes on only while, for each of its clusters,',
    ...thresholds.map((t) => `  ${t}`),
    `  and none of our critical alerts fires (${checks.criticalAlerts.join(', ')}).`,
  ].join('\n');
  reporter.result(human, { ok: true, dryRun: true, interval: plan.interval, gate: checks, waves });
  return 0;
}

function waveTable(waves: WaveSummary[]): string {
  return table(
    ['wave', 'cluster', 'deploy', 'revision', 'gate at the end of the soak'],
    waves.flatMap((w) => w.clusters.map((c) => [w.wave, c.cluster, c.result, c.revision === undefined ? '-' : `${c.revision}${c.previousRevision ? ` (was ${c.previousRevision})` : ''}`, c.gate])),
  );
}

function formatState(s: RolloutState, unreadable: string[]): string {
  const rows = s.waves.flatMap((w) =>
    w.clusters.map((c) => {
      const k = s.clusters[c];
      return [w.name, w.status, c, k.event ?? '-', k.revision === undefined ? '-' : `${k.revision}${k.previousRevision ? ` (before: ${k.previousRevision})` : ''}`];
    }),
  );
  const story = s.entries.map((e) => {
    const d = e.details;
    const gate = (d.gate ?? []).filter((g) => !g.ok).map((g) => `${g.name}: ${g.text} [${g.expr}]`);
    return `  ${e.time}  ${(e.cluster ?? '').padEnd(10)} ${d.wave.padEnd(10)} ${d.event}${d.reason ? `: ${d.reason}` : ''}${gate.length ? `\n      ${gate.join('\n      ')}` : ''}`;
  });
  const inputs = `image tag ${s.inputs.imageTag ?? '(chart default)'}${s.inputs.values.length ? `, values ${s.inputs.values.join(', ')}` : ''}${s.inputs.setKeys.length ? `, --set ${s.inputs.setKeys.join(', ')}` : ''}`;
  return [
    `Rollout ${s.id} (started ${s.startedAt}): ${s.outcome}${s.reason ? ` (${s.reason})` : ''}; ${inputs}; helm ${s.inputs.helm}`,
    '',
    table(['wave', 'wave status', 'cluster', 'last step', 'revision'], rows),
    '',
    'Steps, oldest first:',
    ...story,
    ...unreadable.map((u) => `warning: could not read the audit trail of ${u}`),
  ].join('\n');
}

async function showStatus(flags: Flags, reporter: Reporter, plan: RolloutPlan): Promise<number> {
  const { state, unreadable } = await readRolloutState(plan, flags.id);
  if (!state) {
    const names = plan.waves.flatMap((w) => w.clusters.map((c) => c.name)).join(', ');
    const warnings = unreadable.map((u) => `\nwarning: could not read the audit trail of ${u}`).join('');
    reporter.result(`No rollout${flags.id ? ` ${flags.id}` : ''} in the audit trails of ${names}.${warnings}`, {
      ok: true,
      rollout: null,
      unreadable,
    });
    return 0;
  }
  reporter.result(formatState(state, unreadable), { ok: true, rollout: { ...state, entries: state.entries.map((e) => ({ time: e.time, cluster: e.cluster, ...e.details })) }, unreadable });
  return 0;
}

/** The newest rollout, read from every cluster: resume and abort refuse to act on part of the story. */
async function fleetState(plan: RolloutPlan): Promise<RolloutState | undefined> {
  const { state, unreadable } = await readRolloutState(plan);
  if (unreadable.length)
    throw new UserError(`cannot read the audit trail of every cluster of the rollout; nothing was changed:\n  ${unreadable.join('\n  ')}`, {
      hint: 'The state of a rollout is kept in the clusters: make them reachable (kube context, credentials), then try again.',
    });
  return state;
}

async function run(verb: Verb, flags: Flags, reporter: Reporter): Promise<number> {
  const registry = loadRegistry(flags.registry);
  const plan = planWaves(registry, { soak: flags.soak, interval: flags.interval });
  if (verb === 'status') return showStatus(flags, reporter, plan);
  const checks = gateChecksFromRules(loadRules());
  if (verb === 'plan' || flags['dry-run']) return showPlan(flags, reporter, plan, checks);
  const inputs = inputsOf(flags);
  const ctx: RolloutContext = { plan, checks, reporter, inputs, hooks: rolloutHooks(flags, reporter, registry.file), failOpen: flags['gate-fail-open'] };
  if (verb === 'abort') {
    const state = await fleetState(plan);
    if (!state) throw new UserError('there is no rollout to abort in the audit trails of these clusters');
    const touched = await abortRollout(ctx, state, flags.reason ?? 'aborted by the operator');
    reporter.result(`Rollout ${state.id} aborted (recorded in ${touched.join(', ') || 'no cluster'}); nothing was rolled back.`, { ok: true, id: state.id, aborted: touched });
    return 0;
  }
  const guarded = plan.waves.flatMap((w) => w.clusters.filter((c) => c.protected).map((c) => c.name));
  if (guarded.length && !flags.yes && !process.stdin.isTTY)
    throw usageError(`the rollout reaches protected cluster(s) ${guarded.join(', ')} and there is no terminal to confirm on`, 'Pass --yes to confirm them (after rollout.ts plan).');
  const started = performance.now();
  const done = verb === 'start' ? await startRollout(ctx) : await resumeRollout(ctx, resumable(await fleetState(plan), inputs));
  reporter.result(`Rollout ${done.id} completed in ${formatMs(performance.now() - started)}: ${plan.waves.map((w) => w.name).join(' -> ')}.\n\n${waveTable(done.waves)}`, {
    ok: true,
    id: done.id,
    waves: done.waves,
  });
  return 0;
}

await runCommand(spec, async ({ flags, positionals, reporter }) => run(verbOf(positionals), flags, reporter));
