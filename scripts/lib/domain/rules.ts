// Prometheus rule files of this project (alerts/*.rules.yaml): loading, the list of alerts and
// recording rules, and the label set each recorded series carries (inferred from its PromQL).
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { UserError } from '../core/errors.ts';
import { displayPath, repoPath } from '../core/paths.ts';
import { inferLabels, parsePromQL, type LabelLookup } from './promql.ts';

export const ALERTS_DIR = repoPath('alerts');
export const ALERT_TESTS_DIR = path.join(ALERTS_DIR, 'tests');

export interface RuleBase {
  file: string;
  group: string;
  expr: string;
  labels: Record<string, string>;
}
export interface AlertRule extends RuleBase {
  kind: 'alert';
  name: string;
  for?: string;
  annotations: Record<string, string>;
}
export interface RecordingRule extends RuleBase {
  kind: 'record';
  name: string;
}
export type Rule = AlertRule | RecordingRule;

export interface RuleGroup {
  file: string;
  name: string;
  interval?: string;
  rules: Rule[];
}

/** alerts/*.rules.yaml, sorted (the files the chart ships). */
export function ruleFiles(dir = ALERTS_DIR): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.rules.yaml'))
    .sort()
    .map((f) => path.join(dir, f));
}

/** alerts/tests/*.test.yaml, sorted. */
export function ruleTestFiles(dir = ALERT_TESTS_DIR): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.test.yaml'))
    .sort()
    .map((f) => path.join(dir, f));
}

function stringMap(v: unknown, where: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new UserError(`${where} must be a map of strings`);
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, String(x)]));
}

export function loadRuleFile(file: string): RuleGroup[] {
  const where = displayPath(file);
  let doc: unknown;
  try {
    doc = YAML.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${where}: not valid YAML: ${(e as Error).message}`, { hint: 'Fix the YAML syntax; promtool check rules shows the same file.' });
  }
  const groups = (doc as { groups?: unknown })?.groups;
  if (!Array.isArray(groups)) throw new UserError(`${where}: no "groups:" list`, { hint: 'A Prometheus rule file is a map with a "groups" list.' });
  return groups.map((g: Record<string, unknown>, gi: number) => {
    const gname = String(g?.name ?? `#${gi}`);
    const rules = Array.isArray(g?.rules) ? (g.rules as Record<string, unknown>[]) : [];
    return {
      file,
      name: gname,
      interval: g?.interval === undefined ? undefined : String(g.interval),
      rules: rules.map((r, ri): Rule => {
        const at = `${where}: group ${gname}, rule ${ri + 1}`;
        const base = { file, group: gname, expr: String(r.expr ?? ''), labels: stringMap(r.labels, `${at} labels`) };
        if (typeof r.alert === 'string') {
          return { ...base, kind: 'alert', name: r.alert, for: r.for === undefined ? undefined : String(r.for), annotations: stringMap(r.annotations, `${at} annotations`) };
        }
        if (typeof r.record === 'string') return { ...base, kind: 'record', name: r.record };
        throw new UserError(`${at}: neither "alert" nor "record"`, { hint: 'Every rule needs an alert: or a record: name.' });
      }),
    };
  });
}

export function loadRules(files = ruleFiles()): RuleGroup[] {
  return files.flatMap(loadRuleFile);
}

export function alertRules(groups: RuleGroup[]): AlertRule[] {
  return groups.flatMap((g) => g.rules.filter((r): r is AlertRule => r.kind === 'alert'));
}

export function recordingRules(groups: RuleGroup[]): RecordingRule[] {
  return groups.flatMap((g) => g.rules.filter((r): r is RecordingRule => r.kind === 'record'));
}

/**
 * The labels of every recorded series name (union over the rules recording that name), inferred
 * from the rule's expression plus its static labels. Rules are resolved in file order, so a rule
 * may use series recorded by an earlier one. Undefined values mean the labels could not be told.
 */
export function recordedLabels(groups: RuleGroup[], base: LabelLookup): Map<string, Set<string> | undefined> {
  const out = new Map<string, Set<string> | undefined>();
  const lookup: LabelLookup = (m) => (out.has(m) ? out.get(m) : base(m));
  for (const r of recordingRules(groups)) {
    const inferred = inferLabels(parsePromQL(r.expr), lookup).labels;
    const labels = inferred ? new Set([...inferred, ...Object.keys(r.labels)]) : undefined;
    const prev = out.get(r.name);
    out.set(r.name, out.has(r.name) && (!prev || !labels) ? undefined : new Set([...(prev ?? []), ...(labels ?? [])]));
  }
  return out;
}

export interface AlertCoverage {
  firing: number;
  notFiring: number;
}

/**
 * Which alerts the promtool unit tests exercise, and how: an `alert_rule_test` entry with a
 * non-empty `exp_alerts` is a firing case, an empty one a not-firing case. Also reports test
 * groups without `interval:` (promtool's default differs between versions).
 */
export function alertTestCoverage(files = ruleTestFiles()): { coverage: Map<string, AlertCoverage>; missingInterval: string[] } {
  const coverage = new Map<string, AlertCoverage>();
  const missingInterval: string[] = [];
  for (const file of files) {
    const doc = YAML.parse(fs.readFileSync(file, 'utf8')) as { tests?: Record<string, unknown>[] };
    (doc?.tests ?? []).forEach((t, i) => {
      if (t.interval === undefined) missingInterval.push(`${displayPath(file)}: test ${String(t.name ?? `#${i + 1}`)}`);
      for (const c of (t.alert_rule_test as Record<string, unknown>[] | undefined) ?? []) {
        const name = String(c.alertname);
        const entry = coverage.get(name) ?? { firing: 0, notFiring: 0 };
        const exp = c.exp_alerts as unknown[] | undefined;
        if (exp && exp.length > 0) entry.firing++;
        else entry.notFiring++;
        coverage.set(name, entry);
      }
    });
  }
  return { coverage, missingInterval };
}
