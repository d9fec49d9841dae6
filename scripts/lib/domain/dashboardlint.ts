// A reimplementation of the rules of Grafana's dashboard-linter (github.com/grafana/dashboard-linter),
// whose Go module cannot be installed from the module proxy. Each rule carries the linter's rule
// name and checks what that rule checks; exclusions and warnings come from a `.lint` YAML file next
// to the dashboards, in the linter's format:
//   exclusions:
//     target-instance-rule:
//       reason: why
//       entries: [{ dashboard: Title, panel: Title, targetIdx: 0 }]   # optional: all when absent
//   warnings: { <rule>: { reason, entries } }                         # downgrade to a warning
import fs from 'node:fs';
import YAML from 'yaml';
import { UserError } from '../core/errors.ts';
import { expandGrafanaVariables, parsePromQL } from './promql.ts';

export type Severity = 'error' | 'warning';

export interface LintResult {
  rule: string;
  severity: Severity;
  dashboard: string;
  panel?: string;
  targetIdx?: number;
  message: string;
}

interface Target {
  expr?: string;
  refId?: string;
  datasource?: unknown;
}
interface Panel {
  id?: number;
  title?: string;
  description?: string;
  type?: string;
  datasource?: unknown;
  targets?: Target[];
  panels?: Panel[];
  fieldConfig?: { defaults?: { unit?: string }; overrides?: { properties?: { id?: string; value?: unknown }[] }[] };
}
interface Variable {
  name?: string;
  label?: string;
  type?: string;
  query?: unknown;
  datasource?: unknown;
  multi?: boolean;
  allValue?: string;
  refresh?: number;
}
export interface Dashboard {
  title?: string;
  editable?: boolean;
  panels?: Panel[];
  rows?: { panels?: Panel[] }[];
  templating?: { list?: Variable[] };
}

// Grafana's unit ids (packages/grafana-data valueFormats categories), as the linter lists them.
const VALID_UNITS = new Set(
  (
    'none string short percent percentunit humidity dB hex0x hex sci locale pixel accMS2 accFS2 accG degree radian grad arcmin arcsec ' +
    'areaM2 areaF2 areaMI2 flops mflops gflops tflops pflops eflops zflops yflops ppm conppb conngm3 conngNm3 conμgm3 conμgNm3 conmgm3 ' +
    'conmgNm3 congm3 congNm3 conmgdL conmmolL currencyUSD currencyGBP currencyEUR currencyJPY currencyRUB currencyUAH currencyBRL ' +
    'currencyDKK currencyISK currencyNOK currencySEK currencyCZK currencyCHF currencyPLN currencyBTC currencymBTC currencyμBTC ' +
    'currencyZAR currencyINR currencyKRW currencyIDR currencyPHP currencyVND bytes decbytes bits decbits kbytes deckbytes mbytes ' +
    'decmbytes gbytes decgbytes tbytes dectbytes pbytes decpbytes pps binBps Bps binbps bps KiBs Kibits KBs Kbits MiBs Mibits MBs ' +
    'Mbits GiBs Gibits GBs Gbits TiBs Tibits TBs Tbits PiBs Pibits PBs Pbits dateTimeAsIso dateTimeAsIsoNoDateIfToday dateTimeAsUS ' +
    'dateTimeAsUSNoDateIfToday dateTimeAsLocal dateTimeAsLocalNoDateIfToday dateTimeAsSystem dateTimeFromNow watt kwatt megwatt gwatt ' +
    'mwatt Wm2 voltamp kvoltamp voltampreact kvoltampreact watth watthperkg kwatth kwattm amph kamph mamph joule ev amp kamp mamp volt ' +
    'kvolt mvolt dBm ohm kohm Mohm farad µfarad nfarad pfarad ffarad henry mhenry µhenry lumens flowgpm flowcms flowcfs flowcfm litreh ' +
    'flowlpm flowmlpm lux forceNm forcekNm forceN forcekN Hs KHs MHs GHs THs PHs EHs massmg massg masslb masskg masst lengthmm lengthin ' +
    'lengthft lengthm lengthkm lengthmi pressurembar pressurebar pressurekbar pressurepa pressurehpa pressurekpa pressurehg pressurepsi ' +
    'radbq radci radgy radrad radsv radmsv radusv radrem radexpckg radr radsvh radmsvh radusvh rotrpm rothz rotrads rotdegs celsius ' +
    'fahrenheit kelvin hertz ns µs ms s m h d dtdurationms dtdurations dthms dtdhms timeticks clockms clocks cps ops reqps rps wps iops ' +
    'cpm opm rpm wpm velocityms velocitykmh velocitymph velocityknot mlitre litre m3 Nm3 dm3 gallons bool bool_yes_no bool_on_off'
  ).split(' '),
);

