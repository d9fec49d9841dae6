// Strict JSON schemas for every Kubernetes kind (and the CRDs the chart targets), generated offline
// from the official OpenAPI document of a Kubernetes release, in the layout kubeconform reads:
//   <cacheRoot>/kube-schemas/v<X.Y.Z>-standalone-strict/<kind>-<group>-<version>.json
// (group = first label of the API group, or nothing for the core group: `deployment-apps-v1.json`,
// `service-v1.json`, `servicemonitor-monitoring-v1.json`).
//
// Each file stands alone: every $ref of the OpenAPI document is resolved into the file's own
// `definitions` (object types; small scalar types are inlined), so kubeconform needs no network and
// no shared file. Strict means: every object schema that lists properties rejects any other key
// (additionalProperties: false), except where Kubernetes itself keeps unknown fields
// (x-kubernetes-preserve-unknown-fields). Optional fields accept null, as the API server does.
// Custom resources get the Kubernetes ObjectMeta of the same release for their metadata, so a typo
// in `metadata.labels` of a ServiceMonitor is caught as surely as in a Deployment.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { toolError, usageError } from '../core/errors.ts';
import { allCrdFiles, CRD_SOURCES, moduleDir } from './crds.ts';
import { cacheRoot } from '../core/paths.ts';

/**
 * The Kubernetes minors we validate against, oldest first, each at the newest patch the Go module
 * proxy serves. They run from the floor of chart/Chart.yaml's kubeVersion to the newest release
 * (validate.ts refuses a floor below the oldest entry), and every cluster's declared minor must be here.
 */
export const KUBE_VERSIONS: Readonly<Record<string, string>> = {
  '1.30': '1.30.14',
  '1.31': '1.31.14',
  '1.32': '1.32.13',
  '1.33': '1.33.13',
  '1.34': '1.34.4',
  '1.35': '1.35.4',
  '1.36': '1.36.3',
  '1.37': '1.37.2',
};

/** Bump when the generated output changes, so caches are rebuilt. */
export const GENERATOR_VERSION = 4;

export type JsonSchema = Record<string, unknown>;

/** `1.36` or `v1.36` or `1.36.3` -> the full patch version we generate schemas for. */
export function resolveKubeVersion(v: string): string {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?$/.exec(v.trim());
  if (!m) throw usageError(`invalid Kubernetes version "${v}"`, `Use MAJOR.MINOR, one of ${Object.keys(KUBE_VERSIONS).join(', ')}.`);
  if (m[3] !== undefined) return `${m[1]}.${m[2]}.${m[3]}`;
  const full = KUBE_VERSIONS[`${m[1]}.${m[2]}`];
  if (!full) throw usageError(`Kubernetes ${m[1]}.${m[2]} is not one of the versions validated here`, `Use one of ${Object.keys(KUBE_VERSIONS).join(', ')} (or a full version such as 1.36.3).`);
  return full;
}

export function minorOf(version: string): string {
  return version.split('.').slice(0, 2).join('.');
}

/** kubeconform's file name for a kind: lower-case kind, first label of the group, version. */
export function schemaFileName(kind: string, apiVersion: string): string {
  const [groupOrVersion, version] = apiVersion.split('/');
  const suffix = '-' + groupOrVersion.split('.')[0].toLowerCase() + (version ? '-' + version.toLowerCase() : '');
  return `${kind.toLowerCase()}${suffix}.json`;
}

export function schemasRoot(): string {
  return path.join(cacheRoot(), 'kube-schemas');
}

/** The directory kubeconform reads for a version in strict mode. */
export function schemaDir(version: string, root = schemasRoot()): string {
  return path.join(root, `v${version}-standalone-strict`);
}

/** The -schema-location template that makes kubeconform read our directories. */
export function schemaLocationTemplate(root = schemasRoot()): string {
  return path.join(root, '{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}', '{{ .ResourceKind }}{{ .KindSuffix }}.json');
}

// ---------------------------------------------------------------------------------------------
// Conversion of OpenAPI (v2 definitions and CRD v3 schemas) into strict draft-04 JSON Schema.

