// A fleet rollout: the waves of the registry (values/clusters.yaml `rollout:`) resolved into a plan,
// and the state of a rollout as the clusters' audit trails record it. Every step of a rollout is an
// audit entry (action `rollout`) in the namespace of the cluster it concerns, and every entry carries
// the whole header (id, release inputs, the waves): `status` and `resume` rebuild the story from any
// machine that can read the clusters, with nothing kept locally.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { UserError, usageError } from '../core/errors.ts';
import { durationSeconds } from '../core/duration.ts';
import { displayPath } from '../core/paths.ts';
import { formatPos } from './values.ts';
import type { ClusterConfig, Registry } from './clusters.ts';

export const ROLLOUT_ACTION = 'rollout';

/** An audit entry as domain/audit.ts stores it, as far as a rollout reads it (kept structural: no client below this module). */
export interface AuditRecord {
  key: string;
  time: string;
  action: string;
  cluster?: string;
  details?: Record<string, unknown>;
}
export const DEFAULT_SOAK = '30m';
export const DEFAULT_INTERVAL = '30s';

export interface RolloutWave {
  name: string;
  clusters: ClusterConfig[];
  soak: string;
  soakSeconds: number;
}

export interface RolloutPlan {
  registry: string;
  waves: RolloutWave[];
  interval: string;
  intervalSeconds: number;
}

function keyError(where: string, key: string, message: string, hint: string): UserError {
  return new UserError(`${where}: ${key}: ${message}`, { hint, details: { key } });
}

/** The waves of the registry, each cluster checked: known, in one wave only, with a Prometheus to ask (pure apart from reading nothing). */
export function planWaves(registry: Registry, overrides: { soak?: string; interval?: string } = {}): RolloutPlan {
  const r = registry.rollout;
  const file = displayPath(registry.file);
  if (!r) throw usageError(`${file} has no rollout: plan`, 'Add rollout.waves (see docs/rollout.md): the clusters of each wave, in order, and the soak time.');
  if (overrides.soak !== undefined) durationSeconds(overrides.soak);
  const seen = new Map<string, string>();
  const waves = r.waves.map((w, wi): RolloutWave => {
    const where = formatPos(w.at);
    const clusters = w.clusters.map((name, ci) => {
      const key = `rollout.waves[${wi}].clusters[${ci}]`;
      const c = registry.clusters.find((x) => x.name === name);
      if (!c) throw keyError(where, key, `unknown cluster "${name}"`, `Known clusters: ${registry.clusters.map((x) => x.name).join(', ')}.`);
      if (seen.has(name)) throw keyError(where, key, `cluster "${name}" is already in wave ${seen.get(name)}`, 'A cluster is deployed once per rollout: keep it in one wave.');
      seen.set(name, w.name);
      if (!c.prometheus)
        throw keyError(
          formatPos(c.at),
          `clusters.${name}.prometheus`,
          'missing: the rollout gate has no Prometheus to ask about this cluster',
          'Add prometheus.url (and its credentials by env var or file).',
        );
      return c;
    });
    if (r.waves.findIndex((x) => x.name === w.name) !== wi) throw keyError(where, `rollout.waves[${wi}].name`, `wave "${w.name}" is named twice`, 'Give every wave its own name.');
    const soak = overrides.soak ?? w.soak ?? r.soak ?? DEFAULT_SOAK;
    return { name: w.name, clusters, soak, soakSeconds: durationSeconds(soak) };
  });
  const interval = overrides.interval ?? r.interval ?? DEFAULT_INTERVAL;
  const intervalSeconds = durationSeconds(interval);
  if (intervalSeconds <= 0) throw usageError(`the gate interval ${interval} must be longer than 0s`, 'Set rollout.interval (or --interval) to e.g. 30s.');
  return { registry: registry.file, waves, interval, intervalSeconds };
}

/** What a rollout deploys, as recorded: enough to resume it elsewhere, never a secret value. */
export interface RolloutInputs {
  imageTag?: string;
  /** Extra values files (paths as given, relative to the repository when inside it). */
  values: string[];
  /** Keys of --set assignments (their values are not recorded: resume asks for them again). */
  setKeys: string[];
  /** sha256 of the extra values files' contents and the --set assignments (checked on resume). */
  digest: string;
  helm: 3 | 4;
}

export function inputsDigest(values: string[], sets: string[], imageTag?: string): string {
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify({ imageTag: imageTag ?? null, sets }));
  for (const f of values) h.update(`\0${displayPath(f)}\0`).update(fs.existsSync(f) ? fs.readFileSync(f) : '');
  return h.digest('hex').slice(0, 16);
}

export type RolloutEvent = 'deploying' | 'deployed' | 'deploy-failed' | 'soak-passed' | 'breached' | 'rolled-back' | 'gate-unreachable' | 'interrupted' | 'completed' | 'aborted';