const QUERY_PANELS = new Set(['singlestat', 'gauge', 'table', 'stat', 'state-timeline', 'timeseries']);
const TITLED_PANELS = new Set(['stat', 'singlestat', 'graph', 'table', 'timeseries', 'gauge']);
const DATASOURCE_PANELS = new Set(['singlestat', 'graph', 'table', 'timeseries']);
const LABEL_FUNCTIONS = /^\s*(label_values|label_names|metrics|query_result)\((.*)\)\s*$/s;
// A duration no one types, standing in for $__rate_interval (as the linter does).
const RATE_INTERVAL_MAGIC = '7654321ms';

export interface Rule {
  name: string;
  description: string;
}

export const RULES: readonly Rule[] = [
  { name: 'template-datasource-rule', description: 'Checks that the dashboard has a templated datasource.' },
  { name: 'template-job-rule', description: 'Checks that the dashboard has a templated job.' },
  { name: 'template-instance-rule', description: 'Checks that the dashboard has a templated instance.' },
  { name: 'template-label-promql-rule', description: 'Checks that the dashboard templated labels have proper PromQL expressions.' },
  { name: 'template-on-time-change-reload-rule', description: 'Checks that the dashboard template variables are configured to reload on time change.' },
  { name: 'panel-datasource-rule', description: 'Checks that each panel uses the templated datasource.' },
  { name: 'panel-title-description-rule', description: 'Checks that each panel has a title and description.' },
  { name: 'panel-units-rule', description: 'Checks that each panel uses has valid units defined.' },
  { name: 'panel-no-targets-rule', description: 'Checks that each panel has at least one target.' },
  { name: 'target-promql-rule', description: 'Checks that each target uses a valid PromQL query.' },
  { name: 'target-rate-interval-rule', description: 'Checks that each target uses $__rate_interval.' },
  { name: 'target-job-rule', description: 'Checks that every PromQL query has a job matcher.' },
  { name: 'target-instance-rule', description: 'Checks that every PromQL query has a instance matcher.' },
  { name: 'target-counter-agg-rule', description: 'Checks that any counter metric (ending in _total) is aggregated with rate, irate, or increase.' },
  { name: 'uneditable-dashboard-rule', description: 'Checks that the dashboard is not editable.' },
];

function dsUid(ds: unknown): string {
  if (typeof ds === 'string') return ds;
  if (ds && typeof ds === 'object' && 'uid' in ds) return String((ds as { uid: unknown }).uid ?? '');
  return '';
}

function variableQuery(v: Variable): string {
  if (typeof v.query === 'string') return v.query;
  if (v.query && typeof v.query === 'object' && 'query' in v.query) return String((v.query as { query: unknown }).query ?? '');
  return '';
}

/** Every panel in reading order, children of rows (old `rows` and row panels) included. */
export function allPanels<P extends { panels?: P[] }>(d: { panels?: P[]; rows?: { panels?: P[] }[] }): P[] {
  const out: P[] = [];
  const walk = (ps?: P[]) => {
    for (const p of ps ?? []) {
      out.push(p);
      walk(p.panels);
    }
  };
  for (const r of d.rows ?? []) walk(r.panels);
  walk(d.panels);
  return out;
}

/** Records one finding of a rule (on the dashboard, a panel, or one target of a panel). */
type Report = (rule: string, message: string, severity?: Severity, panel?: Panel, targetIdx?: number) => void;

/** Lint one dashboard with every rule; exclusions/warnings are applied by `applyConfig`. */
export function lintDashboard(d: Dashboard): LintResult[] {
  const title = d.title ?? '(untitled)';
  const out: LintResult[] = [];
  const add: Report = (rule, message, severity = 'error', panel, targetIdx) => {
    out.push({ rule, severity, dashboard: title, panel: panel?.title, targetIdx, message });
  };
  const vars = d.templating?.list ?? [];
  const dsVars = vars.filter((v) => v.type === 'datasource');
  const promDs = dsVars.find((v) => variableQuery(v) === 'prometheus');

  lintDatasourceVariables(title, dsVars, add);
  if (promDs) {
    lintJobInstanceVariables(vars, add);
    lintLabelQueries(vars, add);
  }
  // template-on-time-change-reload-rule
  for (const v of vars.filter((x) => x.type === 'query')) {
    if (v.refresh !== 2)
      add('template-on-time-change-reload-rule', `templated datasource variable named '${v.name}', should be set to be refreshed 'On Time Range Change (value 2)', is currently '${v.refresh}'`);
  }
  // uneditable-dashboard-rule
  if (d.editable !== false) add('uneditable-dashboard-rule', `is editable, it should be set to 'editable: false'`);

  const dsRefs = new Set(dsVars.flatMap((v) => [`$${v.name}`, `\${${v.name}}`]));
  for (const p of allPanels(d)) {
    lintPanel(p, dsRefs, add);
    if (promDs && QUERY_PANELS.has(p.type ?? '')) lintTargets(p, add);
  }
  return out;
}

