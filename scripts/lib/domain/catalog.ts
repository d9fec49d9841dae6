// The metric catalog (schemas/metric-catalog.yaml): which metrics exist, with which labels, from
// which exporter; and the check of every PromQL query of this project against it.
import fs from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import YAML from 'yaml';
import { allPanels } from './dashboardlint.ts';
import { UserError } from '../core/errors.ts';
import { displayPath, repoPath } from '../core/paths.ts';
import { expandGrafanaVariables, inferLabels, parsePromQL, templateLabelRefs, type LabelLookup } from './promql.ts';
import { loadRules, recordedLabels, ruleFiles, type RuleGroup } from './rules.ts';

export const CATALOG_FILE = repoPath('schemas', 'metric-catalog.yaml');
export const CATALOG_SCHEMA_FILE = repoPath('schemas', 'metric-catalog.schema.json');

export interface CatalogMetric {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary';
  unit?: string;
  source: string;
  help: string;
  labels: string[];
  buckets?: number[];
}

export interface Catalog {
  catalogVersion: number;
  app: { name: string; source?: string; version: string };
  targetLabels: string[];
  sources: Record<string, { kind: 'app' | 'exporter'; [k: string]: string }>;
  metrics: CatalogMetric[];
}

/** One series name a catalog metric produces (histograms: _bucket, _sum, _count). */
export interface SeriesInfo {
  metric: CatalogMetric;
  series: string;
  labels: Set<string>;
}

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/** Load and validate the catalog: schema, known sources, unique names. Throws a UserError listing every problem. */
export function loadCatalog(file = CATALOG_FILE): Catalog {
  const where = displayPath(file);
  let doc: unknown;
  try {
    doc = YAML.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${where}: cannot read: ${(e as Error).message}`);
  }
  const ajv = addFormats(new Ajv({ allErrors: true, strict: false }));
  const validate = ajv.compile(JSON.parse(fs.readFileSync(CATALOG_SCHEMA_FILE, 'utf8')));
  const problems: string[] = [];
  if (!validate(doc)) {
    for (const e of validate.errors ?? [])
      problems.push(`${e.instancePath || '/'} ${e.message}${e.params && 'allowedValues' in e.params ? ` (${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')})` : ''}`);
  } else {
    const cat = doc as Catalog;
    const seen = new Set<string>();
    cat.metrics.forEach((m, i) => {
      if (seen.has(m.name)) problems.push(`/metrics/${i} ${m.name} is listed twice`);
      seen.add(m.name);
      if (!cat.sources[m.source]) problems.push(`/metrics/${i} ${m.name}: source "${m.source}" is not defined under sources`);
      if (m.buckets && m.type !== 'histogram') problems.push(`/metrics/${i} ${m.name}: buckets on a ${m.type}`);
      const clash = m.labels.filter((l) => cat.targetLabels.includes(l));
      if (clash.length) problems.push(`/metrics/${i} ${m.name}: ${clash.join(', ')} already in targetLabels`);
    });
  }
  if (problems.length) {
    throw new UserError(`${where} is invalid:\n  ${problems.join('\n  ')}`, { hint: `Fix the entries named above; the format is ${displayPath(CATALOG_SCHEMA_FILE)}.`, details: problems });
  }
  return doc as Catalog;
}

/** Series name -> metric and allowed labels (catalog labels, target labels, le/quantile where due). */
export function seriesIndex(catalog: Catalog): Map<string, SeriesInfo> {
  const out = new Map<string, SeriesInfo>();
  for (const m of catalog.metrics) {
    const base = [...m.labels, ...catalog.targetLabels];
    const add = (series: string, extra: string[] = []) => out.set(series, { metric: m, series, labels: new Set([...base, ...extra]) });
    if (m.type === 'histogram') {
      add(`${m.name}_bucket`, ['le']);
      add(`${m.name}_sum`);
      add(`${m.name}_count`);
    } else if (m.type === 'summary') {
      add(m.name, ['quantile']);
      add(`${m.name}_sum`);
      add(`${m.name}_count`);
    } else add(m.name);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Collecting queries

export interface Query {
  /** File relative to the repository. */
  file: string;
  /** Where in the file, e.g. 'alert ConduitTargetDown' or 'panel "Request rate" target A'. */
  where: string;
  expr: string;
  /** The expression after Grafana variable substitution (dashboards). */
  promql: string;
  /** For alerts: annotation templates and static labels, to check $labels references. */
  alert?: { annotations: Record<string, string>; labels: Record<string, string> };
}

export function ruleQueries(files = ruleFiles()): Query[] {
  const groups = files.flatMap((f) => loadRules([f]));
  return groups.flatMap((g) =>
    g.rules.map((r) => ({
      file: displayPath(g.file),
      where: r.kind === 'alert' ? `alert ${r.name}` : `record ${r.name} (group ${g.name})`,
      expr: r.expr,
      promql: r.expr,
      alert: r.kind === 'alert' ? { annotations: r.annotations, labels: r.labels } : undefined,
    })),
  );
}

interface DashPanel {
  title?: string;
  type?: string;
  targets?: { expr?: string; refId?: string }[];
  panels?: DashPanel[];
}

/** The PromQL inside a Grafana Prometheus variable query (label_values(q, l), query_result(q), ...). */
export function variableQueryExpr(query: string): string | undefined {
  const q = query.trim();
  let m = /^label_values\(\s*(.+)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)$/s.exec(q);
  if (m) return m[1];
  m = /^(?:query_result|metrics|label_names)\(\s*(.+)\s*\)$/s.exec(q);
  return m ? m[1] : undefined;
}

export function dashboardQueries(file: string): Query[] {
  const rel = displayPath(file);
  const d = JSON.parse(fs.readFileSync(file, 'utf8'));
  const out: Query[] = [];
  for (const p of allPanels<DashPanel>(d)) {
    for (const t of p.targets ?? []) {
      if (!t.expr) continue;
      out.push({ file: rel, where: `panel "${p.title}" target ${t.refId ?? '?'}`, expr: t.expr, promql: expandGrafanaVariables(t.expr) });
    }
  }
  for (const v of d.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const expr = q ? variableQueryExpr(q) : undefined;
    if (expr) out.push({ file: rel, where: `variable ${v.name}`, expr, promql: expandGrafanaVariables(expr) });
  }
  return out;
}

export function jsonFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => path.join(dir, f));
}

/** Every query of dashboards/, alerts/ and the chart's copies of both. */
export function allQueries(): Query[] {
  return [
    ...ruleQueries(),
    ...jsonFiles(repoPath('dashboards')).flatMap(dashboardQueries),
    ...ruleQueries(ruleFiles(repoPath('chart', 'files', 'alerts'))),
    ...jsonFiles(repoPath('chart', 'files', 'dashboards')).flatMap(dashboardQueries),
  ];
}

// ---------------------------------------------------------------------------------------------
// Checking queries

/** Numbers a `le` matcher value can stand for: "10", "10.0", or a regex alternation of such. */
export function leValues(value: string, op: string): number[] | undefined {
  const alts = op === '=~' ? value.split('|').map((s) => s.replace(/\\\./g, '.')) : [value];
  const nums = alts.map((a) => (a === '+Inf' ? Infinity : /^[0-9.eE+-]+$/.test(a) ? Number(a) : NaN));
  return nums.some(Number.isNaN) ? undefined : nums;
}

export interface CheckContext {
  series: Map<string, SeriesInfo>;
  recorded: Map<string, Set<string> | undefined>;
  lookup: LabelLookup;
}

export function checkContext(catalog: Catalog, groups: RuleGroup[]): CheckContext {
  const series = seriesIndex(catalog);
  const base: LabelLookup = (m) => series.get(m)?.labels;
  const recorded = recordedLabels(groups, base);
  const lookup: LabelLookup = (m) => (recorded.has(m) ? recorded.get(m) : base(m));
  return { series, recorded, lookup };
}

/** Problems of one query; empty when it only uses catalogued or recorded metrics with their labels. */
export function checkQuery(q: Query, ctx: CheckContext): string[] {
  const at = `${q.file}: ${q.where}`;
  const parsed = parsePromQL(q.promql);
  if (parsed.errors.length) return [`${at}: invalid PromQL (${parsed.errors.join('; ')}): ${q.expr}`];
  const problems: string[] = [];
  for (const sel of parsed.selectors) {
    if (!sel.metric) {
      problems.push(`${at}: selector ${sel.text} names no metric`);
      continue;
    }
    const info = ctx.series.get(sel.metric);
    const isRecorded = ctx.recorded.has(sel.metric);
    if (!info && !isRecorded) {
      const hint = /^conduit_/.test(sel.metric) ? ' (the app defines conduit_* metrics but does not serve them at the catalogued version)' : '';
      problems.push(`${at}: metric ${sel.metric} is neither in the metric catalog nor recorded by a rule${hint}`);
      continue;
    }
    const allowed = info ? info.labels : ctx.recorded.get(sel.metric);
    for (const m of sel.matchers) {
      if (m.label === '__name__') continue;
      if (allowed && !allowed.has(m.label)) {
        problems.push(`${at}: label ${m.label} is not a label of ${sel.metric} (allowed: ${[...allowed].sort().join(', ')})`);
      }
      if (info && m.label === 'le' && info.metric.buckets && (m.op === '=' || m.op === '=~')) {
        const nums = leValues(m.value, m.op);
        const bad = nums?.filter((n) => n !== Infinity && !info.metric.buckets!.includes(n));
        if (!nums || bad!.length) problems.push(`${at}: le ${m.op} "${m.value}" is not a bucket boundary of ${info.metric.name} (${info.metric.buckets.join(', ')}, +Inf)`);
      }
    }
  }
  if (problems.length) return problems;
  const inf = inferLabels(parsed, ctx.lookup);
  problems.push(...inf.problems.map((p) => `${at}: ${p}`));
  if (q.alert && inf.labels) {
    const available = new Set([...inf.labels, ...Object.keys(q.alert.labels)]);
    for (const [k, v] of Object.entries(q.alert.annotations)) {
      for (const l of templateLabelRefs(v)) {
        if (!available.has(l)) problems.push(`${at}: annotation ${k} uses $labels.${l}, which the alert does not carry (it has: ${[...available].sort().join(', ')})`);
      }
    }
  }
  return problems;
}

export function checkAllQueries(catalog = loadCatalog(), queries = allQueries(), groups = loadRules()): { queries: number; problems: string[] } {
  const ctx = checkContext(catalog, groups);
  return { queries: queries.length, problems: [...queries.flatMap((q) => checkQuery(q, ctx)), ...checkAutoscalingMetrics(catalog)] };
}

/** A metric an autoscaler uses; `path` starts with the component (api, admin, webui). */
export interface MetricRef {
  path: string;
  metric: string;
  /** Where the reference was found; chart/values.yaml when absent. */
  origin?: string;
}

/**
 * Metric names the chart's values hand to autoscaling: every non-empty `metricName:` key at any
 * depth, switched on or not (a default that is wrong once switched on is still wrong).
 */
export function chartMetricNames(file = repoPath('chart', 'values.yaml')): MetricRef[] {
  if (!fs.existsSync(file)) return [];
  const out: MetricRef[] = [];
  const walk = (v: unknown, at: string) => {
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${at}[${i}]`));
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (k === 'metricName' && typeof x === 'string') {
          if (x) out.push({ path: `${at}.${k}`.replace(/^\./, ''), metric: x });
        } else walk(x, `${at}.${k}`);
      }
    }
  };
  walk(YAML.parse(fs.readFileSync(file, 'utf8')), '');
  return out;
}

