// Values layers merged the way Helm merges them, with the source position of every key.
//
// Helm reads values files with YAML 1.1 rules (via sigs.k8s.io/yaml): `yes`, `no`, `on`, `off`,
// `y`, `n` are booleans, `0755` is octal, timestamps stay strings. It then merges the user's files
// in order (maps merge, anything else replaces, a null overrides), applies --set on top, and finally
// coalesces the result with the chart's values.yaml, where a null deletes a key the chart defines.
// Every step here follows that order, so what we validate is exactly what the chart will see; the
// positions let an error point at the file, line and column of the layer that set the key last.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode, type Pair } from 'yaml';
import { UserError, usageError } from '../core/errors.ts';
import { cacheRoot, displayPath } from '../core/paths.ts';

export type Values = Record<string, unknown>;
export type PathSegment = string | number;

/** Where a key was set: a file position, or a --set argument (line 0). */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
  /** For --set: the assignment as typed (value masked when it looks secret). */
  arg?: string;
}

export interface ValuesWarning {
  at: SourcePos;
  path: string;
  message: string;
}

export interface ValuesLayer {
  /** Display name: a repository-relative path, or `--set`. */
  file: string;
  values: Values;
  /** Key path (see pathKey) -> position of the key (or list item) in this layer. */
  positions: Map<string, SourcePos>;
  warnings: ValuesWarning[];
}

export interface MergedValues {
  /** What the chart renders with: the chart's defaults coalesced with `user`. */
  values: Values;
  /** The user's values alone (the layers, then --set): what helm stores as a release's values. */
  user: Values;
  /** Key path -> the position of the last layer that set it. */
  sources: Map<string, SourcePos>;
  warnings: ValuesWarning[];
  /** The layers in the order they were applied (chart defaults first). */
  layers: ValuesLayer[];
}

/** A stable string for a key path: segments joined with NUL (keys may contain dots). */
export function pathKey(path: readonly PathSegment[]): string {
  return path.map(String).join('\u0000');
}