/** template-datasource-rule: one templated data source, named and labelled after its type. */
function lintDatasourceVariables(title: string, dsVars: Variable[], add: Report): void {
  if (dsVars.length === 0) add('template-datasource-rule', `Dashboard '${title}' does not have a templated data source`);
  for (const v of dsVars) {
    const q = variableQuery(v);
    const uids = new Set([`${q.toLowerCase()}_datasource`, ...(dsVars.length === 1 ? ['datasource'] : [])]);
    const names = new Set([`${q.charAt(0).toUpperCase()}${q.slice(1)} data source`, ...(dsVars.length === 1 ? ['Data source'] : [])]);
    if (!uids.has(v.name ?? '')) add('template-datasource-rule', `templated data source variable named '${v.name}', should be named ${[...uids].map((u) => `'${u}'`).join(' or ')}`);
    else if (!names.has(v.label ?? ''))
      add('template-datasource-rule', `templated data source variable labeled '${v.label}', should be labeled ${[...names].map((u) => `'${u}'`).join(' or ')}`, 'warning');
  }
}

/** template-job-rule, template-instance-rule: multi-select query variables on the templated data source. */
function lintJobInstanceVariables(vars: Variable[], add: Report): void {
  for (const name of ['job', 'instance']) {
    const rule = `template-${name}-rule`;
    const v = vars.find((x) => x.name === name);
    if (!v) {
      add(rule, `is missing the ${name} template`);
      continue;
    }
    const src = dsUid(v.datasource);
    if (!['$datasource', '${datasource}', '$prometheus_datasource', '${prometheus_datasource}'].includes(src)) add(rule, `${name} template should use datasource '$datasource', is currently '${src}'`);
    if (v.type !== 'query') add(rule, `${name} template should be a Prometheus query, is currently '${v.type}'`);
    const label = name.charAt(0).toUpperCase() + name.slice(1);
    if (v.label !== label) add(rule, `${name} template should be a labeled '${label}', is currently '${v.label}'`, 'warning');
    if (!v.multi) add(rule, `${name} template should be a multi select`);
    if (v.allValue !== '.+') add(rule, `${name} template allValue should be '.+', is currently '${v.allValue}'`);
  }
}

/** template-label-promql-rule: every query variable is a label function over valid PromQL. */
function lintLabelQueries(vars: Variable[], add: Report): void {
  for (const v of vars.filter((x) => x.type === 'query')) {
    const q = variableQuery(v);
    const m = LABEL_FUNCTIONS.exec(q);
    if (!m) {
      add('template-label-promql-rule', `template '${v.name}' invalid templated label '${q}': invalid 'query'`);
      continue;
    }
    let arg = m[2];
    if (m[1] === 'label_values') {
      const lv = /^(.+),\s*[A-Za-z_][A-Za-z0-9_]*\s*$/s.exec(arg);
      if (!lv) continue; // label_values(label): no query to check
      arg = lv[1];
    }
    if (m[1] === 'label_names' && !arg.trim()) continue;
    const p = parsePromQL(expandGrafanaVariables(arg, {}, { inStrings: false }));
    if (p.errors.length) add('template-label-promql-rule', `template '${v.name}' invalid templated label '${q}': ${p.errors[0]}`);
  }
}

/** The panel rules: templated data source, title and description, units, targets present. */
function lintPanel(p: Panel, dsRefs: Set<string>, add: Report): void {
  const type = p.type ?? '';
  // panel-datasource-rule
  if (DATASOURCE_PANELS.has(type) && !dsRefs.has(dsUid(p.datasource))) add('panel-datasource-rule', `does not use a templated datasource, uses '${dsUid(p.datasource)}'`, 'error', p);
  // panel-title-description-rule
  if (TITLED_PANELS.has(type) && (!p.title || !p.description))
    add('panel-title-description-rule', `panel with id '${p.id}' has missing title or description, currently has title '${p.title ?? ''}' and description: '${p.description ?? ''}'`, 'error', p);
  // panel-units-rule
  if (TITLED_PANELS.has(type)) {
    let unit = '';
    for (const o of p.fieldConfig?.overrides ?? []) for (const prop of o.properties ?? []) if (prop.id === 'unit') unit = String(prop.value);
    if (!unit) unit = p.fieldConfig?.defaults?.unit ?? '';
    if (!VALID_UNITS.has(unit)) add('panel-units-rule', `panel '${p.title}' has no or invalid units defined: '${unit}'`, 'error', p);
  }
  // panel-no-targets-rule
  if (TITLED_PANELS.has(type) && !p.targets) add('panel-no-targets-rule', `panel '${p.title}' has no targets`, 'error', p);
}