const REF_PREFIX = '#/definitions/';
const KEEP_KEYS = new Set([
  'type',
  'properties',
  'additionalProperties',
  'items',
  'required',
  'enum',
  'allOf',
  'anyOf',
  'oneOf',
  'not',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minLength',
  'maxLength',
  'pattern',
  'minItems',
  'maxItems',
  'uniqueItems',
  'minProperties',
  'maxProperties',
  'multipleOf',
  '$ref',
]);

interface ConvertContext {
  /** OpenAPI definitions by name (for $ref). */
  defs: Record<string, JsonSchema>;
  /** Names of object definitions the current file refers to. */
  used: Set<string>;
}

const STRING_OR_INTEGER: JsonSchema = { anyOf: [{ type: 'string' }, { type: 'integer' }] };
// Quantities are written as strings ("500m", "1Gi") or plain numbers (0.5, 2); both are accepted.
const STRING_OR_NUMBER: JsonSchema = { anyOf: [{ type: 'string' }, { type: 'number' }] };
const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';

function allowNull(s: JsonSchema): JsonSchema {
  if (typeof s.type === 'string') return { ...s, type: [s.type, 'null'] };
  if (Array.isArray(s.type)) return s.type.includes('null') ? s : { ...s, type: [...s.type, 'null'] };
  if (Array.isArray(s.anyOf)) return { ...s, anyOf: [...(s.anyOf as JsonSchema[]), { type: 'null' }] };
  return s;
}

/** Whether a definition is a small scalar type that is better inlined than referenced. */
function isScalarDef(def: JsonSchema | undefined): boolean {
  return Boolean(def && !def.properties && !def.additionalProperties && !def.items && def.type !== 'object' && (typeof def.type === 'string' || def.format === 'int-or-string'));
}

export function convertSchema(input: unknown, ctx: ConvertContext): JsonSchema {
  if (!input || typeof input !== 'object') return {};
  const s = input as JsonSchema;
  if (typeof s.$ref === 'string') {
    const name = s.$ref.startsWith(REF_PREFIX) ? s.$ref.slice(REF_PREFIX.length) : s.$ref;
    const def = ctx.defs[name];
    if (!def) throw new Error(`unresolved $ref ${s.$ref}`);
    if (name === QUANTITY) return { ...STRING_OR_NUMBER };
    if (isScalarDef(def)) return convertSchema(def, ctx);
    ctx.used.add(name);
    return { $ref: REF_PREFIX + name };
  }
  if (s.format === 'int-or-string' || s['x-kubernetes-int-or-string'] === true) return { ...STRING_OR_INTEGER };
  const preserve = s['x-kubernetes-preserve-unknown-fields'] === true;
  const out: JsonSchema = {};
  for (const [k, v] of Object.entries(s)) {
    if (!KEEP_KEYS.has(k)) continue;
    if (k === 'properties') {
      const req = new Set((s.required as string[] | undefined) ?? []);
      const props: Record<string, JsonSchema> = {};
      for (const [pk, pv] of Object.entries(v as Record<string, unknown>)) {
        const c = convertSchema(pv, ctx);
        props[pk] = req.has(pk) ? c : allowNull(c);
      }
      out.properties = props;
    } else if (k === 'additionalProperties') {
      out.additionalProperties = typeof v === 'boolean' ? v : convertSchema(v, ctx);
    } else if (k === 'items') {
      out.items = Array.isArray(v) ? v.map((x) => convertSchema(x, ctx)) : convertSchema(v, ctx);
    } else if (k === 'allOf' || k === 'anyOf' || k === 'oneOf') {
      out[k] = (v as unknown[]).map((x) => convertSchema(x, ctx));
    } else if (k === 'not') {
      out.not = convertSchema(v, ctx);
    } else out[k] = v;
  }
  if (s.nullable === true) Object.assign(out, allowNull(out));
  if (out.properties && out.additionalProperties === undefined && !preserve) out.additionalProperties = false;
  // A CRD's embedded object that keeps unknown fields and lists no properties: anything goes.
  return out;
}

/** A standalone file for one root schema: the root plus every object definition it reaches. */
interface DefCache {
  converted: Map<string, JsonSchema>;
  deps: Map<string, string[]>;
}

