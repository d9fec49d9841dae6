// The validation pipeline behind `validate.ts` (and deploy.ts's pre-flight): for each cluster,
// merge the values layers as Helm does, check them against the chart's schema with positions,
// `helm lint --strict`, `helm template` per Kubernetes version, strict schema validation of every
// rendered object (kubeconform, offline schemas of that version plus the operators' CRDs), and
// kube-score. Returns a typed report; nothing here prints or exits.
//
// Speed comes from doing each expensive thing once: schemas are generated once per version and
// cached; one kubeconform process validates every cluster's render of a version; a render is
// shared by all versions when the chart cannot tell versions apart (no `.Capabilities` anywhere,
// and any Chart.yaml kubeVersion constraint admits them all); an object is checked once against a
// schema that did not change between versions; the compiled values schema is cached; clusters and
// versions run in parallel.
//
// kubeconform reads the renders from private temporary files (0600, removed at the end), not from
// stdin: on stdin every object is reported as coming from "stdin", so one process could not tell
// the clusters (and versions) apart.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ErrorObject, ValidateFunction } from 'ajv';
import semver from 'semver';
import { parse as parseYaml } from 'yaml';
import { cachedValidator } from './ajvcache.ts';
import { isUserError, toolError, UserError } from './errors.ts';
import { mapLimit, run, type RunResult } from './exec.ts';
import { kubeVersionArg, templateFailure } from './helm.ts';
import { ensureSchemas, minorOf, schemaLocationTemplate, schemasRoot } from './kubeschemas.ts';
import { displayPath, REPO_ROOT } from './paths.ts';
import { helmToolName, tool, type HelmMajor } from './tools.ts';
import type { ClusterConfig } from './clusters.ts';
import {
  formatPath, formatPos, getPath, isPlainObject, loadValuesFile, locate, looksSecret, mergeUserLayers, mergeValueLayers, parseSetFlags, pathKey, setsAsValues,
  type MergedValues, type PathSegment, type SetAssignment, type SourcePos, type ValuesLayer,
} from './values.ts';

export type StepName = 'values' | 'lint' | 'render' | 'schema' | 'kube-score';
export type StepStatus = 'ok' | 'failed' | 'skipped';

export interface Finding {
  message: string;
  /** Values key path, e.g. `api.replicas`. */
  key?: string;
  /** file:line:column (or `--set a=b`) of the layer that set the key last. */
  location?: string;
  file?: string;
  line?: number;
  column?: number;
  hint?: string;
  /** Rendered object, e.g. `Deployment/conduit-api`. */
  object?: string;
}

export interface StepResult {
  step: StepName;
  /** Kubernetes version the step ran for (full patch), when it depends on one. */
  kubeVersion?: string;
  status: StepStatus;
  ms: number;
  note?: string;
  findings: Finding[];
}

export interface ClusterReport {
  cluster: string;
  ok: boolean;
  namespace: string;
  release: string;
  layers: string[];
  steps: StepResult[];
  warnings: string[];
}

export interface ValidationReport {
  ok: boolean;
  helm: HelmMajor;
  kubeVersions: string[];
  /** Whether one render was shared by every version (the chart ignores the Kubernetes version). */
  sharedRender: boolean;
  clusters: ClusterReport[];
  ms: number;
}

export interface ValidateOptions {
  clusters: ClusterConfig[];
  chartDir?: string;
  /** Extra --values files, after the registry layers. */
  valuesFiles?: string[];
  /** --set assignments, applied last. */
  sets?: string[];
  /** Full Kubernetes versions (e.g. 1.36.3). */
  kubeVersions: string[];
  helm?: HelmMajor;
  concurrency?: number;
  kubeScoreConfig?: string;
  schemaRoot?: string;
  /** Steps to leave out (tests, deploy's quick pre-flight). */
  skip?: StepName[];
  progress?: (note: string) => void;
  /** Called with each successful render and the merged values it came from (deploy's checklist uses it). */
  onRender?: (render: { cluster: string; kubeVersion: string; manifest: string; values: Record<string, unknown> }) => void;
}

/** Kinds that have no schema and are accepted anyway, each with the reason. Empty on purpose. */
export const SCHEMALESS_ALLOWLIST: Readonly<Record<string, string>> = {};

export const DEFAULT_KUBE_SCORE_CONFIG = path.join(REPO_ROOT, '.kube-score.yaml');

// ---------------------------------------------------------------------------------------------
// Values against the chart's schema, with positions.

interface ChartSchema {
  file: string;
  validate: ValidateFunction;
}

const schemaCache = new Map<string, ChartSchema>();

