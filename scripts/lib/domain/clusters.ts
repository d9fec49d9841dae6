// The registry of deploy targets (values/clusters.yaml): loaded once, validated against
// schemas/clusters.schema.json, and normalised into typed ClusterConfig objects the rest of the
// toolkit trusts. Errors name the file, line and key, and say what to change.
import fs from 'node:fs';
import path from 'node:path';
import type { ErrorObject } from 'ajv';
import { cachedValidator } from '../core/ajvcache.ts';
import { durationSeconds } from '../core/duration.ts';
import { UserError, usageError } from '../core/errors.ts';
import { displayPath, SCHEMAS_DIR, VALUES_DIR } from '../core/paths.ts';
import { formatPath, formatPos, parseValuesText, pathKey, type PathSegment, type SourcePos } from './values.ts';

export interface ClusterConfig {
  name: string;
  description: string;
  context: string;
  namespace: string;
  release: string;
  environment: string;
  /** Absolute paths of the layer files, in the order they apply (after chart/values.yaml). */
  layers: string[];
  protected: boolean;
  /** The cluster's Kubernetes minor (e.g. "1.36"), when the registry says. */
  kubeVersion?: string;
  /** The Prometheus the rollout gate asks about this cluster (registry key `prometheus`). */
  prometheus?: PrometheusConfig;
  /** Where this entry is (for messages). */
  at: SourcePos;
}

/** How to reach a cluster's Prometheus; credentials are named (env var or file), never held here. */
export interface PrometheusConfig {
  url: string;
  bearerTokenEnv?: string;
  /** Absolute path (resolved against the registry's directory). */
  bearerTokenFile?: string;
  basicAuth?: { username: string; passwordEnv?: string; passwordFile?: string };
  /** Extra label matchers for this cluster's series. */
  selector: Record<string, string>;
  /** Seconds one query may take. */
  timeoutSeconds: number;
}

/** The rollout plan as written (registry key `rollout`); domain/rollout.ts checks it against the clusters. */
export interface RolloutConfig {
  soak?: string;
  interval?: string;
  waves: { name: string; clusters: string[]; soak?: string; at: SourcePos }[];
  at: SourcePos;
}

export interface Registry {
  file: string;
  clusters: ClusterConfig[];
  rollout?: RolloutConfig;
}

export const DEFAULT_REGISTRY = path.join(VALUES_DIR, 'clusters.yaml');
export const REGISTRY_SCHEMA = path.join(SCHEMAS_DIR, 'clusters.schema.json');

function registryError(file: string, at: SourcePos | undefined, keyPath: readonly PathSegment[], message: string, hint: string): UserError {
  const where = at ? formatPos(at) : file;
  return new UserError(`${where}: ${formatPath(keyPath)}: ${message}`, { hint, details: { file, line: at?.line, col: at?.col, key: formatPath(keyPath) } });
}

function ajvPath(e: ErrorObject, root?: unknown): PathSegment[] {
  let node = root as Record<string, unknown> | undefined;
  const segs: PathSegment[] = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => {
      // Array items as indexes (rollout.waves[0].soak), map keys as keys.
      const seg = Array.isArray(node) ? Number(s) : s;
      node = node?.[s] as Record<string, unknown> | undefined;
      return seg;
    });
  if (e.keyword === 'additionalProperties') segs.push((e.params as { additionalProperty: string }).additionalProperty);
  if (e.keyword === 'propertyNames' && (e.params as { propertyName?: string }).propertyName) segs.push((e.params as { propertyName: string }).propertyName);
  return segs;
}