/** The details of one rollout audit entry. */
export interface RolloutRecord {
  id: string;
  event: RolloutEvent;
  release: string;
  /** Wave names in order, and the clusters of each. */
  waves: { name: string; clusters: string[] }[];
  wave: string;
  inputs: RolloutInputs;
  revision?: number;
  previousRevision?: number;
  /** The gate's readings (query, value, threshold) when they matter. */
  gate?: { cluster: string; name: string; expr: string; value?: number; threshold?: number; text: string; ok: boolean }[];
  reason?: string;
}

export function newRolloutId(now = new Date()): string {
  return `${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-${crypto.randomBytes(2).toString('hex')}`;
}

export type WaveStatus = 'pending' | 'deploying' | 'deployed' | 'passed' | 'breached' | 'failed' | 'interrupted' | 'stopped';
export type RolloutOutcome = 'in-progress' | 'completed' | 'breached' | 'failed' | 'interrupted' | 'stopped' | 'aborted';

export interface RolloutEntry extends AuditRecord {
  details: RolloutRecord & Record<string, unknown>;
}

export interface RolloutState {
  id: string;
  release: string;
  inputs: RolloutInputs;
  waves: { name: string; clusters: string[]; status: WaveStatus }[];
  /** Per cluster: its last event and revisions. */
  clusters: Record<string, { wave: string; event?: RolloutEvent; revision?: number; previousRevision?: number; time?: string; deployed?: boolean }>;
  outcome: RolloutOutcome;
  /** Index of the first wave not passed (waves.length when all passed). */
  next: number;
  /** Every entry of this rollout, oldest first. */
  entries: RolloutEntry[];
  startedAt: string;
  /** The last entry's reason (why it stopped). */
  reason?: string;
}

/** The rollout entries among audit entries, oldest first (pure). */
export function rolloutEntries(entries: AuditRecord[]): RolloutEntry[] {
  return entries
    .filter((e): e is RolloutEntry => e.action === ROLLOUT_ACTION && typeof (e.details as { id?: unknown } | undefined)?.id === 'string')
    .sort((a, b) => a.time.localeCompare(b.time) || a.key.localeCompare(b.key));
}

const WAVE_OF: Partial<Record<RolloutEvent, WaveStatus>> = {
  deploying: 'deploying',
  deployed: 'deployed',
  'deploy-failed': 'failed',
  'soak-passed': 'passed',
  breached: 'breached',
  'rolled-back': 'breached',
  'gate-unreachable': 'stopped',
  interrupted: 'interrupted',
  completed: 'passed',
};

const OUTCOME_OF: Partial<Record<RolloutEvent, RolloutOutcome>> = {
  completed: 'completed',
  aborted: 'aborted',
  breached: 'breached',
  'rolled-back': 'breached',
  'deploy-failed': 'failed',
  'gate-unreachable': 'stopped',
  interrupted: 'interrupted',
};

/** The state of one rollout, or of the newest one when `id` is not given (pure). */
export function rolloutState(entries: AuditRecord[], id?: string): RolloutState | undefined {
  const all = rolloutEntries(entries);
  const chosen = id ?? all.at(-1)?.details.id;
  const mine = all.filter((e) => e.details.id === chosen);
  if (!mine.length) return undefined;
  const head = mine[mine.length - 1].details;
  const waves = head.waves.map((w) => ({ ...w, status: 'pending' as WaveStatus }));
  const clusters: RolloutState['clusters'] = {};
  for (const w of head.waves) for (const c of w.clusters) clusters[c] = { wave: w.name };
  for (const e of mine) {
    const d = e.details;
    const w = waves.find((x) => x.name === d.wave);
    const status = WAVE_OF[d.event];
    if (w && status && !(d.event === 'deployed' && w.status === 'breached')) w.status = status;
    if (e.cluster && clusters[e.cluster]) {
      const c = clusters[e.cluster];
      const deployed = d.event === 'deployed' ? true : ['deploying', 'deploy-failed', 'rolled-back'].includes(d.event) ? false : c.deployed;
      const revisions = d.event === 'deployed' ? { revision: d.revision, previousRevision: d.previousRevision } : { revision: d.revision ?? c.revision, previousRevision: c.previousRevision };
      clusters[e.cluster] = { ...c, event: d.event, time: e.time, deployed, ...revisions };
    }
  }
  const last = mine[mine.length - 1].details;
  const next = waves.findIndex((w) => w.status !== 'passed');
  const outcome = mine.some((e) => e.details.event === 'aborted') ? 'aborted' : (OUTCOME_OF[last.event] ?? 'in-progress');
  return { id: head.id, release: head.release, inputs: head.inputs, waves, clusters, outcome, next: next < 0 ? waves.length : next, entries: mine, startedAt: mine[0].time, reason: last.reason };
}