/** The target rules of a query panel: valid PromQL, $__rate_interval, job/instance matchers, counters rated. */
function lintTargets(p: Panel, add: Report): void {
  (p.targets ?? []).forEach((t, idx) => {
    if (!t.expr) return;
    const parsed = parsePromQL(expandGrafanaVariables(t.expr, { __rate_interval: RATE_INTERVAL_MAGIC }, { inStrings: false }));
    // target-promql-rule
    if (parsed.errors.length) {
      add('target-promql-rule', `invalid PromQL query '${t.expr}': ${parsed.errors[0]}`, 'error', p, idx);
      return;
    }
    for (const sel of parsed.selectors) {
      // target-rate-interval-rule
      if (sel.range && sel.range !== RATE_INTERVAL_MAGIC && (sel.enclosingFunction === 'rate' || sel.enclosingFunction === 'irate')) {
        add('target-rate-interval-rule', `invalid PromQL query '${t.expr}': should use $__rate_interval`, 'error', p, idx);
      }
      // target-job-rule, target-instance-rule
      for (const label of ['job', 'instance']) {
        const m = sel.matchers.find((x) => x.label === label);
        const problem = !m ? `${label} selector not found` : m.op !== '=~' ? `${label} selector is ${m.op}, not =~` : m.value !== `$${label}` ? `${label} selector is ${m.value}, not $${label}` : '';
        if (problem) add(`target-${label}-rule`, `invalid PromQL query '${t.expr}': ${problem}`, 'error', p, idx);
      }
      // target-counter-agg-rule
      if (sel.metric?.endsWith('_total') && !(sel.range && ['rate', 'irate', 'increase'].includes(sel.enclosingFunction ?? ''))) {
        add('target-counter-agg-rule', `counter metric '${sel.text}' is not aggregated with rate, irate, or increase`, 'error', p, idx);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// .lint configuration

export interface LintEntry {
  dashboard?: string;
  panel?: string;
  targetIdx?: number;
}
export interface LintRuleConfig {
  reason?: string;
  entries?: LintEntry[];
}
export interface LintConfig {
  exclusions?: Record<string, LintRuleConfig | null>;
  warnings?: Record<string, LintRuleConfig | null>;
}

export function loadLintConfig(file: string): LintConfig {
  if (!fs.existsSync(file)) return {};
  const doc = YAML.parse(fs.readFileSync(file, 'utf8')) ?? {};
  const known = new Set(RULES.map((r) => r.name));
  for (const section of ['exclusions', 'warnings'] as const) {
    for (const rule of Object.keys(doc[section] ?? {})) {
      if (!known.has(rule)) throw new UserError(`${file}: ${section}.${rule} is not a dashboard-linter rule`, { hint: `Known rules: ${[...known].join(', ')}.` });
    }
  }
  return doc as LintConfig;
}

function matches(cfg: LintRuleConfig | null | undefined, r: LintResult): boolean {
  if (cfg === undefined) return false;
  if (!cfg?.entries?.length) return true;
  return cfg.entries.some(
    (e) => (e.dashboard === undefined || e.dashboard === r.dashboard) && (e.panel === undefined || e.panel === r.panel) && (e.targetIdx === undefined || e.targetIdx === r.targetIdx),
  );
}

/** Drop excluded results and downgrade configured warnings. */
export function applyConfig(results: LintResult[], cfg: LintConfig): LintResult[] {
  return results
    .filter((r) => !(cfg.exclusions && r.rule in cfg.exclusions && matches(cfg.exclusions[r.rule], r)))
    .map((r) => (cfg.warnings && r.rule in cfg.warnings && matches(cfg.warnings[r.rule], r) ? { ...r, severity: 'warning' as const } : r));
}

export function formatResult(r: LintResult): string {
  const where = [`Dashboard '${r.dashboard}'`, r.panel !== undefined ? `panel '${r.panel}'` : '', r.targetIdx !== undefined ? `target idx '${r.targetIdx}'` : ''].filter(Boolean).join(', ');
  return `[${r.severity}] ${r.rule}: ${where}: ${r.message}`;
}