/** Compile the chart's values schema (the generated code is cached: see ajvcache.ts). */
export function compileChartSchema(chartDir: string): ChartSchema | undefined {
  const file = path.join(chartDir, 'values.schema.json');
  if (!fs.existsSync(file)) return undefined;
  const cached = schemaCache.get(file);
  if (cached) return cached;
  let validate: ValidateFunction;
  try {
    validate = cachedValidator(fs.readFileSync(file, 'utf8'), { formats: true });
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    throw new UserError(`${displayPath(file)} is not valid JSON: ${e.message}`, { hint: 'Fix the chart schema.' });
  }
  const result = { file, validate };
  schemaCache.set(file, result);
  return result;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

function closest(word: string, candidates: string[]): string | undefined {
  const w = word.toLowerCase();
  const common = (a: string, b: string) => {
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    return i;
  };
  // `replicas` for `replicaCount`: a long shared prefix says more than the edit distance.
  const prefix = candidates.filter((c) => common(w, c.toLowerCase()) >= Math.max(4, Math.ceil(w.length * 0.7)));
  if (prefix.length === 1) return prefix[0];
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const dist = editDistance(word.toLowerCase(), c.toLowerCase());
    if (dist < bestD) [best, bestD] = [c, dist];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function instancePath(e: ErrorObject): PathSegment[] {
  return e.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function describe(v: unknown, at: readonly PathSegment[] = []): string {
  if (v === null) return 'null';
  if (looksSecret(at) && typeof v !== 'object') return `a ${typeof v} (value hidden)`;
  if (Array.isArray(v)) return 'a list';
  if (isPlainObject(v)) return 'a map';
  const s = JSON.stringify(v);
  return `${typeof v} ${s.length > 60 ? s.slice(0, 57) + '...' : s}`;
}

/** The last layer (other than the chart's defaults) that touched `path` or a parent; else the cluster's own file. */
function layerForMissing(merged: MergedValues, parent: PathSegment[], fallback: string): SourcePos {
  const defaultsFile = merged.layers[0]?.file;
  for (let n = parent.length; n > 0; n--) {
    const pos = merged.sources.get(pathKey(parent.slice(0, n)));
    if (pos && pos.file !== defaultsFile) return pos;
  }
  return { file: fallback, line: 0, col: 0 };
}

function findingAt(pos: SourcePos | undefined): Pick<Finding, 'location' | 'file' | 'line' | 'column'> {
  if (!pos) return {};
  return { location: formatPos(pos), file: pos.file, ...(pos.line > 0 ? { line: pos.line, column: pos.col } : {}) };
}

/** Ajv errors -> findings that name the key, the layer that set it, and what to do. */
export function schemaFindings(errors: ErrorObject[], merged: MergedValues, clusterFile: string): Finding[] {
  // Summaries that repeat their branches (if/then) are dropped; branches of anyOf/oneOf are folded
  // into the anyOf/oneOf finding.
  const combinators = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  const isBranch = (e: ErrorObject) => combinators.some((c) => c !== e && e.schemaPath.startsWith(c.schemaPath + '/') && e.instancePath.startsWith(c.instancePath));
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (e.keyword === 'if' || isBranch(e)) continue;
    let p = instancePath(e);
    let message = e.message ?? 'is invalid';
    let hint: string | undefined;
    let pos: SourcePos | undefined;
    const parent = e.parentSchema as { description?: string; properties?: Record<string, unknown>; enum?: unknown[] } | undefined;
    const desc = parent?.description;
    switch (e.keyword) {
      case 'additionalProperties': {
        const extra = (e.params as { additionalProperty: string }).additionalProperty;
        p = [...p, extra];
        const known = Object.keys(parent?.properties ?? {});
        const guess = closest(extra, known);
        message = `unknown key "${extra}"`;
        hint = guess ? `Did you mean "${guess}"? ` : '';
        hint += known.length ? `Keys allowed under ${formatPath(p.slice(0, -1))}: ${known.join(', ')}.` : `${formatPath(p.slice(0, -1))} takes no keys.`;
        pos = locate(merged, p)?.pos;
        break;
      }
      case 'required': {
        const missing = (e.params as { missingProperty: string }).missingProperty;
        pos = layerForMissing(merged, p, clusterFile);
        p = [...p, missing];
        message = `required key "${missing}" is missing`;
        hint = `${pos.file === '--set' ? `Set ${formatPath(p)} (a --set removed it, or add it to ${clusterFile})` : `Add ${formatPath(p)} to ${pos.file}`}${desc ? ` (${desc})` : ''}.`;
        break;
      }
      case 'type': {
        const got = getPath(merged.values, p);
        message = `must be ${(e.params as { type: string }).type}, got ${describe(got, p)}`;
        const pos0 = locate(merged, p)?.pos;
        const bool = merged.warnings.find((w) => pos0 && w.at.file === pos0.file && w.at.line === pos0.line);
        hint = bool ? `The value is a YAML 1.1 boolean word; quote it.` : desc;
        if (!hint && (e.params as { type: string }).type === 'string' && typeof got === 'number' && !looksSecret(p)) hint = `Quote the value ("${got}") to keep it a string.`;
        pos = pos0;
        break;
      }
      case 'enum': {
        const allowed = (e.params as { allowedValues: unknown[] }).allowedValues;
        message = `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${describe(getPath(merged.values, p), p)}`;
        hint = desc;
        pos = locate(merged, p)?.pos;
        break;
      }
      case 'pattern':
      case 'format': {
        message = `${describe(getPath(merged.values, p), p)} ${e.message}`;
        hint = desc ?? (e.keyword === 'format' ? `Use a valid ${(e.params as { format: string }).format}.` : undefined);
        pos = locate(merged, p)?.pos;
        break;
      }
      case 'not':
      case 'anyOf':
      case 'oneOf':
      case 'const':
      case 'false schema': {
        const branches = errors.filter((b) => b !== e && isBranch(b) && b.schemaPath.startsWith(e.schemaPath + '/'));
        const subDesc = (e.schema as { description?: string } | undefined)?.description;
        message = subDesc ?? desc ?? e.message ?? 'is invalid';
        if (branches.length) hint = `Accepted: ${[...new Set(branches.map((b) => b.message))].join('; or ')}.`;
        else hint = subDesc && desc ? desc : undefined;
        pos = locate(merged, p)?.pos;
        break;
      }
      default:
        hint = desc;
        pos = locate(merged, p)?.pos;
    }
    const f: Finding = { message, key: formatPath(p), ...findingAt(pos), ...(hint ? { hint } : {}) };
    const k = `${f.key}\u0000${f.message}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(f);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Chart facts that decide how often to render.

function textFilesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

/**
 * Whether a Kubernetes version satisfies Chart.yaml's kubeVersion constraint (Masterminds syntax, which
 * Helm uses: `,` joins, `||` alternates, `x`/`*` wildcards), evaluated with the `semver` package;
 * undefined when the constraint cannot be read.
 */
export function satisfiesConstraint(version: string, constraint: string): boolean | undefined {
  const v = semver.coerce(version);
  // Masterminds separates AND-ed parts with commas (or spaces) and allows `>= 1.2` with a space.
  const range = constraint.replace(/\s*,\s*/g, ' ').replace(/(>=|<=|!=|>|<|=|~|\^)\s+/g, '$1');
  if (!v || semver.validRange(range) === null) return undefined;
  return semver.satisfies(v, range, { includePrerelease: true });
}

/**
 * Whether `helm template` output can differ between the given versions: the chart (or a values
 * string it may pass to `tpl`) mentions .Capabilities, has subchart archives we cannot read, or
 * has a kubeVersion constraint that some versions fail or that we cannot evaluate.
 */
export function renderDependsOnKubeVersion(chartDir: string, versions: string[], valuesTexts: string[] = []): boolean {
  if (versions.length < 2) return false;
  for (const f of textFilesUnder(chartDir)) {
    if (f.endsWith('.tgz')) return true;
    const text = fs.readFileSync(f, 'utf8');
    if (text.includes('Capabilities')) return true;
  }
  if (valuesTexts.some((t) => t.includes('Capabilities'))) return true;
  const chartYaml = parseYaml(fs.readFileSync(path.join(chartDir, 'Chart.yaml'), 'utf8')) as { kubeVersion?: string } | null;
  if (chartYaml?.kubeVersion) {
    for (const v of versions) if (satisfiesConstraint(v, chartYaml.kubeVersion) !== true) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// kube-score configuration: checks to ignore, each with the reason.

export interface KubeScoreIgnore {
  check: string;
  reason: string;
  /** Only for clusters of these environments (all when absent). */
  environments?: string[];
  /** Only for these objects, `Kind/name` with `*` wildcards (all objects when absent). */
  objects?: string[];
}

function globToRegExp(glob: string): RegExp {
  return new RegExp('^' + glob.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
}

export interface KubeScoreConfig {
  file: string;
  ignore: KubeScoreIgnore[];
  enableOptional: string[];
  /** Extra kube-score flags (e.g. --ignore-container-cpu-limit), each with the reason. */
  flags: { flag: string; reason: string }[];
}

/** The kube-score configuration beside the chart directory (`.kube-score.yaml`). */
export function kubeScoreConfigFor(chartDir: string): string {
  return path.join(path.dirname(path.resolve(chartDir)), '.kube-score.yaml');
}

export function loadKubeScoreConfig(file = DEFAULT_KUBE_SCORE_CONFIG): KubeScoreConfig {
  if (!fs.existsSync(file)) return { file, ignore: [], enableOptional: [], flags: [] };
  const doc = parseYaml(fs.readFileSync(file, 'utf8')) as {
    ignore?: { check?: string; reason?: string; environments?: string[]; objects?: string[] }[];
    enableOptional?: string[];
    flags?: { flag?: string; reason?: string }[];
  } | null;
  const ignore = (doc?.ignore ?? []).map((i, n) => {
    if (!i?.check || !i.reason || i.reason.trim().length < 10) {
      throw new UserError(`${displayPath(file)}: ignore[${n}] needs a check id and a reason`, { hint: 'Every ignored kube-score check must say why it does not apply.' });
    }
    return {
      check: i.check,
      reason: i.reason.trim(),
      ...(i.environments ? { environments: i.environments.map(String) } : {}),
      ...(i.objects ? { objects: i.objects.map(String) } : {}),
    };
  });
  const flags = (doc?.flags ?? []).map((f, n) => {
    if (!f?.flag || !/^--[a-z-]+$/.test(f.flag) || !f.reason || f.reason.trim().length < 10) {
      throw new UserError(`${displayPath(file)}: flags[${n}] needs a --flag and a reason`, { hint: 'Every kube-score flag that relaxes a check must say why.' });
    }
    return { flag: f.flag, reason: f.reason.trim() };
  });
  return { file, ignore, enableOptional: doc?.enableOptional ?? [], flags };
}

interface KubeScoreObject {
  object_name: string;
  type_meta?: { kind: string };
  object_meta?: { name: string };
  checks: { check: { id: string; name: string }; grade: number; skipped: boolean; comments: { path?: string; summary?: string; description?: string }[] | null }[];
}

// ---------------------------------------------------------------------------------------------
// kubeconform output

export interface KubeconformResource {
  filename: string;
  kind: string;
  name: string;
  version: string;
  status: 'statusValid' | 'statusInvalid' | 'statusError' | 'statusSkipped' | 'statusEmpty';
  msg: string;
  validationErrors?: { path: string; msg: string }[];
}

/** kubeconform folds the validator's messages into `msg`: " - at '/spec/x': message" per error. */
export function kubeconformMessages(r: KubeconformResource): string[] {
  const parts = [...r.msg.matchAll(/- at '([^']*)': (.*?)(?=\s+- at '|$)/g)].map((m) => ({ path: m[1], msg: m[2].trim() }));
  const useful = parts.filter((p) => p.msg !== 'validation failed');
  if (useful.length) return useful.map((p) => `${p.path || '/'}: ${p.msg}`);
  const fromList = (r.validationErrors ?? []).filter((v) => v.msg !== 'validation failed').map((v) => `${v.path || '/'}: ${v.msg}`);
  return fromList.length ? fromList : [r.msg];
}

export interface RenderedDoc {
  /** `apiVersion/kind`, e.g. `apps/v1/Deployment`. */
  key: string;
  name: string;
  text: string;
}

/** `metadata.name` of one document: the `name:` line at the first indentation under `metadata:`. */
function metadataName(doc: string): string {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => /^metadata:\s*(#.*)?$/.test(l));
  if (start < 0) {
    // Flow style: metadata: {name: x, ...}
    return /^metadata:\s*\{[^}]*?\bname:\s*["']?([^\s,"'}]+)/m.exec(doc)?.[1] ?? '';
  }
  let indent: string | undefined;
  for (const line of lines.slice(start + 1)) {
    if (!line.trim() || /^\s*#/.test(line)) continue;
    const lead = /^[ \t]*/.exec(line)![0];
    if (!lead) break;
    indent ??= lead;
    if (lead !== indent) continue;
    const m = /^\s*name:[ \t]*["']?([^\s"'#]+)/.exec(line);
    if (m) return m[1];
  }
  return '';
}

/**
 * The documents of a `helm template` output with their apiVersion, kind and name, read from the
 * top-level keys helm writes at column 0 (no YAML parse: this runs on every render).
 */
export function splitRendered(manifest: string): RenderedDoc[] {
  const out: RenderedDoc[] = [];
  for (const text of manifest.split(/^---[ \t]*$/m)) {
    const api = /^apiVersion:[ \t]*["']?([^\s"'#]+)/m.exec(text)?.[1];
    const kind = /^kind:[ \t]*["']?([^\s"'#]+)/m.exec(text)?.[1];
    const name = metadataName(text);
    if (api && kind) out.push({ key: `${api}/${kind}`, name, text: text.replace(/^\n+/, '') });
    else if (text.replace(/#[^\n]*/g, '').trim()) out.push({ key: 'unknown/Unknown', name: '', text });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

interface ClusterState {
  cluster: ClusterConfig;
  report: ClusterReport;
  merged?: MergedValues;
  /** helm --values arguments (files) and the stdin document of --set assignments. */
  helmValues: { files: string[]; stdin?: string };
  valuesOk: boolean;
  /** Rendered manifest file per version (full version -> file). */
  renders: Map<string, string>;
}

function step(report: ClusterReport, r: StepResult): StepResult {
  report.steps.push(r);
  if (r.status === 'failed') report.ok = false;
  return r;
}

/** Point a render-time failure at the values keys it names. */
function locateMessage(message: string, merged: MergedValues | undefined): Pick<Finding, 'key' | 'location' | 'file' | 'line' | 'column'> {
  if (!merged) return {};
  const candidates = [...message.matchAll(/\b([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)+)\b/g)].map((m) => m[1]);
  for (const c of candidates) {
    const p = c.split('.');
    if (merged.sources.has(pathKey(p)) || getPath(merged.values, p) !== undefined) {
      const hit = locate(merged, p);
      return { key: c, ...findingAt(hit?.pos) };
    }
  }
  return {};
}

function helmProblems(r: RunResult): Finding[] {
  const text = (r.stderr + '\n' + r.stdout).trim();
  const lines = text.split('\n').filter((l) => /\[(ERROR|WARNING)\]/.test(l) || /^Error:/.test(l));
  return (lines.length ? lines : [text.split('\n').slice(-5).join(' ')]).map((l) => ({ message: l.trim() }));
}

export interface PreparedValues {
  /** The values Helm will render with, and where each key came from. */
  merged: MergedValues;
  /** The cluster's layer files then the extra --values files, parsed. */
  layers: ValuesLayer[];
  /** What to hand helm: --values files in order, then (when --set was used) a document on stdin. */
  helm: { files: string[]; stdin?: string };
}

/**
 * One cluster's values as Helm will see them, and the helm arguments that reproduce them
 * (deploy.ts uses the same, so what was validated is what gets installed). Throws a UserError
 * (exit 1) naming file, line and column for unreadable or malformed layer files.
 */
export function prepareClusterValues(
  cluster: ClusterConfig,
  inputs: { defaults: ValuesLayer; extraLayers?: ValuesLayer[]; valuesFiles?: string[]; sets?: SetAssignment[] },
): PreparedValues {
  const sets = inputs.sets ?? [];
  const layers = [...cluster.layers.map((l) => loadValuesFile(l)), ...(inputs.extraLayers ?? (inputs.valuesFiles ?? []).map((f) => loadValuesFile(f)))];
  const merged = mergeValueLayers(inputs.defaults, layers, sets);
  // JSON, not YAML: helm reads values as YAML 1.1, where an unquoted string such as y, on or no would
  // turn into a boolean; JSON strings are always quoted.
  const stdin = sets.length ? JSON.stringify(setsAsValues(sets, mergeUserLayers(layers, sets)), null, 2) + '\n' : undefined;
  return { merged, layers, helm: { files: [...cluster.layers, ...(inputs.valuesFiles ?? [])].map((f) => path.resolve(f)), stdin } };
}

/**
 * Validate the clusters. Throws a UserError with exit code 2 when a tool cannot run; findings in the
 * input are returned in the report (ok: false).
 */
export async function validateClusters(options: ValidateOptions): Promise<ValidationReport> {
  const started = performance.now();
  const chartDir = options.chartDir ?? path.join(REPO_ROOT, 'chart');
  const major: HelmMajor = options.helm ?? 4;
  const versions = [...options.kubeVersions];
  const newest = versions[versions.length - 1];
  const skip = new Set(options.skip ?? []);
  const limit = options.concurrency ?? Math.max(2, os.cpus().length);
  const progress = options.progress ?? (() => {});
  if (!fs.existsSync(path.join(chartDir, 'Chart.yaml'))) throw toolError(`no chart at ${displayPath(chartDir)} (Chart.yaml missing)`, 'Run from a checkout of the repository, or pass --chart DIR.');

  // Inputs shared by every cluster: parsed once. Bad --set or --values are usage errors.
  const sets: SetAssignment[] = parseSetFlags(options.sets ?? []);
  const extraLayers: ValuesLayer[] = (options.valuesFiles ?? []).map((f) => loadValuesFile(f));
  const defaultsFile = path.join(chartDir, 'values.yaml');
  const defaults: ValuesLayer = fs.existsSync(defaultsFile) ? loadValuesFile(defaultsFile) : { file: 'values.yaml', values: {}, positions: new Map(), warnings: [] };
  const chartSchema = compileChartSchema(chartDir);
  const kubeScoreConfig = skip.has('kube-score') ? undefined : loadKubeScoreConfig(options.kubeScoreConfig ?? kubeScoreConfigFor(chartDir));

  // Tools and schemas, resolved before any work so a missing tool is one clear error (exit 2).
  const [helmBin, kubeconformBin, kubeScoreBin] = await Promise.all([
    tool(helmToolName(major), progress),
    skip.has('schema') ? Promise.resolve('') : tool('kubeconform', progress),
    skip.has('kube-score') ? Promise.resolve('') : tool('kube-score', progress),
  ]);
  const schemaRoot = options.schemaRoot ?? schemasRoot();
  // apiVersion/kind -> schema hash, per version.
  const schemaShas = new Map<string, Map<string, string>>();
  if (!skip.has('schema')) {
    const generated = await Promise.all(versions.map((v) => ensureSchemas(v, { root: schemaRoot, progress })));
    for (const g of generated) schemaShas.set(g.version, new Map(g.kinds.map((k) => [`${k.apiVersion}/${k.kind}`, k.sha256])));
  }

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-validate-'));
  try {
    // 1. Values: merge and check against the chart schema (fast, in-process).
    const states: ClusterState[] = options.clusters.map((cluster) => {
      const report: ClusterReport = {
        cluster: cluster.name, ok: true, namespace: cluster.namespace, release: cluster.release,
        layers: cluster.layers.map((l) => displayPath(l)), steps: [], warnings: [],
      };
      const state: ClusterState = { cluster, report, helmValues: { files: [] }, valuesOk: false, renders: new Map() };
      const t0 = performance.now();
      try {
        const prepared = prepareClusterValues(cluster, { defaults, extraLayers, valuesFiles: options.valuesFiles ?? [], sets });
        const merged = prepared.merged;
        const layers = prepared.layers;
        state.merged = merged;
        report.warnings.push(...merged.warnings.map((w) => `${formatPos(w.at)}: ${w.path}: ${w.message}`));
        state.helmValues = prepared.helm;
        const clusterFile = displayPath(cluster.layers[cluster.layers.length - 1] ?? cluster.at.file);
        let findings: Finding[] = [];
        if (chartSchema && !chartSchema.validate(merged.values)) findings = schemaFindings(chartSchema.validate.errors ?? [], merged, clusterFile);
        state.valuesOk = findings.length === 0;
        step(report, {
          step: 'values', status: findings.length ? 'failed' : 'ok', ms: performance.now() - t0, findings,
          note: chartSchema ? `${layers.length + 1} layer(s)${sets.length ? ` + ${sets.length} --set` : ''}, schema ${displayPath(chartSchema.file)}` : 'no values.schema.json in the chart',
        });
      } catch (e) {
        if (!isUserError(e) || e.exitCode !== 1) throw e;
        const d = (e.details ?? {}) as { file?: string; line?: number; col?: number };
        step(report, {
          step: 'values', status: 'failed', ms: performance.now() - t0,
          findings: [{ message: e.message, ...(d.file ? { file: d.file, line: d.line, column: d.col, location: d.line ? `${d.file}:${d.line}:${d.col}` : d.file } : {}), hint: e.hint }],
        });
      }
      return state;
    });

    // 2. helm lint and helm template, all clusters and versions in one pool.
    const shared = renderDependsOnKubeVersion(chartDir, versions, [...states.map((s) => JSON.stringify(s.merged?.values ?? {}))]) === false;
    const renderVersions = shared ? [newest] : versions;
    type Task = { state: ClusterState; kind: 'lint' | 'render'; version: string };
    const tasks: Task[] = [];
    for (const s of states) {
      if (!s.valuesOk) {
        if (!skip.has('lint')) step(s.report, { step: 'lint', status: 'skipped', ms: 0, findings: [], note: 'values invalid' });
        continue;
      }
      const lintVersion = s.cluster.kubeVersion && versions.find((v) => minorOf(v) === s.cluster.kubeVersion) ? versions.find((v) => minorOf(v) === s.cluster.kubeVersion)! : newest;
      if (!skip.has('lint')) tasks.push({ state: s, kind: 'lint', version: lintVersion });
      for (const v of renderVersions) tasks.push({ state: s, kind: 'render', version: v });
    }
    const valuesArgs = (s: ClusterState) => [...s.helmValues.files.flatMap((f) => ['--values', f]), ...(s.helmValues.stdin !== undefined ? ['--values', '-'] : [])];
    const results = await mapLimit(tasks, limit, async (t) => {
      const s = t.state;
      const args =
        t.kind === 'lint'
          ? ['lint', chartDir, '--strict', '--namespace', s.cluster.namespace, '--kube-version', kubeVersionArg(t.version), ...valuesArgs(s)]
          : ['template', s.cluster.release, chartDir, '--namespace', s.cluster.namespace, '--kube-version', kubeVersionArg(t.version), ...valuesArgs(s)];
      progress(`${t.kind} ${s.cluster.name} (Kubernetes ${t.version})`);
      const r = await run(helmBin, args, { input: s.helmValues.stdin, timeoutMs: 5 * 60_000 });
      return { t, r };
    });
    for (const { t, r } of results) {
      const s = t.state;
      if (t.kind === 'lint') {
        step(s.report, { step: 'lint', kubeVersion: t.version, status: r.exitCode === 0 ? 'ok' : 'failed', ms: r.ms, findings: r.exitCode === 0 ? [] : helmProblems(r), note: `helm ${major} lint --strict` });
        continue;
      }
      if (r.exitCode !== 0) {
        const failure = templateFailure(r.stderr);
        const message = failure ?? (r.stderr.trim().split('\n').slice(-3).join(' ') || `helm template exited ${r.exitCode}`);
        step(s.report, { step: 'render', kubeVersion: t.version, status: 'failed', ms: r.ms, findings: [{ message, ...locateMessage(message, s.merged) }] });
        continue;
      }
      const dir = path.join(work, String(states.indexOf(s)));
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      const file = path.join(dir, `${t.version}.yaml`);
      fs.writeFileSync(file, r.stdout, { mode: 0o600 });
      options.onRender?.({ cluster: s.cluster.name, kubeVersion: t.version, manifest: r.stdout, values: (s.merged?.values ?? {}) as Record<string, unknown> });
      const count = (r.stdout.match(/^kind:/gm) ?? []).length;
      for (const v of shared ? versions : [t.version]) s.renders.set(v, file);
      step(s.report, { step: 'render', kubeVersion: shared ? versions.map(minorOf).join(',') : t.version, status: 'ok', ms: r.ms, findings: [], note: `${count} object(s)${shared ? '; the chart reads no Kubernetes version, one render serves all' : ''}` });
    }

    // 3. Strict schemas (one kubeconform per version, every cluster at once) and kube-score (per cluster).
    // Strict schemas. An object checked against a schema file with the same hash in an earlier
    // version gives the same result there, so each (object, schema) pair is validated once: the
    // first version gets every object, later versions only the objects whose schema changed.
    // One kubeconform process per version reads every cluster's part at once.
    const schemaJobs: Promise<void>[] = [];
    if (!skip.has('schema')) {
      type DocPlan = { doc: RenderedDoc; validatedIn: Map<string, string> };
      const plans = new Map<string, DocPlan[]>(); // render file -> its documents
      const partFiles = new Map<string, string[]>(); // version -> part files
      const partOf = new Map<string, { render: string; version: string }>();
      for (const render of new Set(states.flatMap((s) => [...s.renders.values()]))) {
        const docs = splitRendered(fs.readFileSync(render, 'utf8'));
        const unique = new Set(docs.map((d) => `${d.key}/${d.name}`)).size === docs.length;
        const plan = docs.map((doc) => ({ doc, validatedIn: new Map<string, string>() }));
        plans.set(render, plan);
        const usedBy = versions.filter((v) => states.some((s) => s.renders.get(v) === render));
        for (const v of usedBy) {
          const needed: string[] = [];
          for (const p of plan) {
            const sha = schemaShas.get(v)!.get(p.doc.key);
            const earlier = unique && sha ? usedBy.slice(0, usedBy.indexOf(v)).find((u) => schemaShas.get(u)!.get(p.doc.key) === sha) : undefined;
            p.validatedIn.set(v, earlier ? p.validatedIn.get(earlier)! : v);
            if (!earlier) needed.push(p.doc.text);
          }
          if (!needed.length) continue;
          const part = `${render}.${v}.part.yaml`;
          fs.writeFileSync(part, needed.join('\n---\n'), { mode: 0o600 });
          partFiles.set(v, [...(partFiles.get(v) ?? []), part]);
          partOf.set(part, { render, version: v });
        }
      }
      // (render, version validated in, kind/name) -> kubeconform's verdict
      const verdicts = new Map<string, KubeconformResource>();
      const batchMs = new Map<string, number>();
      const allow = Object.keys(SCHEMALESS_ALLOWLIST);
      const workers = String(Math.max(1, Math.floor(limit / Math.max(1, partFiles.size))));
      for (const [v, files] of partFiles) {
        schemaJobs.push(
          (async () => {
            const args = ['-strict', '-n', workers, '-kubernetes-version', v, '-schema-location', schemaLocationTemplate(schemaRoot), '-output', 'json', '-verbose', ...(allow.length ? ['-skip', allow.join(',')] : []), ...files];
            progress(`kubeconform: ${files.length} render(s) against Kubernetes ${v}`);
            const r = await run(kubeconformBin, args, { timeoutMs: 5 * 60_000 });
            let parsed: { resources?: KubeconformResource[] };
            try {
              parsed = JSON.parse(r.stdout);
            } catch {
              throw toolError(`kubeconform failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim().slice(0, 500)}`, 'Check the kubeconform installation (npx zx scripts/tools.ts install kubeconform).');
            }
            batchMs.set(v, r.ms);
            for (const res of parsed.resources ?? []) {
              const from = partOf.get(res.filename);
              if (from) verdicts.set(`${from.render}\u0000${from.version}\u0000${res.version}/${res.kind}/${res.name}`, res);
            }
          })(),
        );
      }
      schemaJobs.push(
        Promise.all([...schemaJobs]).then(() => {
          for (const v of versions) {
            for (const s of states) {
              const render = s.renders.get(v);
              if (!render) continue;
              const findings: Finding[] = [];
              let valid = 0;
              let reused = 0;
              const plan = plans.get(render)!;
              for (const p of plan) {
                const at = p.validatedIn.get(v)!;
                if (at !== v) reused++;
                const res = verdicts.get(`${render}\u0000${at}\u0000${p.doc.key}/${p.doc.name}`);
                const object = `${p.doc.key.split('/').pop()}/${p.doc.name}`;
                if (!res) {
                  findings.push({ object, message: `kubeconform reported nothing for ${p.doc.key} ${p.doc.name}`, hint: 'The rendered document could not be read as a Kubernetes object.' });
                  continue;
                }
                if (res.status === 'statusValid' || res.status === 'statusSkipped') {
                  valid++;
                  continue;
                }
                if (res.status === 'statusEmpty') continue;
                if (res.status === 'statusError' && /could not find schema/.test(res.msg)) {
                  findings.push({ object, message: `no schema for ${res.version} ${res.kind} in Kubernetes ${v} or the pinned CRDs`, hint: 'Use an API version this Kubernetes serves, or add the CRD source to scripts/lib/crds.ts (or, with a reason, to SCHEMALESS_ALLOWLIST).' });
                  continue;
                }
                for (const m of kubeconformMessages(res)) findings.push({ object, message: m });
              }
              step(s.report, {
                step: 'schema', kubeVersion: v, status: findings.length ? 'failed' : 'ok', ms: batchMs.get(v) ?? 0, findings,
                note: `${valid}/${plan.length} object(s) valid${reused ? `; ${reused} unchanged schema(s) since an earlier version, checked once` : ''}`,
              });
            }
          }
        }),
      );
    }
    const scoreJobs = skip.has('kube-score')
      ? Promise.resolve([])
      : mapLimit(states.filter((s) => s.renders.has(newest)), limit, async (s) => {
          const file = s.renders.get(newest)!;
          const applicable = kubeScoreConfig!.ignore.filter((i) => !i.environments || i.environments.includes(s.cluster.environment));
          // Checks ignored for every object go to kube-score; object-scoped ones filter its findings.
          const ignored = applicable.filter((i) => !i.objects);
          const scoped = applicable.filter((i) => i.objects).map((i) => ({ check: i.check, patterns: i.objects!.map(globToRegExp) }));
          const args = ['score', '--output-format', 'json', '--kubernetes-version', `v${minorOf(newest)}`, ...ignored.flatMap((i) => ['--ignore-test', i.check]), ...kubeScoreConfig!.enableOptional.flatMap((c) => ['--enable-optional-test', c]), ...kubeScoreConfig!.flags.map((f) => f.flag), file];
          const r = await run(kubeScoreBin, args, { timeoutMs: 2 * 60_000 });
          let objects: KubeScoreObject[];
          try {
            objects = JSON.parse(r.stdout) ?? [];
          } catch {
            throw toolError(`kube-score failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim().slice(0, 500)}`, 'Check the kube-score installation (npx zx scripts/tools.ts install kube-score).');
          }
          const findings: Finding[] = [];
          for (const o of objects) {
            const objectName = `${o.type_meta?.kind ?? '?'}/${o.object_meta?.name ?? o.object_name}`;
            for (const c of o.checks) {
              if (c.skipped || c.grade >= 10) continue;
              if (scoped.some((x) => x.check === c.check.id && x.patterns.some((re) => re.test(objectName)))) continue;
              const comments = c.comments?.length ? c.comments : [{ summary: c.check.name }];
              for (const cm of comments) {
                findings.push({
                  object: objectName,
                  message: `[${c.check.id}] ${cm.path ? cm.path + ': ' : ''}${cm.summary ?? c.check.name}`,
                  hint: cm.description || `Fix it in the chart, or ignore ${c.check.id} in ${displayPath(kubeScoreConfig!.file)} with a reason.`,
                });
              }
            }
          }
          step(s.report, { step: 'kube-score', kubeVersion: newest, status: findings.length ? 'failed' : 'ok', ms: r.ms, findings, note: `${objects.length} object(s), ${applicable.length} ignore(s) from ${displayPath(kubeScoreConfig!.file)}` });
        });
    await Promise.all([...schemaJobs, scoreJobs]);

    const order: StepName[] = ['values', 'lint', 'render', 'schema', 'kube-score'];
    for (const s of states) s.report.steps.sort((a, b) => order.indexOf(a.step) - order.indexOf(b.step) || (a.kubeVersion ?? '').localeCompare(b.kubeVersion ?? '', undefined, { numeric: true }));
    const clusters = states.map((s) => s.report);
    return { ok: clusters.every((c) => c.ok), helm: major, kubeVersions: versions, sharedRender: shared, clusters, ms: performance.now() - started };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
