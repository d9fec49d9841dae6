// A small builder for Grafana dashboard JSON (schemaVersion 39): every panel queries the
// `datasource` template variable, has a unit and a description, and is laid out on the 24-column
// grid in reading order. Panel ids and target refIds are assigned here, so definitions stay short.

export const SCHEMA_VERSION = 39;
export const DATASOURCE = { type: 'prometheus', uid: '${datasource}' } as const;

export interface TargetSpec {
  expr: string;
  legend?: string;
  /** Instant query (stat panels showing "now"). */
  instant?: boolean;
}

export interface PanelSpec {
  title: string;
  description: string;
  type?: 'timeseries' | 'stat' | 'gauge';
  unit: string;
  targets: TargetSpec[];
  /** Grid width (24 = full row); default 12 for time series, 6 for stats. */
  w?: number;
  h?: number;
  min?: number;
  max?: number;
  decimals?: number;
  stack?: boolean;
  /** Thresholds for stats: [value, color] steps above the base colour. */
  thresholds?: [number, string][];
  baseColor?: string;
}

export interface RowSpec {
  title: string;
  panels: PanelSpec[];
}

export interface VariableSpec {
  name: string;
  label: string;
  /** label_values(<query>, <label>) */
  query: string;
  /** The Prometheus label whose values the variable offers. */
  promLabel: string;
  description?: string;
}

export interface DashboardSpec {
  uid: string;
  title: string;
  description: string;
  tags: string[];
  variables: VariableSpec[];
  rows: RowSpec[];
}

type Json = Record<string, unknown>;

function datasourceVariable(): Json {
  return {
    current: {},
    description: 'Prometheus data source that scrapes the Conduit release.',
    hide: 0,
    includeAll: false,
    label: 'Data source',
    multi: false,
    name: 'datasource',
    options: [],
    query: 'prometheus',
    refresh: 1,
    regex: '',
    type: 'datasource',
  };
}

function queryVariable(v: VariableSpec): Json {
  const q = `label_values(${v.query}, ${v.promLabel})`;
  return {
    allValue: '.+',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    datasource: DATASOURCE,
    definition: q,
    description: v.description ?? `Filter by ${v.promLabel}.`,
    hide: 0,
    includeAll: true,
    label: v.label,
    multi: true,
    name: v.name,
    options: [],
    query: { qryType: 1, query: q, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    refresh: 2,
    regex: '',
    sort: 1,
    type: 'query',
  };
}

function panelJson(p: PanelSpec, id: number, gridPos: Json): Json {
  const type = p.type ?? 'timeseries';
  const defaults: Json = { unit: p.unit };
  if (p.min !== undefined) defaults.min = p.min;
  if (p.max !== undefined) defaults.max = p.max;
  if (p.decimals !== undefined) defaults.decimals = p.decimals;
  defaults.color = { mode: type === 'timeseries' ? 'palette-classic' : 'thresholds' };
  defaults.thresholds = {
    mode: 'absolute',
    steps: [{ color: p.baseColor ?? 'green', value: null }, ...(p.thresholds ?? []).map(([value, color]) => ({ color, value }))],
  };
  if (type === 'timeseries') {
    defaults.custom = {
      drawStyle: 'line',
      fillOpacity: p.stack ? 30 : 10,
      lineWidth: 1,
      showPoints: 'never',
      spanNulls: false,
      stacking: { group: 'A', mode: p.stack ? 'normal' : 'none' },
    };
  }
  const options: Json =
    type === 'timeseries'
      ? { legend: { calcs: [], displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } }
      : { colorMode: 'value', graphMode: 'area', justifyMode: 'auto', orientation: 'auto', reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, textMode: 'auto' };
  return {
    datasource: DATASOURCE,
    description: p.description,
    fieldConfig: { defaults, overrides: [] },
    gridPos,
    id,
    options,
    targets: p.targets.map((t, i) => ({
      datasource: DATASOURCE,
      editorMode: 'code',
      expr: t.expr,
      instant: Boolean(t.instant),
      legendFormat: t.legend ?? '__auto',
      range: !t.instant,
      refId: String.fromCharCode(65 + i),
    })),
    title: p.title,
    type,
  };
}

/** The dashboard JSON for a spec (without `version`, which the version registry adds). */
export function buildDashboard(spec: DashboardSpec): Json {
  let id = 1;
  let y = 0;
  const panels: Json[] = [];
  for (const row of spec.rows) {
    panels.push({ collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, id: id++, panels: [], title: row.title, type: 'row' });
    y += 1;
    let x = 0;
    let rowHeight = 0;
    for (const p of row.panels) {
      const w = p.w ?? (p.type === 'stat' || p.type === 'gauge' ? 6 : 12);
      const h = p.h ?? (p.type === 'stat' || p.type === 'gauge' ? 4 : 8);
      if (x + w > 24) {
        x = 0;
        y += rowHeight;
        rowHeight = 0;
      }
      panels.push(panelJson(p, id++, { h, w, x, y }));
      x += w;
      rowHeight = Math.max(rowHeight, h);
    }
    y += rowHeight;
  }
  return {
    annotations: { list: [] },
    description: spec.description,
    editable: false,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    id: null,
    links: [{ asDropdown: true, icon: 'external link', includeVars: true, keepTime: true, tags: ['conduit'], targetBlank: false, title: 'Conduit dashboards', type: 'dashboards' }],
    panels,
    refresh: '1m',
    schemaVersion: SCHEMA_VERSION,
    tags: spec.tags,
    templating: { list: [datasourceVariable(), ...spec.variables.map(queryVariable)] },
    time: { from: 'now-6h', to: 'now' },
    timepicker: {},
    timezone: '',
    title: spec.title,
    uid: spec.uid,
  };
}
