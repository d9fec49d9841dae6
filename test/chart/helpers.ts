// Render helpers for the chart tests: real `helm template` (helm 4 unless asked), one render per
// distinct input (cached in memory, shared by every test file of the run), parsed into objects.
import path from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { Helm, templateFailure, type RenderOptions, type HelmMajor } from '../../scripts/lib/adapters/helm.ts';
import { helmClient as pinnedHelm } from '../../scripts/lib/domain/target.ts';
import { loadRegistry } from '../../scripts/lib/domain/clusters.ts';
import { CHART_DIR, REPO_ROOT } from '../../scripts/lib/core/paths.ts';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  // Rendered objects are checked structurally; their bodies are free-form.
  [key: string]: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface RenderInput {
  /** Values applied after chart/values.yaml (and after `files`). */
  values?: Record<string, unknown>;
  /** Values files, repository-relative paths (e.g. values/clusters/prod-eu.yaml). */
  files?: string[];
  major?: HelmMajor;
  kubeVersion?: string;
  release?: string;
  namespace?: string;
}

export interface RenderOutcome {
  ok: boolean;
  stdout: string;
  stderr: string;
  /** The chart's own `fail` message or the schema error, when not ok. */
  error: string;
  objects: K8sObject[];
}

export const RELEASE = 'conduit';
export const NAMESPACE = 'conduit';
const cache = new Map<string, Promise<RenderOutcome>>();
const clients = new Map<HelmMajor, Promise<Helm>>();

/** One helm client per major version for the whole run. */
function helmClient(major: HelmMajor): Promise<Helm> {
  let c = clients.get(major);
  if (!c) clients.set(major, (c = pinnedHelm(major)));
  return c;
}

export function renderOptions(input: RenderInput): RenderOptions {
  return {
    chart: CHART_DIR,
    release: input.release ?? RELEASE,
    namespace: input.namespace ?? NAMESPACE,
    valuesFiles: (input.files ?? []).map((f) => path.resolve(CHART_DIR, '..', f)),
    valuesYaml: input.values ? stringify(input.values) : undefined,
    kubeVersion: input.kubeVersion ?? '1.36',
  };
}

/** Render once per distinct input; later calls with the same input share the result. */
export function renderChart(input: RenderInput = {}): Promise<RenderOutcome> {
  const key = JSON.stringify(input);
  let p = cache.get(key);
  if (!p) {
    p = (async () => {
      const r = await (await helmClient(input.major ?? 4)).template(renderOptions(input));
      const ok = r.exitCode === 0;
      const objects = ok
        ? parseAllDocuments(r.stdout)
            .map((d) => d.toJS() as K8sObject | null)
            .filter((o): o is K8sObject => Boolean(o && o.kind))
        : [];
      return { ok, stdout: r.stdout, stderr: r.stderr, error: ok ? '' : (templateFailure(r.stderr) ?? r.stderr.trim()), objects };
    })();
    cache.set(key, p);
  }
  return p;
}

/** Objects of a successful render (throws with helm's message otherwise). */
export async function renderObjects(input: RenderInput = {}): Promise<K8sObject[]> {
  const r = await renderChart(input);
  if (!r.ok) throw new Error(`render failed: ${r.error}`);
  return r.objects;
}

/** The failure message of a render that must fail (throws when it succeeds). */
export async function renderError(input: RenderInput): Promise<string> {
  const r = await renderChart(input);
  if (r.ok) throw new Error(`render succeeded but a failure was expected for ${JSON.stringify(input.values)}`);
  return r.error;
}

export function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in [${objects.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}]`);
  return o;
}

export function ofKind(objects: K8sObject[], kind: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind);
}

/** The single container of a component's Deployment. */
export function container(objects: K8sObject[], component: string): any {
  // eslint-disable-line @typescript-eslint/no-explicit-any
  return find(objects, 'Deployment', `${RELEASE}-${component}`).spec.template.spec.containers[0];
}

/** env of a container as name -> EnvVar. */
export function envOf(c: { env?: { name: string; value?: string; valueFrom?: unknown }[] }): Map<string, { name: string; value?: string; valueFrom?: any }> {
  // eslint-disable-line @typescript-eslint/no-explicit-any
  return new Map((c.env ?? []).map((e) => [e.name, e]));
}

/** A component's ConfigMap data (its non-secret environment). */
export function configEnv(objects: K8sObject[], component: string): Record<string, string> {
  return find(objects, 'ConfigMap', `${RELEASE}-${component}-env`).data ?? {};
}

/** Values that make more than one API replica legal: S3 media storage (RabbitMQ and Redis are on by default). */
export const S3: Record<string, unknown> = {
  mediaStorage: { type: 's3', s3: { endpoint: 'https://s3.example.com', bucketName: 'media', existingSecret: 'conduit-s3' } },
};

/** Deep merge for building value sets in tests (objects merge, everything else replaces). */
export function merge(...parts: Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of parts) {
    for (const [k, v] of Object.entries(p)) {
      const cur = out[k];
      out[k] = isPlain(cur) && isPlain(v) ? merge(cur, v) : v;
    }
  }
  return out;
}
function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The render input of a registered cluster, read by the scripts' own registry loader. */
export function clusterInput(name: string, major: HelmMajor = 4): RenderInput {
  const c = loadRegistry().clusters.find((x) => x.name === name);
  if (!c) throw new Error(`no cluster ${name} in values/clusters.yaml`);
  return { files: c.layers.map((l) => path.relative(REPO_ROOT, l)), release: c.release, namespace: c.namespace, kubeVersion: c.kubeVersion, major };
}

/** The WebUI enabled as the chart requires it: Clerk keys (a test publishable key, a Secret reference). */
export const WEBUI_ON = { webui: { enabled: true, clerk: { publishableKey: 'pk_test_Y2hhcnQtdGVzdHMuY2xlcmsuZGV2JA', existingSecret: 'conduit-clerk' } } };
