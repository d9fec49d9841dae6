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
import { parse as parseYaml } from 'yaml';
import { cachedValidator } from '../core/ajvcache.ts';
import { isUserError, toolError, UserError } from '../core/errors.ts';
import { mapLimit, run, type RunResult } from '../core/exec.ts';
import { Helm, templateFailure, helmToolName, type HelmMajor } from '../adapters/helm.ts';
import { ensureSchemas, minorOf, schemaLocationTemplate, schemasRoot } from '../adapters/kubeschemas.ts';
import { chartKubeRange, satisfiesConstraint, type ChartKubeRange } from './validate-range.ts';
import { displayPath, REPO_ROOT } from '../core/paths.ts';
import { tool } from '../adapters/tools.ts';
import type { ClusterConfig } from '../domain/clusters.ts';
import {
  formatPath,
  formatPos,
  getPath,
  isPlainObject,
  loadChartDefaults,
  loadValuesFile,
  locate,
  looksSecret,
  parseSetFlags,
  pathKey,
  prepareValues,
  type MergedValues,
  type PathSegment,
  type PreparedValues,
  type SetAssignment,
  type SourcePos,
  type ValuesLayer,
} from '../domain/values.ts';

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
  /** The cluster's Kubernetes minor: as values/clusters.yaml declares it, else the newest validated. */
  kubeMinor: string;
  kubeMinorFrom: 'registry' | 'newest';
  /** The full version the cluster's minor was validated against; null when this run left that minor out. */
  kubeVersion: string | null;
  layers: string[];
  steps: StepResult[];
  warnings: string[];
}

