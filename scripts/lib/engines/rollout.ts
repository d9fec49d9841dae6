// The rollout engine: a release moved through the fleet wave by wave (values/clusters.yaml `rollout:`).
// Each cluster of a wave is deployed by the deploy engine (handed in by the verb: an engine never
// imports another verb's engine), then the wave soaks: the gate asks each cluster's Prometheus for the
// series of our SLO rules and our critical alerts (domain/rollout-gate.ts) every interval. A breach
// stops the rollout, rolls the breached cluster back to its revision from before the wave and leaves
// later waves untouched. Every step is an audit entry in the cluster's namespace (domain/rollout.ts),
// which is all `status`, `resume` and `abort` need. Ctrl-C during a soak records where it stopped.
import { appendAudit, readAudit, type AuditResult, type StoredAuditEntry } from '../domain/audit.ts';
import type { ClusterConfig } from '../domain/clusters.ts';
import { defaultHolderIdentity } from '../domain/lease.ts';
import { gateQueries, judge, type GateChecks, type GateReading } from '../domain/rollout-gate.ts';
import { newRolloutId, ROLLOUT_ACTION, rolloutState, type RolloutEvent, type RolloutInputs, type RolloutPlan, type RolloutRecord, type RolloutState, type RolloutWave } from '../domain/rollout.ts';
import { connectKube, resolveTarget } from '../domain/target.ts';
import { PrometheusClient, PrometheusUnreachable } from '../adapters/prometheus.ts';
import type { Kube } from '../adapters/kube.ts';
import { UserError } from '../core/errors.ts';
import { EXIT_INTERRUPTED, InterruptGuard } from '../core/interrupt.ts';
import { formatMs, type Reporter } from '../core/ui.ts';

/** How one cluster's deploy ended, as the deploy engine reports it. */
export interface ClusterDeploy {
  result: AuditResult;
  revision?: number;
  previousRevision?: number;
  summary: string;
}

/** What the rollout needs of the other verbs' engines (deploy, runbook), wired by rollout.ts. */
export interface RolloutHooks {
  deploy: (cluster: ClusterConfig) => Promise<ClusterDeploy>;
  /** Roll a cluster's release back to `revision` (runbook rollback: lock, audit); returns one line. */
  rollback: (cluster: ClusterConfig, revision: number) => Promise<string>;
}