function standalone(root: JsonSchema, ctx: ConvertContext, cache: DefCache): JsonSchema {
  const definitions: Record<string, JsonSchema> = {};
  const queue = [...ctx.used];
  const seen = new Set<string>();
  while (queue.length) {
    const name = queue.shift()!;
    if (seen.has(name)) continue;
    seen.add(name);
    let conv = cache.converted.get(name);
    if (!conv) {
      const inner: ConvertContext = { defs: ctx.defs, used: new Set() };
      conv = convertSchema(ctx.defs[name], inner);
      cache.converted.set(name, conv);
      cache.deps.set(name, [...inner.used]);
    }
    definitions[name] = conv;
    for (const d of cache.deps.get(name) ?? []) if (!seen.has(d)) queue.push(d);
  }
  return Object.keys(definitions).length ? { ...root, definitions } : root;
}

export interface GeneratedKind {
  file: string;
  kind: string;
  apiVersion: string;
  source: string;
  /** SHA-256 of the schema file: equal hashes in two versions mean equal validation results. */
  sha256: string;
}

export interface GenerateResult {
  dir: string;
  version: string;
  kinds: GeneratedKind[];
  /** True when this call wrote the directory (false: it was there, on disk or from an earlier call). */
  generated: boolean;
  ms: number;
}

interface SwaggerDoc {
  definitions: Record<string, JsonSchema & { 'x-kubernetes-group-version-kind'?: { group: string; version: string; kind: string }[] }>;
}

/** Generate the schemas of one Kubernetes version from its OpenAPI document and the CRD manifests. */
export function generateSchemas(swagger: SwaggerDoc, crdTexts: { file: string; text: string }[], outDir: string, sourceNote = 'kubernetes'): GeneratedKind[] {
  const defs = swagger.definitions;
  const converted: DefCache = { converted: new Map(), deps: new Map() };
  const files = new Map<string, { schema: JsonSchema; kind: GeneratedKind }>();
  const add = (kind: string, apiVersion: string, schema: JsonSchema, source: string) => {
    const file = schemaFileName(kind, apiVersion);
    const prev = files.get(file);
    if (prev && prev.kind.apiVersion !== apiVersion) {
      throw toolError(
        `two kinds map to the same schema file ${file}: ${prev.kind.apiVersion} ${prev.kind.kind} (${prev.kind.source}) and ${apiVersion} ${kind} (${source})`,
        'kubeconform names files by the first label of the API group; one of the two cannot be validated.',
      );
    }
    files.set(file, { schema, kind: { file, kind, apiVersion, source, sha256: '' } });
  };

  for (const [name, def] of Object.entries(defs)) {
    const gvks = def['x-kubernetes-group-version-kind'] ?? [];
    // DeleteOptions and WatchEvent are listed under every group; they are never applied as objects.
    if (gvks.length !== 1) continue;
    const { group, version, kind } = gvks[0];
    const apiVersion = group ? `${group}/${version}` : version;
    const ctx: ConvertContext = { defs, used: new Set([name]) };
    const schema = standalone({ $ref: REF_PREFIX + name }, ctx, converted);
    add(kind, apiVersion, schema, sourceNote);
  }

  const objectMeta = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';
  for (const { file, text } of crdTexts) {
    for (const doc of parseAllDocuments(text)) {
      const crd = doc.toJS() as {
        kind?: string;
        spec?: { group: string; names: { kind: string }; versions?: { name: string; served?: boolean; schema?: { openAPIV3Schema?: JsonSchema } }[] };
      } | null;
      if (!crd || crd.kind !== 'CustomResourceDefinition' || !crd.spec) continue;
      for (const v of crd.spec.versions ?? []) {
        if (v.served === false) continue;
        const raw = v.schema?.openAPIV3Schema;
        if (!raw) throw toolError(`${path.basename(file)}: ${crd.spec.names.kind} ${v.name} has no openAPIV3Schema`, 'Every served CRD version needs a structural schema.');
        const ctx: ConvertContext = { defs, used: new Set() };
        const root = convertSchema(raw, ctx);
        const props = { ...((root.properties as Record<string, JsonSchema>) ?? {}) };
        props.apiVersion = { type: 'string' };
        props.kind = { type: 'string' };
        ctx.used.add(objectMeta);
        props.metadata = { $ref: REF_PREFIX + objectMeta };
        root.properties = props;
        root.additionalProperties ??= false;
        root.type ??= 'object';
        add(crd.spec.names.kind, `${crd.spec.group}/${v.name}`, standalone(root, ctx, converted), path.basename(file));
      }
    }
  }

  fs.mkdirSync(outDir, { recursive: true });
  for (const [file, entry] of files) {
    const text = JSON.stringify(entry.schema);
    entry.kind.sha256 = createHash('sha256').update(text).digest('hex');
    fs.writeFileSync(path.join(outDir, file), text);
  }
  return [...files.values()].map((f) => f.kind).sort((a, b) => a.file.localeCompare(b.file));
}