export interface ValidationReport {
  ok: boolean;
  helm: HelmMajor;
  kubeVersions: string[];
  /** The same, as minors (`1.33`). */
  kubeMinors: string[];
  /** Chart.yaml's kubeVersion constraint and the oldest minor it admits (null: the chart sets none). */
  chartKubeVersion: string | null;
  floorMinor: string | null;
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
  /**
   * Values already merged, by cluster name: deploy.ts merges once and validates exactly what it
   * deploys. Other clusters' values are merged here from their layers, valuesFiles and sets.
   */
  prepared?: Record<string, PreparedValues>;
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
  for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
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

/** What one Ajv error says: the key it is about, the message, the hint, and where that key was set. */
interface SchemaErrorReading {
  path: PathSegment[];
  message: string;
  hint?: string;
  pos?: SourcePos;
}

interface SchemaErrorContext {
  errors: ErrorObject[];
  merged: MergedValues;
  clusterFile: string;
  /** A branch of an anyOf/oneOf: folded into the anyOf/oneOf finding. */
  isBranch: (e: ErrorObject) => boolean;
}

type ParentSchema = { description?: string; properties?: Record<string, unknown>; enum?: unknown[] } | undefined;

function unknownKey(e: ErrorObject, at: PathSegment[], parent: ParentSchema, merged: MergedValues): SchemaErrorReading {
  const extra = (e.params as { additionalProperty: string }).additionalProperty;
  const p = [...at, extra];
  const known = Object.keys(parent?.properties ?? {});
  const guess = closest(extra, known);
  const hint = (guess ? `Did you mean "${guess}"? ` : '') + (known.length ? `Keys allowed under ${formatPath(at)}: ${known.join(', ')}.` : `${formatPath(at)} takes no keys.`);
  return { path: p, message: `unknown key "${extra}"`, hint, pos: locate(merged, p)?.pos };
}

function missingKey(e: ErrorObject, at: PathSegment[], desc: string | undefined, c: SchemaErrorContext): SchemaErrorReading {
  const missing = (e.params as { missingProperty: string }).missingProperty;
  const pos = layerForMissing(c.merged, at, c.clusterFile);
  const p = [...at, missing];
  const where = pos.file === '--set' ? `Set ${formatPath(p)} (a --set removed it, or add it to ${c.clusterFile})` : `Add ${formatPath(p)} to ${pos.file}`;
  return { path: p, message: `required key "${missing}" is missing`, hint: `${where}${desc ? ` (${desc})` : ''}.`, pos };
}

function wrongType(e: ErrorObject, p: PathSegment[], desc: string | undefined, merged: MergedValues): SchemaErrorReading {
  const want = (e.params as { type: string }).type;
  const got = getPath(merged.values, p);
  const pos = locate(merged, p)?.pos;
  const bool = merged.warnings.find((w) => pos && w.at.file === pos.file && w.at.line === pos.line);
  let hint = bool ? `The value is a YAML 1.1 boolean word; quote it.` : desc;
  if (!hint && want === 'string' && typeof got === 'number' && !looksSecret(p)) hint = `Quote the value ("${got}") to keep it a string.`;
  return { path: p, message: `must be ${want}, got ${describe(got, p)}`, hint, pos };
}

/** not / anyOf / oneOf / const / false schema: the schema's own description, and what its branches accept. */
function combinatorError(e: ErrorObject, p: PathSegment[], desc: string | undefined, c: SchemaErrorContext): SchemaErrorReading {
  const branches = c.errors.filter((b) => b !== e && c.isBranch(b) && b.schemaPath.startsWith(e.schemaPath + '/'));
  const subDesc = (e.schema as { description?: string } | undefined)?.description;
  const hint = branches.length ? `Accepted: ${[...new Set(branches.map((b) => b.message))].join('; or ')}.` : subDesc && desc ? desc : undefined;
  return { path: p, message: subDesc ?? desc ?? e.message ?? 'is invalid', hint, pos: locate(c.merged, p)?.pos };
}

function readSchemaError(e: ErrorObject, c: SchemaErrorContext): SchemaErrorReading {
  const p = instancePath(e);
  const parent = e.parentSchema as ParentSchema;
  const desc = parent?.description;
  const value = () => describe(getPath(c.merged.values, p), p);
  switch (e.keyword) {
    case 'additionalProperties':
      return unknownKey(e, p, parent, c.merged);
    case 'required':
      return missingKey(e, p, desc, c);
    case 'type':
      return wrongType(e, p, desc, c.merged);
    case 'enum': {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues;
      return { path: p, message: `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${value()}`, hint: desc, pos: locate(c.merged, p)?.pos };
    }
    case 'pattern':
    case 'format': {
      const hint = desc ?? (e.keyword === 'format' ? `Use a valid ${(e.params as { format: string }).format}.` : undefined);
      return { path: p, message: `${value()} ${e.message}`, hint, pos: locate(c.merged, p)?.pos };
    }
    case 'not':
    case 'anyOf':
    case 'oneOf':
    case 'const':
    case 'false schema':
      return combinatorError(e, p, desc, c);
    default:
      return { path: p, message: e.message ?? 'is invalid', hint: desc, pos: locate(c.merged, p)?.pos };
  }
}

/** Ajv errors -> findings that name the key, the layer that set it, and what to do. */
export function schemaFindings(errors: ErrorObject[], merged: MergedValues, clusterFile: string): Finding[] {
  // Summaries that repeat their branches (if/then) are dropped; branches of anyOf/oneOf are folded
  // into the anyOf/oneOf finding.
  const combinators = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  const isBranch = (e: ErrorObject) => combinators.some((c) => c !== e && e.schemaPath.startsWith(c.schemaPath + '/') && e.instancePath.startsWith(c.instancePath));
  const context: SchemaErrorContext = { errors, merged, clusterFile, isBranch };
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (e.keyword === 'if' || isBranch(e)) continue;
    const r = readSchemaError(e, context);
    const f: Finding = { message: r.message, key: formatPath(r.path), ...findingAt(r.pos), ...(r.hint ? { hint: r.hint } : {}) };
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
  const { constraint } = chartKubeRange(chartDir);
  if (constraint !== null) {
    for (const v of versions) if (satisfiesConstraint(v, constraint) !== true) return true;
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
  return new RegExp(
    '^' +
      glob
        .split('*')
        .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*') +
      '$',
  );
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
    const lead = /^[ \t]*/.exec(line)?.[0] ?? '';
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
  /** The merged values and what to hand helm; absent when a values file could not be read. */
  values?: PreparedValues;
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

/** A successful render and the merged values it came from. */
export interface ClusterRender {
  cluster: string;
  kubeVersion: string;
  manifest: string;
  values: Record<string, unknown>;
}

/** A validation under way: the renders are known before the schema checks end. */
export interface StagedValidation {
  renders: ClusterRender[];
  /** The report, once every check is done. */
  report: Promise<ValidationReport>;
}

/** Inputs every cluster's values share: parsed once. */
interface SharedValueInputs {
  defaults: ValuesLayer;
  extraLayers: ValuesLayer[];
  sets: SetAssignment[];
}

/** One validation run: its settings, tools and the inputs every cluster shares. */
interface ValidationRun {
  options: ValidateOptions;
  started: number;
  chartDir: string;
  helm: Helm;
  versions: string[];
  newest: string;
  kubeRange: ChartKubeRange;
  skip: Set<StepName>;
  limit: number;
  progress: (note: string) => void;
  chartSchema?: ChartSchema;
  /** Undefined when every cluster's values came merged (options.prepared). */
  shared?: SharedValueInputs;
  kubeconform?: { bin: string; schemaRoot: string; /** version -> apiVersion/kind -> schema hash */ shas: Map<string, Map<string, string>> };
  kubeScore?: { bin: string; config: KubeScoreConfig };
  /** Private directory of the renders (0700, removed at the end). */
  work: string;
}

/**
 * Settings, shared inputs, tools and schemas, resolved before any work: a bad --set or --values is an
 * error of its own, and a missing tool one clear error (exit 2).
 */
async function openValidation(options: ValidateOptions): Promise<ValidationRun> {
  const started = performance.now();
  const chartDir = options.chartDir ?? path.join(REPO_ROOT, 'chart');
  const major: HelmMajor = options.helm ?? 4;
  const skip = new Set(options.skip ?? []);
  const progress = options.progress ?? (() => {});
  if (!fs.existsSync(path.join(chartDir, 'Chart.yaml'))) throw toolError(`no chart at ${displayPath(chartDir)} (Chart.yaml missing)`, 'Run from a checkout of the repository, or pass --chart DIR.');
  // Bad --set or --values are errors of the run, not findings of a cluster.
  const merging = options.clusters.some((c) => !options.prepared?.[c.name]);
  const shared = merging ? { sets: parseSetFlags(options.sets ?? []), extraLayers: (options.valuesFiles ?? []).map((f) => loadValuesFile(f)), defaults: loadChartDefaults(chartDir) } : undefined;
  const chartSchema = compileChartSchema(chartDir);
  const kubeScoreConfig = skip.has('kube-score') ? undefined : loadKubeScoreConfig(options.kubeScoreConfig ?? kubeScoreConfigFor(chartDir));
  const [helmBin, kubeconformBin, kubeScoreBin] = await Promise.all([
    tool(helmToolName(major), progress),
    skip.has('schema') ? Promise.resolve('') : tool('kubeconform', progress),
    skip.has('kube-score') ? Promise.resolve('') : tool('kube-score', progress),
  ]);
  const versions = [...options.kubeVersions];
  const schemaRoot = options.schemaRoot ?? schemasRoot();
  const kubeconform = skip.has('schema') ? undefined : { bin: kubeconformBin, schemaRoot, shas: await schemaHashes(versions, schemaRoot, progress) };
  return {
    options,
    started,
    chartDir,
    helm: new Helm(helmBin, major),
    versions,
    newest: versions[versions.length - 1],
    kubeRange: chartKubeRange(chartDir),
    skip,
    limit: options.concurrency ?? Math.max(2, os.cpus().length),
    progress,
    chartSchema,
    shared,
    kubeconform,
    kubeScore: kubeScoreConfig ? { bin: kubeScoreBin, config: kubeScoreConfig } : undefined,
    work: fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-validate-')),
  };
}

/** The offline schemas of every version (generated once, cached), and the hash of each kind's schema. */
async function schemaHashes(versions: string[], root: string, progress: (note: string) => void): Promise<Map<string, Map<string, string>>> {
  const generated = await Promise.all(versions.map((v) => ensureSchemas(v, { root, progress })));
  return new Map(generated.map((g) => [g.version, new Map(g.kinds.map((k) => [`${k.apiVersion}/${k.kind}`, k.sha256]))]));
}

/** A cluster's values as Helm will see them: handed over merged, or merged here from its layers. */
function clusterValues(v: ValidationRun, cluster: ClusterConfig): PreparedValues {
  const given = v.options.prepared?.[cluster.name];
  if (given) return given;
  const shared = v.shared;
  if (!shared) throw new Error(`internal: no merged values for cluster ${cluster.name}`);
  const files = [...cluster.layers, ...(v.options.valuesFiles ?? [])];
  return prepareValues(shared.defaults, files, shared.sets, [...cluster.layers.map((l) => loadValuesFile(l)), ...shared.extraLayers]);
}

/** Step 1, values: merged like Helm, checked against the chart's schema (fast, in-process). */
function checkValues(v: ValidationRun, cluster: ClusterConfig): ClusterState {
  const kubeMinor = cluster.kubeVersion ?? minorOf(v.newest);
  const report: ClusterReport = {
    cluster: cluster.name,
    ok: true,
    namespace: cluster.namespace,
    release: cluster.release,
    kubeMinor,
    kubeMinorFrom: cluster.kubeVersion ? 'registry' : 'newest',
    kubeVersion: v.versions.find((x) => minorOf(x) === kubeMinor) ?? null,
    layers: cluster.layers.map((l) => displayPath(l)),
    steps: [],
    warnings: [],
  };
  const state: ClusterState = { cluster, report, valuesOk: false, renders: new Map() };
  const t0 = performance.now();
  try {
    const values = clusterValues(v, cluster);
    const merged = values.merged;
    state.values = values;
    report.warnings.push(...merged.warnings.map((w) => `${formatPos(w.at)}: ${w.path}: ${w.message}`));
    const clusterFile = displayPath(cluster.layers[cluster.layers.length - 1] ?? cluster.at.file);
    const schema = v.chartSchema;
    const findings = schema && !schema.validate(merged.values) ? schemaFindings(schema.validate.errors ?? [], merged, clusterFile) : [];
    state.valuesOk = findings.length === 0;
    step(report, {
      step: 'values',
      status: findings.length ? 'failed' : 'ok',
      ms: performance.now() - t0,
      findings,
      note: schema ? `${values.layers.length + 1} layer(s)${values.sets.length ? ` + ${values.sets.length} --set` : ''}, schema ${displayPath(schema.file)}` : 'no values.schema.json in the chart',
    });
  } catch (e) {
    if (!isUserError(e) || e.exitCode !== 1) throw e;
    const d = (e.details ?? {}) as { file?: string; line?: number; col?: number };
    step(report, {
      step: 'values',
      status: 'failed',
      ms: performance.now() - t0,
      findings: [{ message: e.message, ...(d.file ? { file: d.file, line: d.line, column: d.col, location: d.line ? `${d.file}:${d.line}:${d.col}` : d.file } : {}), hint: e.hint }],
    });
  }
  return state;
}

type HelmTask = { state: ClusterState; kind: 'lint' | 'render'; version: string };

/** helm lint (at the cluster's own version, else the newest) and helm template per version, of the clusters whose values are valid. */
function helmTasks(v: ValidationRun, states: ClusterState[], renderVersions: string[]): HelmTask[] {
  const tasks: HelmTask[] = [];
  for (const s of states) {
    if (!s.valuesOk) {
      if (!v.skip.has('lint')) step(s.report, { step: 'lint', status: 'skipped', ms: 0, findings: [], note: 'values invalid' });
      continue;
    }
    const lintVersion = s.report.kubeVersion ?? v.newest;
    if (!v.skip.has('lint')) tasks.push({ state: s, kind: 'lint', version: lintVersion });
    for (const x of renderVersions) tasks.push({ state: s, kind: 'render', version: x });
  }
  return tasks;
}

function runHelmTask(v: ValidationRun, t: HelmTask): Promise<RunResult> {
  const s = t.state;
  const values = { valuesFiles: s.values?.helm.files ?? [], stdinValues: s.values?.helm.stdin !== undefined };
  const where = { chart: v.chartDir, namespace: s.cluster.namespace, kubeVersion: t.version, ...values };
  const args = t.kind === 'lint' ? v.helm.lintArgs(where) : v.helm.templateArgs({ ...where, release: s.cluster.release });
  v.progress(`${t.kind} ${s.cluster.name} (Kubernetes ${t.version})`);
  return v.helm.run(args, { input: s.values?.helm.stdin, timeoutMs: 5 * 60_000 });
}

/** A render's outcome as the cluster's render step; a successful render is kept in a private file and returned. */
function recordRender(v: ValidationRun, t: HelmTask, r: RunResult, index: number, shared: boolean): ClusterRender | undefined {
  const s = t.state;
  if (r.exitCode !== 0) {
    const failure = templateFailure(r.stderr);
    const message = failure ?? (r.stderr.trim().split('\n').slice(-3).join(' ') || `helm template exited ${r.exitCode}`);
    step(s.report, { step: 'render', kubeVersion: t.version, status: 'failed', ms: r.ms, findings: [{ message, ...locateMessage(message, s.values?.merged) }] });
    return undefined;
  }
  const dir = path.join(v.work, String(index));
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `${t.version}.yaml`);
  fs.writeFileSync(file, r.stdout, { mode: 0o600 });
  const count = (r.stdout.match(/^kind:/gm) ?? []).length;
  for (const x of shared ? v.versions : [t.version]) s.renders.set(x, file);
  step(s.report, {
    step: 'render',
    kubeVersion: shared ? v.versions.map(minorOf).join(',') : t.version,
    status: 'ok',
    ms: r.ms,
    findings: [],
    note: `${count} object(s)${shared ? '; the chart reads no Kubernetes version, one render serves all' : ''}`,
  });
  return { cluster: s.cluster.name, kubeVersion: t.version, manifest: r.stdout, values: (s.values?.merged.values ?? {}) as Record<string, unknown> };
}

/** Step 2: helm lint and helm template, all clusters and versions in one pool. */
async function lintAndRender(v: ValidationRun, states: ClusterState[]): Promise<{ shared: boolean; renders: ClusterRender[] }> {
  const shared =
    renderDependsOnKubeVersion(
      v.chartDir,
      v.versions,
      states.map((s) => JSON.stringify(s.values?.merged.values ?? {})),
    ) === false;
  const tasks = helmTasks(v, states, shared ? [v.newest] : v.versions);
  const results = await mapLimit(tasks, v.limit, async (t) => ({ t, r: await runHelmTask(v, t) }));
  const renders: ClusterRender[] = [];
  for (const { t, r } of results) {
    if (t.kind === 'lint') {
      step(t.state.report, {
        step: 'lint',
        kubeVersion: t.version,
        status: r.exitCode === 0 ? 'ok' : 'failed',
        ms: r.ms,
        findings: r.exitCode === 0 ? [] : helmProblems(r),
        note: `helm ${v.helm.major} lint --strict`,
      });
      continue;
    }
    const rendered = recordRender(v, t, r, states.indexOf(t.state), shared);
    if (rendered) renders.push(rendered);
  }
  return { shared, renders };
}

/** A rendered document and, per version, the version whose kubeconform run validated it. */
type DocPlan = { doc: RenderedDoc; validatedIn: Map<string, string> };

interface SchemaParts {
  /** render file -> its documents */
  plans: Map<string, DocPlan[]>;
  /** version -> the part files kubeconform reads for it */
  partFiles: Map<string, string[]>;
  partOf: Map<string, { render: string; version: string }>;
}

/**
 * An object checked against a schema file with the same hash in an earlier version gives the same
 * result there, so each (object, schema) pair is validated once: the first version gets every object,
 * later versions only the objects whose schema changed. Writes the part files of each version.
 */
function planSchemaParts(v: ValidationRun, states: ClusterState[], shas: Map<string, Map<string, string>>): SchemaParts {
  const parts: SchemaParts = { plans: new Map(), partFiles: new Map(), partOf: new Map() };
  for (const render of new Set(states.flatMap((s) => [...s.renders.values()]))) {
    const docs = splitRendered(fs.readFileSync(render, 'utf8'));
    const unique = new Set(docs.map((d) => `${d.key}/${d.name}`)).size === docs.length;
    const plan = docs.map((doc) => ({ doc, validatedIn: new Map<string, string>() }));
    parts.plans.set(render, plan);
    const usedBy = v.versions.filter((x) => states.some((s) => s.renders.get(x) === render));
    for (const ver of usedBy) {
      const needed: string[] = [];
      for (const p of plan) {
        const sha = shas.get(ver)?.get(p.doc.key);
        const earlier = unique && sha ? usedBy.slice(0, usedBy.indexOf(ver)).find((u) => shas.get(u)?.get(p.doc.key) === sha) : undefined;
        p.validatedIn.set(ver, (earlier && p.validatedIn.get(earlier)) || ver);
        if (!earlier) needed.push(p.doc.text);
      }
      if (!needed.length) continue;
      const part = `${render}.${ver}.part.yaml`;
      fs.writeFileSync(part, needed.join('\n---\n'), { mode: 0o600 });
      parts.partFiles.set(ver, [...(parts.partFiles.get(ver) ?? []), part]);
      parts.partOf.set(part, { render, version: ver });
    }
  }
  return parts;
}

/** One kubeconform process for one version, reading every cluster's part at once; its verdicts keyed (render, version, apiVersion/kind/name). */
async function runKubeconform(
  v: ValidationRun,
  bin: string,
  schemaRoot: string,
  version: string,
  files: string[],
  parts: SchemaParts,
): Promise<{ ms: number; verdicts: [string, KubeconformResource][] }> {
  const allow = Object.keys(SCHEMALESS_ALLOWLIST);
  const workers = String(Math.max(1, Math.floor(v.limit / Math.max(1, parts.partFiles.size))));
  const args = [
    '-strict',
    '-n',
    workers,
    '-kubernetes-version',
    version,
    '-schema-location',
    schemaLocationTemplate(schemaRoot),
    '-output',
    'json',
    '-verbose',
    ...(allow.length ? ['-skip', allow.join(',')] : []),
    ...files,
  ];
  v.progress(`kubeconform: ${files.length} render(s) against Kubernetes ${version}`);
  const r = await run(bin, args, { timeoutMs: 5 * 60_000 });
  let parsed: { resources?: KubeconformResource[] };
  try {
    parsed = JSON.parse(r.stdout);
  } catch {
    throw toolError(`kubeconform failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim().slice(0, 500)}`, 'Check the kubeconform installation (npx zx scripts/tools.ts install kubeconform).');
  }
  const verdicts: [string, KubeconformResource][] = [];
  for (const res of parsed.resources ?? []) {
    const from = parts.partOf.get(res.filename);
    if (from) verdicts.push([`${from.render}\u0000${from.version}\u0000${res.version}/${res.kind}/${res.name}`, res]);
  }
  return { ms: r.ms, verdicts };
}

/** kubeconform's verdict on one object as findings (none when valid); `valid` when it counts as valid. */
function schemaVerdict(p: DocPlan, res: KubeconformResource | undefined, version: string): { valid: boolean; findings: Finding[] } {
  const object = `${p.doc.key.split('/').pop()}/${p.doc.name}`;
  if (!res)
    return { valid: false, findings: [{ object, message: `kubeconform reported nothing for ${p.doc.key} ${p.doc.name}`, hint: 'The rendered document could not be read as a Kubernetes object.' }] };
  if (res.status === 'statusValid' || res.status === 'statusSkipped') return { valid: true, findings: [] };
  if (res.status === 'statusEmpty') return { valid: false, findings: [] };
  if (res.status === 'statusError' && /could not find schema/.test(res.msg)) {
    return {
      valid: false,
      findings: [
        {
          object,
          message: `no schema for ${res.version} ${res.kind} in Kubernetes ${version} or the pinned CRDs`,
          hint: 'Use an API version this Kubernetes serves, or add the CRD source to scripts/lib/adapters/crds.ts (or, with a reason, to SCHEMALESS_ALLOWLIST).',
        },
      ],
    };
  }
  return { valid: false, findings: kubeconformMessages(res).map((m) => ({ object, message: m })) };
}

/** Step 3a, strict schemas: one kubeconform per version over every cluster's render, then a schema step per cluster and version. */
async function checkSchemas(v: ValidationRun, states: ClusterState[]): Promise<void> {
  const kc = v.kubeconform;
  if (!kc) return;
  const parts = planSchemaParts(v, states, kc.shas);
  const runs = await Promise.all([...parts.partFiles].map(async ([ver, files]) => ({ ver, ...(await runKubeconform(v, kc.bin, kc.schemaRoot, ver, files, parts)) })));
  const verdicts = new Map(runs.flatMap((r) => r.verdicts));
  const batchMs = new Map(runs.map((r) => [r.ver, r.ms]));
  for (const ver of v.versions) {
    for (const s of states) {
      const render = s.renders.get(ver);
      const plan = render === undefined ? undefined : parts.plans.get(render);
      if (!plan) continue;
      const findings: Finding[] = [];
      let valid = 0;
      let reused = 0;
      for (const p of plan) {
        const at = p.validatedIn.get(ver) ?? ver;
        if (at !== ver) reused++;
        const verdict = schemaVerdict(p, verdicts.get(`${render}\u0000${at}\u0000${p.doc.key}/${p.doc.name}`), ver);
        if (verdict.valid) valid++;
        findings.push(...verdict.findings);
      }
      step(s.report, {
        step: 'schema',
        kubeVersion: ver,
        status: findings.length ? 'failed' : 'ok',
        ms: batchMs.get(ver) ?? 0,
        findings,
        note: `${valid}/${plan.length} object(s) valid${reused ? `; ${reused} unchanged schema(s) since an earlier version, checked once` : ''}`,
      });
    }
  }
}

/** Step 3b, kube-score of one cluster's render for the newest version, less the ignored checks (each with its reason). */
async function scoreCluster(v: ValidationRun, ks: NonNullable<ValidationRun['kubeScore']>, s: ClusterState, file: string): Promise<void> {
  const applicable = ks.config.ignore.filter((i) => !i.environments || i.environments.includes(s.cluster.environment));
  // Checks ignored for every object go to kube-score; object-scoped ones filter its findings.
  const ignored = applicable.filter((i) => !i.objects);
  const scoped = applicable.flatMap((i) => (i.objects ? [{ check: i.check, patterns: i.objects.map(globToRegExp) }] : []));
  const args = [
    'score',
    '--output-format',
    'json',
    '--kubernetes-version',
    `v${minorOf(v.newest)}`,
    ...ignored.flatMap((i) => ['--ignore-test', i.check]),
    ...ks.config.enableOptional.flatMap((c) => ['--enable-optional-test', c]),
    ...ks.config.flags.map((f) => f.flag),
    file,
  ];
  const r = await run(ks.bin, args, { timeoutMs: 2 * 60_000 });
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
          hint: cm.description || `Fix it in the chart, or ignore ${c.check.id} in ${displayPath(ks.config.file)} with a reason.`,
        });
      }
    }
  }
  step(s.report, {
    step: 'kube-score',
    kubeVersion: v.newest,
    status: findings.length ? 'failed' : 'ok',
    ms: r.ms,
    findings,
    note: `${objects.length} object(s), ${applicable.length} ignore(s) from ${displayPath(ks.config.file)}`,
  });
}