/** A key path as a person writes it: `api.env[0].name`, quoting keys that contain dots. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][\w-]*$/.test(seg)) out += (out ? '.' : '') + seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out || '(root)';
}

export function formatPos(p: SourcePos): string {
  return p.line > 0 ? `${p.file}:${p.line}:${p.col}` : p.arg ? `${p.file} ${p.arg}` : p.file;
}

export function isPlainObject(v: unknown): v is Values {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date) && !Buffer.isBuffer(v);
}

// YAML 1.1 words that are booleans to Helm but strings to most readers.
const YAML11_BOOL_WORDS = /^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$/;

// The YAML 1.1 schema of the `yaml` package, less what goyaml.v2 does not do when decoding into an
// untyped map: timestamps stay strings, and there are no base-60 numbers.
function helmTags<T extends { tag: string; format?: string }>(tags: T[]): T[] {
  return tags.filter((t) => t.tag !== 'tag:yaml.org,2002:timestamp' && t.format !== 'TIME');
}

/** Parse one values document. Syntax errors become a UserError naming file, line and column. */
export function parseValuesText(text: string, file: string): ValuesLayer {
  const lc = new LineCounter();
  const doc = parseDocument(text, { version: '1.1', schema: 'yaml-1.1', customTags: helmTags as never, lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const pos = lc.linePos(e.pos[0]);
    throw new UserError(`${file}:${pos.line}:${pos.col}: invalid YAML: ${e.message.split('\n')[0]}`, {
      hint: e.code === 'DUPLICATE_KEY' ? 'Remove one of the two keys: Helm would silently keep only the last.' : 'Fix the YAML syntax at that position (indentation, a missing colon or quote).',
      details: { file, line: pos.line, col: pos.col, code: e.code },
    });
  }
  const js = doc.toJS({ maxAliasCount: 10_000 }) as unknown;
  if (js !== null && js !== undefined && !isPlainObject(js)) {
    throw new UserError(`${file}: a values file must be a map of keys at the top level, not ${Array.isArray(js) ? 'a list' : typeof js}`, { hint: 'Start the file with `key: value` lines.' });
  }
  const layer: ValuesLayer = { file, values: (js as Values) ?? {}, positions: new Map(), warnings: [] };
  const at = (offset: number): SourcePos => {
    const p = lc.linePos(offset);
    return { file, line: p.line, col: p.col };
  };
  walkPositions(doc, doc.contents as YamlNode | null, [], layer, at, new Set());
  return layer;
}

function scalarKey(node: unknown): string {
  if (isScalar(node)) return node.value === null ? 'null' : String(node.value);
  return String(node);
}

function checkBoolWord(node: unknown, path: PathSegment[], layer: ValuesLayer, at: (o: number) => SourcePos, isKey: boolean): void {
  if (!isScalar(node) || node.type !== 'PLAIN' || typeof node.value !== 'boolean' || !node.range || !node.source) return;
  if (!YAML11_BOOL_WORDS.test(node.source)) return;
  const word = node.source;
  layer.warnings.push({
    at: at(node.range[0]),
    path: formatPath(path),
    message: isKey
      ? `the key \`${word}\` is read by Helm as the boolean ${node.value} (YAML 1.1), so it becomes the key "${node.value}"; write "${word}" in quotes`
      : `\`${word}\` is read by Helm as the boolean ${node.value} (YAML 1.1), not the string "${word}"; write ${node.value} if you meant a boolean, or "${word}" in quotes for a string`,
  });
}

function walkPositions(doc: Document, node: YamlNode | null, path: PathSegment[], layer: ValuesLayer, at: (o: number) => SourcePos, seen: Set<unknown>): void {
  if (!node) return;
  if (isAlias(node)) {
    const target = node.resolve(doc);
    if (!target || seen.has(target)) return;
    // Keys reached through an alias are reported at the alias.
    const before = new Set(layer.positions.keys());
    seen.add(target);
    walkPositions(doc, target as YamlNode, path, layer, at, seen);
    seen.delete(target);
    const here = node.range ? at(node.range[0]) : undefined;
    if (here) for (const k of layer.positions.keys()) if (!before.has(k)) layer.positions.set(k, here);
    return;
  }
  if (isMap(node)) {
    const merges: Pair[] = [];
    for (const pair of node.items) {
      if (isScalar(pair.key) && pair.key.value === '<<' && pair.key.type === 'PLAIN') {
        merges.push(pair);
        continue;
      }
      const key = scalarKey(pair.key);
      const child = [...path, key];
      checkBoolWord(pair.key, child, layer, at, true);
      const keyNode = pair.key as YamlNode | null;
      if (keyNode?.range) layer.positions.set(pathKey(child), at(keyNode.range[0]));
      walkPositions(doc, pair.value as YamlNode | null, child, layer, at, seen);
    }
    // `<<: *base` merges keys not set explicitly; report them at the `<<`.
    for (const pair of merges) {
      const mergeKey = (pair.key as YamlNode).range;
      const here = mergeKey ? at(mergeKey[0]) : undefined;
      const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
      for (const s of sources) {
        const target = isAlias(s) ? s.resolve(doc) : s;
        if (!isMap(target)) continue;
        for (const p of target.items) {
          const k = pathKey([...path, scalarKey(p.key)]);
          if (!layer.positions.has(k) && here) {
            const before = new Set(layer.positions.keys());
            layer.positions.set(k, here);
            walkPositions(doc, p.value as YamlNode | null, [...path, scalarKey(p.key)], layer, at, seen);
            for (const kk of layer.positions.keys()) if (!before.has(kk)) layer.positions.set(kk, here);
          }
        }
      }
    }
    return;
  }
  if (isSeq(node)) {
    node.items.forEach((item, i) => {
      const child = [...path, i];
      const n = item as YamlNode | null;
      const range = (n as { range?: [number, number, number] } | null)?.range;
      if (n && range) layer.positions.set(pathKey(child), at(range[0]));
      walkPositions(doc, n, child, layer, at, seen);
    });
    return;
  }
  if (isPair(node)) return;
  checkBoolWord(node, path, layer, at, false);
}

export function loadValuesFile(file: string): ValuesLayer {
  const name = displayPath(file);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${name}: cannot read values file (${code ?? (e as Error).message})`, {
      hint: code === 'ENOENT' ? 'Check the path (layers in values/clusters.yaml are relative to values/).' : undefined,
    });
  }
  if (text.length < CACHE_MIN_BYTES) return parseValuesText(text, name);
  // Parsing a large file with positions (the chart's values.yaml) takes long enough to be worth a
  // cache keyed by name and content.
  const key = createHash('sha256').update(`${LAYER_CACHE_VERSION}\u0000${name}\u0000${text}`).digest('hex').slice(0, 32);
  const cacheFile = path.join(cacheRoot(), 'values-layers', `${key}.json`);
  try {
    const c = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as { file: string; values: Values; positions: [string, SourcePos][]; warnings: ValuesWarning[] };
    return { file: c.file, values: c.values, positions: new Map(c.positions), warnings: c.warnings };
  } catch {
    /* not cached yet */
  }
  const layer = parseValuesText(text, name);
  if (isJsonSafe(layer.values)) {
    try {
      fs.mkdirSync(path.dirname(cacheFile), { recursive: true });
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify({ ...layer, positions: [...layer.positions] }));
      fs.renameSync(tmp, cacheFile);
    } catch {
      /* caching is an optimisation only */
    }
  }
  return layer;
}

const CACHE_MIN_BYTES = 8192;
const LAYER_CACHE_VERSION = 1;

/** Whether a value survives a JSON round trip unchanged (no Buffer, Date, NaN, Infinity). */
function isJsonSafe(v: unknown): boolean {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isFinite(v);
  if (Array.isArray(v)) return v.every(isJsonSafe);
  if (isPlainObject(v)) return Object.values(v).every(isJsonSafe);
  return false;
}

// ---------------------------------------------------------------------------------------------
// --set, with Helm's strvals rules for the common cases: `a.b=c`, several assignments separated by
// commas, `\,` `\.` `\=` escapes, `{x,y}` lists, `a[0]=x` and `a[0].b=x` indexes. Values are typed
// as Helm types them: true/false (any case), null, integers without a leading zero; anything else
// (including 1.5 and 007) stays a string.

export interface SetAssignment {
  path: PathSegment[];
  value: unknown;
  /** The text of this assignment, e.g. `api.replicas=3`. */
  text: string;
  /** Which --set flag it came from (0-based). */
  flag: number;
}

export function typedSetValue(raw: string): unknown {
  if (/^true$/i.test(raw)) return true;
  if (/^false$/i.test(raw)) return false;
  if (/^null$/i.test(raw)) return null;
  if (raw === '0') return 0;
  if (/^[+-]?[1-9]\d*$/.test(raw)) {
    const n = Number(raw);
    // Helm parses int64; beyond JavaScript's safe range keep the digits as they are.
    return Number.isSafeInteger(n) ? n : raw;
  }
  return raw;
}

const MAX_INDEX = 65536;

/** Reads the assignments of one --set flag, left to right; a malformed flag is a usage error naming it. */
class SetFlagReader {
  readonly flag: string;
  /** The position of the next character to read. */
  i = 0;

  constructor(flag: string) {
    this.flag = flag;
  }

  get done(): boolean {
    return this.i >= this.flag.length;
  }

  fail(why: string): never {
    throw usageError(`--set ${JSON.stringify(this.flag)}: ${why}`, 'Use --set key.path=value (several: a=1,b=2; lists: list={x,y} or list[0]=x; a literal comma or dot: \\, \\.).');
  }

  /** The next assignment (`key.path=value`), and the comma after it. */
  assignment(flagIndex: number): SetAssignment {
    const start = this.i;
    const path = this.keyPath();
    const value = this.flag[this.i] === '{' ? this.listValue() : typedSetValue(this.scalarValue());
    const a = { path, value, text: this.flag.slice(start, this.i), flag: flagIndex };
    if (this.flag[this.i] === ',') this.i++;
    return a;
  }

  /** The key path up to and including its `=`: dotted keys, `\\` escapes, `[N]` list indexes. */
  private keyPath(): PathSegment[] {
    const flag = this.flag;
    const start = this.i;
    const path: PathSegment[] = [];
    let seg = '';
    let segOpen = true;
    for (;;) {
      if (this.i >= flag.length) this.fail(`key "${flag.slice(start)}" has no value (expected =)`);
      const ch = flag[this.i];
      if (ch === '\\' && this.i + 1 < flag.length) {
        seg += flag[this.i + 1];
        this.i += 2;
        continue;
      }
      if (ch === '=') {
        if (segOpen) {
          if (!seg) this.fail('empty key');
          path.push(seg);
        }
        this.i++;
        return path;
      }
      if (ch === ',') this.fail(`key "${flag.slice(start, this.i)}" has no value (expected =)`);
      if (ch === '.') {
        if (segOpen) {
          if (!seg) this.fail('empty key segment');
          path.push(seg);
        }
        seg = '';
        segOpen = true;
        this.i++;
        continue;
      }
      if (ch === '[') {
        if (segOpen && seg) path.push(seg);
        if (segOpen && !seg && path.length === 0) this.fail('a key cannot start with an index');
        path.push(this.index());
        seg = '';
        segOpen = false;
        continue;
      }
      seg += ch;
      segOpen = true;
      this.i++;
    }
  }

  /** `[N]` at the current position. */
  private index(): number {
    const close = this.flag.indexOf(']', this.i);
    if (close < 0) this.fail('unclosed [');
    const idx = this.flag.slice(this.i + 1, close);
    if (!/^\d+$/.test(idx)) this.fail(`list index "${idx}" is not a number`);
    if (Number(idx) > MAX_INDEX) this.fail(`list index ${idx} is larger than ${MAX_INDEX}`);
    this.i = close + 1;
    return Number(idx);
  }

  /** `{x,y}`: a list of typed values. */
  private listValue(): unknown[] {
    const flag = this.flag;
    const items: unknown[] = [];
    this.i++;
    let cur = '';
    let closed = false;
    while (this.i < flag.length) {
      const ch = flag[this.i];
      if (ch === '\\' && this.i + 1 < flag.length) {
        cur += flag[this.i + 1];
        this.i += 2;
        continue;
      }
      this.i++;
      if (ch !== ',' && ch !== '}') {
        cur += ch;
        continue;
      }
      if (cur !== '' || ch === ',') items.push(typedSetValue(cur));
      cur = '';
      if (ch === '}') {
        closed = true;
        break;
      }
    }
    if (!closed) this.fail('unclosed { in a list value');
    if (this.i < flag.length && flag[this.i] !== ',') this.fail(`unexpected "${flag[this.i]}" after a list value`);
    return items;
  }

  /** The raw text up to the next unescaped comma. */
  private scalarValue(): string {
    const flag = this.flag;
    let raw = '';
    while (this.i < flag.length && flag[this.i] !== ',') {
      if (flag[this.i] === '\\' && this.i + 1 < flag.length) {
        raw += flag[this.i + 1];
        this.i += 2;
        continue;
      }
      raw += flag[this.i];
      this.i++;
    }
    return raw;
  }
}

export function parseSetFlags(flags: readonly string[]): SetAssignment[] {
  const out: SetAssignment[] = [];
  flags.forEach((flag, flagIndex) => {
    const reader = new SetFlagReader(flag);
    while (!reader.done) out.push(reader.assignment(flagIndex));
  });
  return out;
}

/** Whether a key path names something secret (its value is never shown in messages). */
export function looksSecret(path: readonly PathSegment[]): boolean {
  return path.some((s) => typeof s === 'string' && /(password|secret|token|key|credential)/i.test(s));
}

/** How an assignment is shown in messages: the value hidden when the key looks secret. */
export function setDisplay(a: SetAssignment): string {
  const key = a.text.slice(0, a.text.indexOf('=') + 1);
  return looksSecret(a.path) ? `${key}***` : a.text;
}

/** Apply --set assignments onto (a copy of) the user's merged values, like strvals.ParseInto. */
function applySet(target: Values, a: SetAssignment): void {
  let cur: unknown = target;
  for (let k = 0; k < a.path.length; k++) {
    const seg = a.path[k];
    const last = k === a.path.length - 1;
    const nextIsIndex = !last && typeof a.path[k + 1] === 'number';
    if (typeof seg === 'number') {
      const list = cur as unknown[];
      while (list.length <= seg) list.push(null);
      if (last) list[seg] = a.value;
      else {
        if (nextIsIndex ? !Array.isArray(list[seg]) : !isPlainObject(list[seg])) list[seg] = nextIsIndex ? [] : {};
        cur = list[seg];
      }
    } else {
      const map = cur as Values;
      if (last) map[seg] = a.value;
      else {
        if (nextIsIndex ? !Array.isArray(map[seg]) : !isPlainObject(map[seg])) map[seg] = nextIsIndex ? [] : {};
        cur = map[seg];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------

function deepClone<T>(v: T): T {
  return structuredClone(v);
}

function dropSources(sources: Map<string, SourcePos>, prefix: string): void {
  const p = prefix + '\u0000';
  for (const k of [...sources.keys()]) if (k.startsWith(p)) sources.delete(k);
}

/** Record positions of a layer's value at `path` (and below it) as the current sources. */
function takeSources(sources: Map<string, SourcePos>, layer: ValuesLayer, path: PathSegment[]): void {
  const key = pathKey(path);
  const p = key + '\u0000';
  const own = layer.positions.get(key);
  if (own) sources.set(key, own);
  for (const [k, pos] of layer.positions) if (k.startsWith(p)) sources.set(k, pos);
}

/** Helm's mergeMaps: maps merge recursively, anything else (a list, a scalar, a null) replaces. */
function mergeUser(dst: Values, src: Values, path: PathSegment[], layer: ValuesLayer, sources: Map<string, SourcePos>): void {
  for (const [k, v] of Object.entries(src)) {
    const child = [...path, k];
    const key = pathKey(child);
    if (isPlainObject(v) && isPlainObject(dst[k])) {
      const pos = layer.positions.get(key);
      if (pos) sources.set(key, pos);
      mergeUser(dst[k] as Values, v, child, layer, sources);
    } else {
      dst[k] = deepClone(v);
      dropSources(sources, key);
      takeSources(sources, layer, child);
    }
  }
}

/** Helm's coalesce with the chart's defaults: user values win; a user null deletes a default key. */
function coalesce(user: Values, defaults: Values, path: PathSegment[], defaultsLayer: ValuesLayer, sources: Map<string, SourcePos>): void {
  for (const [k, dv] of Object.entries(defaults)) {
    const child = [...path, k];
    const key = pathKey(child);
    if (!(k in user)) {
      user[k] = deepClone(dv);
      takeSources(sources, defaultsLayer, child);
    } else if (user[k] === null) {
      delete user[k];
      dropSources(sources, key);
      sources.delete(key);
    } else if (isPlainObject(user[k]) && isPlainObject(dv)) {
      coalesce(user[k] as Values, dv, child, defaultsLayer, sources);
    }
  }
}

/**
 * Merge chart defaults, then each layer in order, then --set assignments: the values Helm renders with.
 * `layers` are values files (registry layers, then --values files).
 */
export function mergeValueLayers(defaults: ValuesLayer, layers: readonly ValuesLayer[], sets: readonly SetAssignment[] = []): MergedValues {
  const user: Values = {};
  const sources = new Map<string, SourcePos>();
  for (const layer of layers) mergeUser(user, layer.values, [], layer, sources);
  const setLayer: ValuesLayer = { file: '--set', values: {}, positions: new Map(), warnings: [] };
  for (const a of sets) {
    applySet(user, a);
    const key = pathKey(a.path);
    dropSources(sources, key);
    const pos: SourcePos = { file: '--set', line: 0, col: 0, arg: setDisplay(a) };
    sources.set(key, pos);
    // Parents a --set created are attributed to it too, unless a file set them before.
    for (let k = 1; k < a.path.length; k++) {
      const pk = pathKey(a.path.slice(0, k));
      if (!sources.has(pk)) sources.set(pk, pos);
    }
    if (Array.isArray(a.value)) a.value.forEach((_, i) => sources.set(pathKey([...a.path, i]), pos));
  }
  const values = deepClone(user);
  coalesce(values, defaults.values, [], defaults, sources);
  const all = [defaults, ...layers, ...(sets.length ? [setLayer] : [])];
  return { values, user, sources, warnings: all.flatMap((l) => l.warnings), layers: all };
}

/** The value at a path, or undefined. */
export function getPath(values: unknown, path: readonly PathSegment[]): unknown {
  let cur: unknown = values;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[seg as string];
  }
  return cur;
}

/** The position of the last layer that set `path`, or of its nearest ancestor that has one. */
export function locate(merged: MergedValues, path: readonly PathSegment[]): { pos: SourcePos; exact: boolean } | undefined {
  for (let n = path.length; n > 0; n--) {
    const pos = merged.sources.get(pathKey(path.slice(0, n)));
    if (pos) return { pos, exact: n === path.length };
  }
  return undefined;
}

/**
 * The values document that reproduces the --set assignments when given to Helm after the files
 * (so secrets typed on our command line never reach helm's argv). Lists touched by an index are
 * written whole, as the merge produced them.
 */
export function setsAsValues(sets: readonly SetAssignment[], mergedUser: Values): Values {
  const doc: Values = {};
  for (const a of sets) {
    const firstIndex = a.path.findIndex((s) => typeof s === 'number');
    if (firstIndex < 0) applySet(doc, a);
    else applySet(doc, { ...a, path: a.path.slice(0, firstIndex), value: deepClone(getPath(mergedUser, a.path.slice(0, firstIndex))) });
  }
  return doc;
}

/** The chart's own values.yaml as the first layer (an empty one when the chart has none). */
export function loadChartDefaults(chartDir: string): ValuesLayer {
  const file = path.join(chartDir, 'values.yaml');
  return fs.existsSync(file) ? loadValuesFile(file) : { file: 'values.yaml', values: {}, positions: new Map(), warnings: [] };
}

/** One run's values: merged once, then validated, diffed, stored and handed to helm from here. */
export interface PreparedValues {
  /** The values Helm will render with, the user's alone, and where each key came from. */
  merged: MergedValues;
  /** The values files (layers, then --values files), parsed. */
  layers: ValuesLayer[];
  sets: SetAssignment[];
  /** The --set assignments as one values document: helm reads it on stdin, after the files (never in argv). */
  overrides: Values;
  /** What to hand helm: --values files in order, then (when --set was used) the overrides document on stdin. */
  helm: { files: string[]; stdin?: string };
}

/**
 * Merge the chart's defaults, the values files in order (`layers`: the same files, already parsed)
 * and the --set assignments, as Helm will. Throws a UserError (exit 1) naming file, line and column
 * for an unreadable or malformed file.
 */
export function prepareValues(defaults: ValuesLayer, files: readonly string[], sets: readonly SetAssignment[], layers: readonly ValuesLayer[] = files.map((f) => loadValuesFile(f))): PreparedValues {
  const merged = mergeValueLayers(defaults, layers, sets);
  const overrides = setsAsValues(sets, merged.user);
  // JSON, not YAML: helm reads values as YAML 1.1, where an unquoted string such as y, on or no would
  // turn into a boolean; JSON strings are always quoted.
  const stdin = sets.length ? JSON.stringify(overrides, null, 2) + '\n' : undefined;
  return { merged, layers: [...layers], sets: [...sets], overrides, helm: { files: files.map((f) => path.resolve(f)), stdin } };
}