function stampOf(version: string): string {
  return JSON.stringify({ generator: GENERATOR_VERSION, kubernetes: version, crds: CRD_SOURCES.map((s) => `${s.module}@${s.version}`) });
}

const ensured = new Map<string, Promise<GenerateResult>>();

/**
 * The schema directory of a Kubernetes version, generated on first use and cached. Safe when
 * several processes ask at once: each writes to a private directory and renames it into place.
 */
export function ensureSchemas(version: string, options: { root?: string; progress?: (note: string) => void } = {}): Promise<GenerateResult> {
  const root = options.root ?? schemasRoot();
  const key = `${root}\u0000${version}`;
  const earlier = ensured.get(key);
  // Asked before in this process: the directory is there (or being made); this call writes nothing.
  if (earlier) return earlier.then((r) => ({ ...r, generated: false, ms: 0 }));
  const p = (async () => {
    const started = performance.now();
    const dir = schemaDir(version, root);
    const stampFile = path.join(dir, '.stamp.json');
    const want = stampOf(version);
    const readKinds = (): GeneratedKind[] => JSON.parse(fs.readFileSync(path.join(dir, '.kinds.json'), 'utf8'));
    if (fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === want) {
      return { dir, version, kinds: readKinds(), generated: false, ms: performance.now() - started };
    }
    options.progress?.(`downloading k8s.io/kubernetes@v${version} (OpenAPI document) and the CRD modules`);
    const [k8sDir, crdFiles] = await Promise.all([moduleDir('k8s.io/kubernetes', `v${version}`), allCrdFiles()]);
    const swaggerPath = path.join(k8sDir, 'api', 'openapi-spec', 'swagger.json');
    if (!fs.existsSync(swaggerPath)) throw toolError(`k8s.io/kubernetes@v${version} has no api/openapi-spec/swagger.json`, 'Pick a released Kubernetes version.');
    options.progress?.(`generating strict schemas for Kubernetes ${version}`);
    const swagger = JSON.parse(fs.readFileSync(swaggerPath, 'utf8')) as SwaggerDoc;
    const crds = crdFiles.map((f) => ({ file: f, text: fs.readFileSync(f, 'utf8') }));
    fs.mkdirSync(root, { recursive: true });
    // Left-overs of an interrupted generation (older than an hour) go first.
    for (const e of fs.readdirSync(root)) {
      const p = path.join(root, e);
      if ((e.startsWith('.tmp-') || e.includes('.old-')) && Date.now() - fs.statSync(p).mtimeMs > 3_600_000) fs.rmSync(p, { recursive: true, force: true });
    }
    const tmp = fs.mkdtempSync(path.join(root, `.tmp-${version}-`));
    try {
      const kinds = generateSchemas(swagger, crds, tmp, `kubernetes ${version}`);
      fs.writeFileSync(path.join(tmp, '.kinds.json'), JSON.stringify(kinds));
      fs.writeFileSync(path.join(tmp, '.stamp.json'), want);
      const current = () => fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === want;
      // Another process may have finished first: keep its result (someone may be reading it).
      if (!current()) {
        const old = `${dir}.old-${process.pid}`;
        if (fs.existsSync(dir)) fs.renameSync(dir, old);
        try {
          fs.renameSync(tmp, dir);
        } catch (e) {
          if (!current()) throw e;
        }
        fs.rmSync(old, { recursive: true, force: true });
      }
      return { dir, version, kinds, generated: true, ms: performance.now() - started };
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  })();
  ensured.set(key, p);
  p.catch(() => ensured.delete(key));
  return p;
}

/** A scratch directory for tests and benchmarks (removed by the caller). */
export function tempSchemaRoot(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-kube-schemas-'));
}