async function scoreClusters(v: ValidationRun, states: ClusterState[]): Promise<void> {
  const ks = v.kubeScore;
  if (!ks) return;
  const scored = states.flatMap((s) => {
    const file = s.renders.get(v.newest);
    return file ? [{ s, file }] : [];
  });
  await mapLimit(scored, v.limit, ({ s, file }) => scoreCluster(v, ks, s, file));
}

/** Step 3 (schemas and kube-score, at once), then the report with each cluster's steps in order. */
async function checkRenders(v: ValidationRun, states: ClusterState[], shared: boolean): Promise<ValidationReport> {
  await Promise.all([checkSchemas(v, states), scoreClusters(v, states)]);
  const order: StepName[] = ['values', 'lint', 'render', 'schema', 'kube-score'];
  for (const s of states) s.report.steps.sort((a, b) => order.indexOf(a.step) - order.indexOf(b.step) || (a.kubeVersion ?? '').localeCompare(b.kubeVersion ?? '', undefined, { numeric: true }));
  const clusters = states.map((s) => s.report);
  return {
    ok: clusters.every((c) => c.ok),
    helm: v.helm.major,
    kubeVersions: v.versions,
    kubeMinors: v.versions.map(minorOf),
    chartKubeVersion: v.kubeRange.constraint,
    floorMinor: v.kubeRange.floorMinor,
    sharedRender: shared,
    clusters,
    ms: performance.now() - v.started,
  };
}

/**
 * Validate the clusters, handing back the renders as soon as they exist (the deploy asks the image
 * registries meanwhile) and the report once every check is done. Throws a UserError with exit code 2
 * when a tool cannot run; findings in the input are in the report (ok: false).
 */
export async function startValidation(options: ValidateOptions): Promise<StagedValidation> {
  const v = await openValidation(options);
  const cleanUp = () => fs.rmSync(v.work, { recursive: true, force: true });
  try {
    const states = options.clusters.map((cluster) => checkValues(v, cluster));
    const { shared, renders } = await lintAndRender(v, states);
    return { renders, report: checkRenders(v, states, shared).finally(cleanUp) };
  } catch (e) {
    cleanUp();
    throw e;
  }
}

/** Validate the clusters (see startValidation). */
export async function validateClusters(options: ValidateOptions): Promise<ValidationReport> {
  return (await startValidation(options)).report;
}
