// The rollout gate: what it asks each cluster's Prometheus and how it judges the answers. Nothing here
// is a number of its own: the series, the windows and the thresholds are read from the alerting rules
// the project ships (alerts/*.rules.yaml), so a change of an SLO or of a burn-rate factor there changes
// the gate too.
//  - Burn rate: every critical alert that carries an `slo` label (the fast-burn alerts) compares
//    `slo:sli_error:ratio_rate<W>{slo="..."}` with `(factor * budget)` for several windows. A freshly
//    deployed version has only just started to produce errors, so the gate takes the shortest window
//    of each such alert and its own threshold: what would make the alert's short window trip.
//  - Firing alerts: any of our critical alerts (by name, from all rule files) firing in the namespace.
import { UserError } from '../core/errors.ts';
import { displayPath } from '../core/paths.ts';
import { alertRules, type RuleGroup } from './rules.ts';

export interface BurnCheck {
  /** The SLO (label `slo` of the alert). */
  slo: string;
  /** The alert whose short window this is. */
  alert: string;
  /** Recorded series, e.g. slo:sli_error:ratio_rate5m. */
  series: string;
  window: string;
  /** Burn-rate factor and error budget as the alert writes them: threshold = factor * budget. */
  factor: number;
  budget: number;
  threshold: number;
  /** Where the alert is (for messages). */
  file: string;
}

export interface GateChecks {
  burn: BurnCheck[];
  /** Names of our critical alerts (any firing one in the namespace stops the rollout). */
  criticalAlerts: string[];
}

const CLAUSE = /(slo:sli_error:ratio_rate(\d+[smhdw]))\{slo="([^"]+)"\}\s*>\s*\(\s*([0-9.]+)\s*\*\s*([0-9.]+)\s*\)/g;
const UNIT: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

function windowSeconds(w: string): number {
  return Number(w.slice(0, -1)) * UNIT[w.slice(-1)];
}

/** The gate's checks, derived from the rule files (pure). Throws when the rules give it nothing to judge. */
export function gateChecksFromRules(groups: RuleGroup[]): GateChecks {
  const alerts = alertRules(groups).filter((a) => a.labels.severity === 'critical');
  const burn: BurnCheck[] = [];
  for (const a of alerts.filter((x) => x.labels.slo)) {
    const clauses = [...a.expr.matchAll(CLAUSE)].filter((m) => m[3] === a.labels.slo);
    if (!clauses.length) continue;
    const m = clauses.reduce((best, c) => (windowSeconds(c[2]) < windowSeconds(best[2]) ? c : best));
    const factor = Number(m[4]);
    const budget = Number(m[5]);
    const threshold = Math.round(factor * budget * 1e12) / 1e12;
    burn.push({ slo: a.labels.slo, alert: a.name, series: m[1], window: m[2], factor, budget, threshold, file: displayPath(a.file) });
  }
  if (!burn.length) {
    throw new UserError('the rule files of alerts/ hold no critical SLO burn-rate alert: the rollout gate would have nothing to judge', {
      hint: 'Restore alerts/conduit-slo.rules.yaml (the fast-burn alerts, severity critical, label slo) with git.',
    });
  }
  return { burn, criticalAlerts: [...new Set(alerts.map((a) => a.name))].sort() };
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
const escapeRegex = (v: string) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Label matchers that pick one cluster's series: its namespace and the registry's selector. */
export function clusterMatchers(namespace: string, selector: Record<string, string> = {}): string {
  return [`namespace="${escapeLabel(namespace)}"`, ...Object.entries(selector).map(([k, v]) => `${k}="${escapeLabel(v)}"`)].join(', ');
}

export interface GateQuery {
  kind: 'burn' | 'alerts';
  /** What the query checks, for people. */
  name: string;
  expr: string;
  burn?: BurnCheck;
}

/** The PromQL the gate sends for one cluster (pure). */
export function gateQueries(checks: GateChecks, namespace: string, selector: Record<string, string> = {}): GateQuery[] {
  const m = clusterMatchers(namespace, selector);
  return [
    ...checks.burn.map((b): GateQuery => ({ kind: 'burn', name: `${b.slo} burn rate (${b.window})`, expr: `${b.series}{slo="${escapeLabel(b.slo)}", ${m}}`, burn: b })),
    {
      kind: 'alerts',
      name: 'critical alerts firing',
      expr: `ALERTS{alertstate="firing", severity="critical", alertname=~"${checks.criticalAlerts.map(escapeRegex).join('|')}", ${m}}`,
    },
  ];
}

/** One series of an instant-query answer. */
export interface Sample {
  labels: Record<string, string>;
  value: number;
}

export interface GateReading {
  name: string;
  expr: string;
  ok: boolean;
  /** The value judged (the worst series), undefined when there was none (no traffic, no alert). */
  value?: number;
  threshold?: number;
  /** One line: value against threshold, or the alerts firing. */
  text: string;
}

const pct = (v: number) => `${(v * 100).toFixed(v < 0.01 ? 3 : 2)}%`;

/** Judge one query's answer (pure). NaN (no requests in the window) holds: there is nothing to judge. */
export function judge(q: GateQuery, samples: Sample[]): GateReading {
  if (q.kind === 'alerts') {
    const names = [...new Set(samples.map((s) => s.labels.alertname))].sort();
    return { name: q.name, expr: q.expr, ok: names.length === 0, value: names.length, threshold: 0, text: names.length ? `firing: ${names.join(', ')}` : 'none firing' };
  }
  const b = q.burn!;
  const values = samples.map((s) => s.value).filter((v) => Number.isFinite(v));
  if (!values.length) return { name: q.name, expr: q.expr, ok: true, threshold: b.threshold, text: `no requests in the last ${b.window}: nothing to judge` };
  const worst = Math.max(...values);
  const ok = !(worst > b.threshold);
  const rel = `burn rate ${(worst / b.budget).toFixed(2)}x ${ok ? '<=' : '>'} ${b.factor}x`;
  return { name: q.name, expr: q.expr, ok, value: worst, threshold: b.threshold, text: `error ratio ${pct(worst)} ${ok ? '<=' : '>'} ${pct(b.threshold)} (${rel}, alert ${b.alert})` };
}