interface HpaLike {
  kind?: string;
  metadata?: { name?: string; labels?: Record<string, string> };
  spec?: { metrics?: { type?: string; pods?: { metric?: { name?: string } }; object?: { metric?: { name?: string } }; external?: { metric?: { name?: string } } }[] };
}

/** Metric names in rendered HorizontalPodAutoscalers (Pods, Object and External metrics), by the component label of each HPA. */
export function hpaMetricNames(objects: HpaLike[]): MetricRef[] {
  return objects
    .filter((o) => o.kind === 'HorizontalPodAutoscaler')
    .flatMap((o) => {
      const component = o.metadata?.labels?.['app.kubernetes.io/component'] ?? 'unknown';
      return (o.spec?.metrics ?? []).flatMap((m) => {
        const name = m.pods?.metric?.name ?? m.object?.metric?.name ?? m.external?.metric?.name;
        return name ? [{ path: `${component}.autoscaling.${String(m.type).toLowerCase()}`, metric: name, origin: `HorizontalPodAutoscaler/${o.metadata?.name}` }] : [];
      });
    });
}

/** Autoscaling metrics must be catalogued gauges (an HPA averages a current value per pod) that the scaled pods serve. */
export function checkAutoscalingMetrics(catalog: Catalog, refs: MetricRef[] = chartMetricNames()): string[] {
  const series = seriesIndex(catalog);
  return refs.flatMap(({ path: at, metric, origin = 'chart/values.yaml' }) => {
    const info = series.get(metric);
    if (!info) return [`${origin} ${at}: ${metric} is not in the metric catalog`];
    const problems: string[] = [];
    if (info.metric.type !== 'gauge') problems.push(`${origin} ${at}: ${metric} is a ${info.metric.type}; a Pods metric for the HPA must be a gauge`);
    // A Pods metric is read from the scaled pods themselves: they must serve it (the WebUI serves none).
    const component = at.split(/[.[]/)[0];
    const source = catalog.sources[info.metric.source];
    const servedBy = source?.kind === 'app' ? String(source.component).split(/,\s*/) : [];
    if (['api', 'admin', 'webui'].includes(component) && /\.pods(\.|$)/.test(at) && !servedBy.includes(component)) {
      problems.push(
        `${origin} ${at}: the ${component} pods do not serve ${metric} (${servedBy.length ? `served by: ${servedBy.join(', ')}` : `exported by ${info.metric.source}, not by the pods being scaled`})`,
      );
    }
    return problems;
  });
}

/** Catalogued metrics no query, rule or autoscaler uses (the catalog lists what is used, nothing more). */
export function unusedMetrics(catalog: Catalog, queries = allQueries(), refs: MetricRef[] = chartMetricNames()): string[] {
  const series = seriesIndex(catalog);
  const used = new Set<string>();
  for (const q of queries) for (const s of parsePromQL(q.promql).selectors) if (s.metric && series.has(s.metric)) used.add(series.get(s.metric)!.metric.name);
  for (const r of refs) if (series.has(r.metric)) used.add(series.get(r.metric)!.metric.name);
  return catalog.metrics.map((m) => m.name).filter((n) => !used.has(n));
}