export interface RolloutContext {
  plan: RolloutPlan;
  checks: GateChecks;
  reporter: Reporter;
  hooks: RolloutHooks;
  inputs: RolloutInputs;
  /** Count an unreachable Prometheus as holding (with a warning) instead of stopping. */
  failOpen?: boolean;
  actor?: string;
  /** Test seam: the clock's sleep. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** One cluster's answer from the gate. */
export interface ClusterReading {
  cluster: string;
  readings: GateReading[];
  /** Set when its Prometheus could not be asked. */
  unreachable?: string;
  ms: number;
}

// ---------------------------------------------------------------------------------------------
// The gate

const clients = new Map<string, PrometheusClient>();

function clientFor(c: ClusterConfig): PrometheusClient {
  const key = `${c.name} ${c.prometheus!.url}`;
  let client = clients.get(key);
  if (!client) clients.set(key, (client = new PrometheusClient(c.prometheus!)));
  return client;
}

/** Ask one cluster's Prometheus every query of the gate, in parallel, and judge the answers. */
export async function readGate(checks: GateChecks, c: ClusterConfig, signal?: AbortSignal): Promise<ClusterReading> {
  const started = performance.now();
  const queries = gateQueries(checks, c.namespace, c.prometheus!.selector);
  try {
    const client = clientFor(c);
    const answers = await Promise.all(queries.map((q) => client.query(q.expr, signal)));
    return { cluster: c.name, readings: queries.map((q, i) => judge(q, answers[i])), ms: performance.now() - started };
  } catch (e) {
    if (e instanceof PrometheusUnreachable) return { cluster: c.name, readings: [], unreachable: e.message, ms: performance.now() - started };
    throw e;
  }
}

export const breaches = (r: ClusterReading) => r.readings.filter((x) => !x.ok);

/** One line per cluster: each query's value against its threshold. */
export function describeReading(r: ClusterReading): string {
  if (r.unreachable) return `${r.cluster}: ${r.unreachable}`;
  return `${r.cluster}: ${r.readings.map((x) => `${x.ok ? 'ok' : 'BREACH'} ${x.name}: ${x.text}`).join('; ')}`;
}

/** Every cluster of the waves still to run must have a Prometheus that answers before anything changes. */
export async function preflightGate(ctx: RolloutContext, waves: RolloutWave[]): Promise<ClusterReading[]> {
  const clusters = waves.flatMap((w) => w.clusters);
  const readings = await ctx.reporter.step(`ask the Prometheus of ${clusters.map((c) => c.name).join(', ')} (the rollout gate)`, () => Promise.all(clusters.map((c) => readGate(ctx.checks, c))));
  const down = readings.filter((r) => r.unreachable);
  if (down.length && !ctx.failOpen) {
    throw new UserError(`the rollout gate cannot ask Prometheus; nothing was deployed:\n  ${down.map(describeReading).join('\n  ')}`, {
      hint: "Check each cluster's prometheus.url and credentials in the registry, and that Prometheus is up. --gate-fail-open counts an unreachable Prometheus as holding (not advised).",
      details: { unreachable: down },
    });
  }
  for (const r of down) ctx.reporter.warn(`${describeReading(r)} (--gate-fail-open: counted as holding)`);
  for (const r of readings.filter((x) => !x.unreachable)) ctx.reporter.info(`gate before the rollout: ${describeReading(r)}`);
  return readings;
}

// ---------------------------------------------------------------------------------------------
// The audit records

/** One rollout as it runs: its id, the header every record carries, the kube client per cluster. */
export interface RolloutRun {
  id: string;
  ctx: RolloutContext;
  kubes: Map<string, Kube>;
}

async function kubeOf(run: RolloutRun, c: ClusterConfig): Promise<Kube> {
  let k = run.kubes.get(c.name);
  if (!k) {
    const t = resolveTarget(c);
    run.kubes.set(c.name, (k = await connectKube({ context: t.context, kubeconfig: t.kubeconfig })));
  }
  return k;
}

const RESULT_OF: Record<RolloutEvent, AuditResult> = {
  deploying: 'started',
  deployed: 'succeeded',
  'deploy-failed': 'failed',
  'soak-passed': 'succeeded',
  breached: 'failed',
  'rolled-back': 'rolled-back',
  'gate-unreachable': 'failed',
  interrupted: 'interrupted',
  completed: 'succeeded',
  aborted: 'refused',
};

/** Record one step of the rollout in a cluster's audit trail. */
export async function record(run: RolloutRun, c: ClusterConfig, wave: string, event: RolloutEvent, extra: Partial<RolloutRecord> & { summary?: string } = {}): Promise<StoredAuditEntry> {
  const { summary, ...rest } = extra;
  const plan = run.ctx.plan;
  const details: RolloutRecord = {
    id: run.id,
    event,
    release: [...new Set(plan.waves.flatMap((w) => w.clusters.map((x) => x.release)))].join(','),
    waves: plan.waves.map((w) => ({ name: w.name, clusters: w.clusters.map((x) => x.name) })),
    wave,
    inputs: run.ctx.inputs,
    ...rest,
  };
  return appendAudit(await kubeOf(run, c), {
    time: new Date().toISOString(),
    actor: run.ctx.actor ?? defaultHolderIdentity(),
    action: ROLLOUT_ACTION,
    result: RESULT_OF[event],
    cluster: c.name,
    namespace: c.namespace,
    release: c.release,
    summary: summary ?? `rollout ${run.id}: wave ${wave}: ${event}`,
    details: details as unknown as Record<string, unknown>,
  });
}

/** The audit entries of every cluster of the plan (clusters that cannot be read are named, not fatal). */
export async function readFleetAudit(plan: RolloutPlan, kubes = new Map<string, Kube>()): Promise<{ entries: StoredAuditEntry[]; unreadable: string[] }> {
  const clusters = plan.waves.flatMap((w) => w.clusters);
  const out = await Promise.all(
    clusters.map(async (c) => {
      try {
        const t = resolveTarget(c);
        const kube = kubes.get(c.name) ?? (await connectKube({ context: t.context, kubeconfig: t.kubeconfig }));
        kubes.set(c.name, kube);
        return { entries: await readAudit(kube, c.namespace) };
      } catch (e) {
        return { entries: [], unreadable: `${c.name}: ${(e as Error).message.split('\n')[0]}` };
      }
    }),
  );
  return { entries: out.flatMap((o) => o.entries), unreadable: out.flatMap((o) => (o.unreadable ? [o.unreadable] : [])) };
}

/** The newest rollout of this plan's clusters (or the one named). */
export async function readRolloutState(plan: RolloutPlan, id?: string): Promise<{ state?: RolloutState; unreadable: string[] }> {
  const { entries, unreadable } = await readFleetAudit(plan);
  return { state: rolloutState(entries, id), unreadable };
}

// ---------------------------------------------------------------------------------------------
// Waves

/** The soak of a wave: the gate asked every interval until the soak time is over. */
type SoakResult = { kind: 'held'; readings: ClusterReading[] } | { kind: 'breached' | 'unreachable'; readings: ClusterReading[] } | { kind: 'interrupted'; readings: ClusterReading[]; leftMs: number };

const defaultSleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

function progressLine(left: number, readings: ClusterReading[]): string {
  return `${formatMs(Math.max(0, left))} left; ${readings.map(describeReading).join(' | ')}`;
}

async function soak(ctx: RolloutContext, wave: RolloutWave): Promise<SoakResult> {
  const guard = new InterruptGuard({
    onFirst: (sig) => ctx.reporter.warn(`${sig}: stopping the soak of wave ${wave.name}; the rollout stays resumable (rollout.ts resume).`),
    describeLeftovers: () => `wave ${wave.name} is deployed and its soak is being recorded as interrupted.`,
  }).install();
  const sleep = ctx.sleep ?? defaultSleep;
  const deadline = performance.now() + wave.soakSeconds * 1000;
  try {
    return await ctx.reporter.step(`soak wave ${wave.name} for ${wave.soak} (the gate every ${ctx.plan.interval})`, async (progress) => {
      for (;;) {
        const readings = await Promise.all(wave.clusters.map((c) => readGate(ctx.checks, c, guard.signal).catch((e) => (guard.interrupted ? undefined : Promise.reject(e)))));
        const left = deadline - performance.now();
        if (guard.interrupted || readings.some((r) => !r)) return { kind: 'interrupted', readings: readings.filter((r): r is ClusterReading => !!r), leftMs: left };
        const got = readings as ClusterReading[];
        progress(progressLine(left, got));
        if (got.some((r) => breaches(r).length)) return { kind: 'breached', readings: got };
        if (got.some((r) => r.unreachable) && !ctx.failOpen) return { kind: 'unreachable', readings: got };
        if (left <= 0) return { kind: 'held', readings: got };
        await sleep(Math.min(left, ctx.plan.intervalSeconds * 1000), guard.signal);
        if (guard.interrupted) return { kind: 'interrupted', readings: got, leftMs: deadline - performance.now() };
      }
    });
  } finally {
    guard.dispose();
  }
}

const gateRecord = (readings: ClusterReading[]) =>
  readings.flatMap((r) => r.readings.map((x) => ({ cluster: r.cluster, name: x.name, expr: x.expr, value: x.value, threshold: x.threshold, text: x.text, ok: x.ok })));

/** Deploy the clusters of a wave that are not already at this rollout's release, in order. */
async function deployWave(run: RolloutRun, wave: RolloutWave, state: RolloutState | undefined): Promise<Map<string, ClusterDeploy>> {
  const done = new Map<string, ClusterDeploy>();
  for (const c of wave.clusters) {
    const known = state?.clusters[c.name];
    if (known?.deployed) {
      run.ctx.reporter.info(`${c.name}: already deployed by this rollout (revision ${known.revision}); not deployed again`);
      done.set(c.name, { result: 'succeeded', revision: known.revision, previousRevision: known.previousRevision, summary: 'deployed earlier' });
      continue;
    }
    // A first install creates the namespace (the deploy engine does, with its Pod Security labels): until
    // then there is no trail to write to, and the `deployed` record is the first of this cluster.
    if (await (await kubeOf(run, c)).get('namespace', c.namespace)) await record(run, c, wave.name, 'deploying');
    let out: ClusterDeploy;
    try {
      out = await run.ctx.hooks.deploy(c);
    } catch (e) {
      const reason = (e as Error).message.split('\n')[0].slice(0, 400);
      await record(run, c, wave.name, (e as UserError).exitCode === EXIT_INTERRUPTED ? 'interrupted' : 'deploy-failed', { reason }).catch(() => undefined);
      throw e;
    }
    // Unchanged: this rollout changed nothing there, so a breach has nothing of ours to roll back.
    const previousRevision = out.result === 'unchanged' ? undefined : out.previousRevision;
    await record(run, c, wave.name, 'deployed', { revision: out.revision, previousRevision, summary: `rollout ${run.id}: wave ${wave.name}: ${out.summary}` });
    done.set(c.name, { ...out, previousRevision });
  }
  return done;
}

/** A breach: record it, roll each breached cluster back to its revision from before the wave, stop. */
async function stopOnBreach(run: RolloutRun, wave: RolloutWave, readings: ClusterReading[], deployed: Map<string, ClusterDeploy>): Promise<never> {
  const lines: string[] = [];
  for (const r of readings.filter((x) => breaches(x).length)) {
    const c = wave.clusters.find((x) => x.name === r.cluster)!;
    const why = breaches(r).map((b) => `${b.name}: ${b.text}\n    query: ${b.expr}`);
    lines.push(`${c.name}: ${why.join('\n  ')}`);
    await record(run, c, wave.name, 'breached', {
      gate: gateRecord([r]),
      reason: breaches(r)
        .map((b) => `${b.name}: ${b.text}`)
        .join('; '),
    });
    const before = deployed.get(c.name)?.previousRevision;
    if (before === undefined) {
      const reason = deployed.get(c.name)?.result === 'unchanged' ? 'this rollout changed nothing there' : 'it was a first install';
      run.ctx.reporter.warn(`${c.name}: not rolled back: ${reason} (no revision of ours to undo)`);
      lines.push(`  ${c.name} was not rolled back: ${reason}`);
      continue;
    }
    const done = await run.ctx.hooks.rollback(c, before);
    await record(run, c, wave.name, 'rolled-back', { previousRevision: before, reason: done, summary: `rollout ${run.id}: wave ${wave.name}: ${done}` });
    lines.push(`  ${c.name} rolled back to revision ${before} (${done})`);
  }
  const later = run.ctx.plan.waves.slice(run.ctx.plan.waves.indexOf(wave) + 1).map((w) => w.name);
  throw new UserError(`rollout ${run.id} stopped: the gate of wave ${wave.name} was breached:\n  ${lines.join('\n  ')}${later.length ? `\nWaves not started: ${later.join(', ')}.` : ''}`, {
    hint: 'Find the cause (npx zx scripts/runbook.ts status/diagnose --cluster NAME); once it is fixed, npx zx scripts/rollout.ts resume redeploys this wave and goes on. status tells the whole story.',
    details: { id: run.id, wave: wave.name, gate: gateRecord(readings) },
  });
}

/**
 * `rollout.ts abort` may have been run (from anywhere) while this wave deployed or soaked: then the
 * wave is not marked passed and no later wave starts. Asked once per wave, after its soak (a resume
 * of an aborted rollout is refused before it gets here).
 */
async function stopIfAborted(run: RolloutRun, wave: RolloutWave): Promise<void> {
  const { state } = await readRolloutState(run.ctx.plan, run.id);
  if (state?.outcome !== 'aborted') return;
  const later = run.ctx.plan.waves.slice(run.ctx.plan.waves.indexOf(wave) + 1).map((w) => w.name);
  throw new UserError(`rollout ${run.id} was aborted (rollout.ts abort) during wave ${wave.name}; nothing was rolled back.${later.length ? `\nWaves not started: ${later.join(', ')}.` : ''}`, {
    details: { id: run.id, wave: wave.name, aborted: true },
  });
}

async function stopUnreachable(run: RolloutRun, wave: RolloutWave, readings: ClusterReading[]): Promise<never> {
  const down = readings.filter((r) => r.unreachable);
  for (const r of down)
    await record(
      run,
      wave.clusters.find((c) => c.name === r.cluster)!,
      wave.name,
      'gate-unreachable',
      { reason: r.unreachable },
    );
  throw new UserError(`rollout ${run.id} stopped in wave ${wave.name}: the gate cannot ask Prometheus (it fails closed):\n  ${down.map(describeReading).join('\n  ')}`, {
    hint: 'Nothing was rolled back: the wave stays deployed. Bring Prometheus back, then npx zx scripts/rollout.ts resume soaks this wave again.',
  });
}

async function stopInterrupted(run: RolloutRun, wave: RolloutWave, leftMs: number): Promise<never> {
  for (const c of wave.clusters) await record(run, c, wave.name, 'interrupted', { reason: `soak interrupted with ${formatMs(leftMs)} left` });
  throw new UserError(`rollout ${run.id} interrupted during the soak of wave ${wave.name} (${formatMs(Math.max(0, leftMs))} left); the wave stays deployed`, {
    exitCode: EXIT_INTERRUPTED,
    hint: 'npx zx scripts/rollout.ts resume soaks this wave again from the start and goes on; abort ends the rollout here.',
  });
}

export interface WaveSummary {
  wave: string;
  clusters: { cluster: string; result: string; revision?: number; previousRevision?: number; gate: string }[];
  ms: number;
}

/** Run the waves from `from` on: deploy, soak, record; stops (throws) on the first breach. */
export async function runWaves(run: RolloutRun, from: number, state?: RolloutState): Promise<WaveSummary[]> {
  const { plan, reporter } = run.ctx;
  const summaries: WaveSummary[] = [];
  for (const wave of plan.waves.slice(from)) {
    const started = performance.now();
    reporter.info(`wave ${wave.name} (${plan.waves.indexOf(wave) + 1}/${plan.waves.length}): ${wave.clusters.map((c) => c.name).join(', ')}`);
    const deployed = await deployWave(run, wave, state);
    const soaked = await soak(run.ctx, wave);
    if (soaked.kind === 'interrupted') await stopInterrupted(run, wave, soaked.leftMs);
    if (soaked.kind === 'breached') await stopOnBreach(run, wave, soaked.readings, deployed);
    if (soaked.kind === 'unreachable') await stopUnreachable(run, wave, soaked.readings);
    await stopIfAborted(run, wave);
    for (const c of wave.clusters) await record(run, c, wave.name, 'soak-passed', { gate: gateRecord(soaked.readings.filter((r) => r.cluster === c.name)) });
    summaries.push({
      wave: wave.name,
      ms: performance.now() - started,
      clusters: wave.clusters.map((c) => {
        const d = deployed.get(c.name);
        const r = soaked.readings.find((x) => x.cluster === c.name);
        return { cluster: c.name, result: d?.result ?? 'succeeded', revision: d?.revision, previousRevision: d?.previousRevision, gate: r ? describeReading(r).replace(`${c.name}: `, '') : '' };
      }),
    });
  }
  const last = plan.waves.at(-1)!;
  for (const c of last.clusters) await record(run, c, last.name, 'completed');
  return summaries;
}

/** A new rollout: the gate answers for every cluster first, then the waves in order. */
export async function startRollout(ctx: RolloutContext): Promise<{ id: string; waves: WaveSummary[] }> {
  await preflightGate(ctx, ctx.plan.waves);
  const run: RolloutRun = { id: newRolloutId(), ctx, kubes: new Map() };
  ctx.reporter.info(`rollout ${run.id}: ${ctx.plan.waves.map((w) => `${w.name} [${w.clusters.map((c) => c.name).join(', ')}] soak ${w.soak}`).join(' -> ')}`);
  return { id: run.id, waves: await runWaves(run, 0) };
}

/** The rollout to resume: the newest of the fleet, unfinished, started with the same inputs. */
export function resumable(state: RolloutState | undefined, inputs: RolloutInputs): RolloutState {
  if (!state) throw new UserError('there is no rollout to resume in the audit trails of these clusters', { hint: 'Start one: npx zx scripts/rollout.ts start --image-tag T' });
  if (state.outcome === 'completed') throw new UserError(`rollout ${state.id} has completed; there is nothing to resume`, { hint: 'Start a new one with rollout.ts start.' });
  if (state.outcome === 'aborted') throw new UserError(`rollout ${state.id} was aborted; it cannot be resumed`, { hint: 'Start a new one with rollout.ts start.' });
  if (state.inputs.digest !== inputs.digest) {
    const was = state.inputs;
    throw new UserError(
      `rollout ${state.id} was started with other inputs (image tag ${was.imageTag ?? '(chart default)'}, values ${was.values.join(', ') || 'none'}, --set keys ${was.setKeys.join(', ') || 'none'})`,
      {
        hint: 'Resume with the same --image-tag, --values files (unchanged) and --set assignments, or abort it and start a new rollout.',
      },
    );
  }
  return state;
}

/** Go on with an unfinished rollout from its first wave that has not passed. */
export async function resumeRollout(ctx: RolloutContext, state: RolloutState): Promise<{ id: string; waves: WaveSummary[] }> {
  const from = state.next;
  await preflightGate(ctx, ctx.plan.waves.slice(from));
  const run: RolloutRun = { id: state.id, ctx, kubes: new Map() };
  ctx.reporter.info(`rollout ${run.id}: resuming at wave ${ctx.plan.waves[from]?.name ?? '(none)'} (was ${state.outcome}${state.reason ? `: ${state.reason}` : ''})`);
  return { id: run.id, waves: await runWaves(run, from, state) };
}

/** End an unfinished rollout: an `aborted` record in every cluster it touched. Nothing is rolled back. */
export async function abortRollout(ctx: Pick<RolloutContext, 'plan' | 'inputs' | 'actor' | 'reporter' | 'hooks' | 'checks'>, state: RolloutState, reason: string): Promise<string[]> {
  if (state.outcome === 'completed' || state.outcome === 'aborted') throw new UserError(`rollout ${state.id} has ${state.outcome}; there is nothing to abort`);
  const run: RolloutRun = { id: state.id, ctx: { ...ctx, inputs: state.inputs }, kubes: new Map() };
  const touched = ctx.plan.waves.flatMap((w) => w.clusters.filter((c) => state.clusters[c.name]?.event).map((c) => ({ c, wave: w.name })));
  for (const { c, wave } of touched) await record(run, c, wave, 'aborted', { reason });
  return touched.map((t) => t.c.name);
}