/** Load, validate and normalise the registry. `valuesDir` is where layer paths are relative to. */
export function loadRegistry(file = DEFAULT_REGISTRY, options: { schemaFile?: string; valuesDir?: string } = {}): Registry {
  const name = displayPath(file);
  if (!fs.existsSync(file)) throw usageError(`cluster registry ${name} does not exist`, 'Create values/clusters.yaml (see docs) or pass --registry FILE.');
  const layer = parseValuesText(fs.readFileSync(file, 'utf8'), name);
  const schemaFile = options.schemaFile ?? REGISTRY_SCHEMA;
  if (!fs.existsSync(schemaFile))
    throw new UserError(`the cluster registry schema ${displayPath(schemaFile)} is missing`, { hint: 'It is part of the repository (schemas/clusters.schema.json): restore it with git.' });
  const validate = cachedValidator(fs.readFileSync(schemaFile, 'utf8'));
  const at = (p: readonly PathSegment[]): SourcePos | undefined => {
    for (let n = p.length; n > 0; n--) {
      const pos = layer.positions.get(pathKey(p.slice(0, n)));
      if (pos) return pos;
    }
    return undefined;
  };
  if (!validate(layer.values)) {
    const errs = (validate.errors ?? []).filter((e) => e.keyword !== 'if');
    const lines = errs.map((e) => {
      const p = ajvPath(e, layer.values);
      const pos = at(p);
      const what = e.keyword === 'additionalProperties' ? `unknown key (allowed: ${Object.keys((e.parentSchema as { properties?: object })?.properties ?? {}).join(', ') || 'none'})` : e.message;
      return `${pos ? formatPos(pos) : name}: ${formatPath(p)}: ${what}`;
    });
    throw new UserError(`the cluster registry ${name} is invalid:\n  ${lines.join('\n  ')}`, {
      hint: `Fix the keys above; ${displayPath(schemaFile)} describes every key.`,
      details: errs.map((e) => ({ key: formatPath(ajvPath(e, layer.values)), message: e.message, at: at(ajvPath(e, layer.values)) })),
    });
  }
  const valuesDir = options.valuesDir ?? path.dirname(file);
  const raw = (layer.values as { clusters: Record<string, Record<string, unknown>> }).clusters;
  const clusters: ClusterConfig[] = [];
  for (const [cname, c] of Object.entries(raw)) {
    const layers = ((c.layers as string[]) ?? []).map((l, i) => {
      const abs = path.resolve(valuesDir, l);
      if (!fs.existsSync(abs)) {
        throw registryError(
          name,
          at(['clusters', cname, 'layers', i]),
          ['clusters', cname, 'layers', i],
          `layer file ${displayPath(abs)} does not exist`,
          `Create it, or fix the path (layers are relative to ${displayPath(valuesDir)}/).`,
        );
      }
      return abs;
    });
    const env = String(c.environment);
    const envLayer = path.resolve(valuesDir, 'environments', `${env}.yaml`);
    if (!layers.includes(envLayer) && fs.existsSync(path.join(valuesDir, 'environments'))) {
      throw registryError(
        name,
        at(['clusters', cname, 'environment']),
        ['clusters', cname, 'environment'],
        `environment "${env}" but the layers do not include environments/${env}.yaml`,
        `Add environments/${env}.yaml to the layers of ${cname} (before the cluster's own file).`,
      );
    }
    clusters.push({
      name: cname,
      description: String(c.description ?? ''),
      context: String(c.context),
      namespace: String(c.namespace),
      release: String(c.release),
      environment: env,
      layers,
      protected: Boolean(c.protected),
      kubeVersion: c.kubeVersion === undefined ? undefined : String(c.kubeVersion),
      prometheus: c.prometheus ? prometheusConfig(c.prometheus as RawPrometheus, path.dirname(file)) : undefined,
      at: at(['clusters', cname]) ?? { file: name, line: 0, col: 0 },
    });
  }
  const rollout = (layer.values as { rollout?: Omit<RolloutConfig, 'at' | 'waves'> & { waves: Omit<RolloutConfig['waves'][number], 'at'>[] } }).rollout;
  const here = (p: PathSegment[]) => at(p) ?? { file: name, line: 0, col: 0 };
  return {
    file,
    clusters,
    rollout: rollout && { ...rollout, waves: rollout.waves.map((w, i) => ({ ...w, at: here(['rollout', 'waves', i]) })), at: here(['rollout']) },
  };
}

type RawPrometheus = Omit<PrometheusConfig, 'selector' | 'timeoutSeconds'> & { selector?: Record<string, string>; timeout?: string };

/** The schema-checked `prometheus` entry, with credential files resolved against the registry's directory. */
function prometheusConfig(raw: RawPrometheus, dir: string): PrometheusConfig {
  const abs = (f: string | undefined) => (f === undefined ? undefined : path.resolve(dir, f));
  return {
    url: raw.url.replace(/\/+$/, ''),
    bearerTokenEnv: raw.bearerTokenEnv,
    bearerTokenFile: abs(raw.bearerTokenFile),
    basicAuth: raw.basicAuth && { ...raw.basicAuth, passwordFile: abs(raw.basicAuth.passwordFile) },
    selector: raw.selector ?? {},
    timeoutSeconds: raw.timeout ? durationSeconds(raw.timeout) : 10,
  };
}

/** The clusters a command works on: --all, else --cluster NAME, else `local`. */
export function selectClusters(registry: Registry, options: { cluster?: string; all?: boolean }): ClusterConfig[] {
  if (options.all && options.cluster) throw usageError('use either --cluster NAME or --all, not both');
  if (options.all) return registry.clusters;
  const name = options.cluster ?? 'local';
  const found = registry.clusters.find((c) => c.name === name);
  if (!found) {
    throw usageError(`unknown cluster "${name}" (not in ${displayPath(registry.file)})`, `Known clusters: ${registry.clusters.map((c) => c.name).join(', ')}.`);
  }
  return [found];
}
