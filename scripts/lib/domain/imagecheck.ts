// Deploy preflight: does every image the release's workloads will pull exist in its registry?
// A tag that was never published otherwise surfaces minutes later as ImagePullBackOff and a
// rolled-back upgrade. Each image of the rendered workloads (Deployments, StatefulSets, DaemonSets,
// Jobs including helm hooks, CronJobs; init containers included) is asked for once, all in parallel,
// over the OCI distribution API (registry.ts), with the credentials of the pods' image pull Secrets
// when the namespace holds them. A registry that says "no such manifest" stops the deploy; one that
// cannot be reached (air-gapped sites, DNS, 5xx) or wants credentials the deploying machine lacks
// only warns: the cluster's nodes may well reach it. Pods that operators create from custom
// resources (CloudNativePG, RabbitMQ) are not in the render and are not checked.
import { manifestObjects } from './manifests.ts';
import { UserError } from '../core/errors.ts';
import { isKubeError, type Kube, type KubeObject } from '../adapters/kube.ts';
import {
  checkManifest,
  dockerConfigCredentials,
  ImageReferenceError,
  parseImageReference,
  type ImageReference,
  type ManifestCheck,
  type ManifestCheckOptions,
  type ManifestStatus,
  type RegistryCredentials,
} from '../adapters/registry.ts';
import { table } from '../core/ui.ts';

/** One image of the render, with everything that uses it. */
export interface ImageUse {
  image: string;
  /** `Kind/name` of each workload that runs it. */
  workloads: string[];
  /** The values key that sets it (`api.image.tag`, `redis.standalone.image.digest`), when it can be told. */
  key?: string;
  /** Names of the image pull Secrets of those workloads' pods, in order, without duplicates. */
  pullSecrets: string[];
}

export interface ImageCheckResult {
  image: string;
  /** `invalid`: the reference cannot be parsed (a pull would fail too). */
  status: ManifestStatus | 'invalid';
  detail: string;
  workloads: string[];
  key?: string;
  registry?: string;
  /** The manifest digest the registry reported. */
  digest?: string;
  /** The image pull Secret whose credentials were used (its name only). */
  pullSecret?: string;
}

export interface ImageCheckReport {
  /** Why nothing was checked (`--skip-image-check`). */
  skipped?: string;
  results: ImageCheckResult[];
  /** One line per registry that could not be asked, and per unreadable pull Secret. */
  warnings: string[];
  ms: number;
}

type PodSpec = { containers?: { image?: unknown }[]; initContainers?: { image?: unknown }[]; imagePullSecrets?: { name?: unknown }[] };
type Holder = { spec?: { template?: { spec?: PodSpec }; jobTemplate?: { spec?: { template?: { spec?: PodSpec } } } } };

/** Kinds whose pods a deploy starts. Bare Pods of the chart are `helm test` hooks: they run later, on demand. */
const WORKLOAD_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob']);

/**
 * The images of a rendered manifest's workloads, each once, in order of first use, with the
 * workloads that run it, their pull Secrets and (given the merged values) the values key behind it.
 * Hooks count: a pre-upgrade Job runs during the deploy.
 */
export function workloadImageUses(manifest: string, options: { values?: Record<string, unknown>; namespace?: string } = {}): ImageUse[] {
  const uses = new Map<string, ImageUse>();
  const sources = options.values ? imageSources(options.values) : [];
  // Objects in `namespace` are named Kind/name, others Kind/namespace/name.
  for (const { id, object } of manifestObjects(manifest, options.namespace)) {
    if (!WORKLOAD_KINDS.has(String(object.kind))) continue;
    const spec = (object as Holder).spec;
    const pod = object.kind === 'CronJob' ? spec?.jobTemplate?.spec?.template?.spec : spec?.template?.spec;
    if (!pod) continue;
    const secrets = (pod.imagePullSecrets ?? []).map((s) => s?.name).filter((n): n is string => typeof n === 'string' && n !== '');
    for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
      if (typeof c?.image !== 'string' || !c.image) continue;
      let use = uses.get(c.image);
      if (!use) uses.set(c.image, (use = { image: c.image, workloads: [], pullSecrets: [], key: valuesKeyOf(c.image, sources) }));
      if (!use.workloads.includes(id)) use.workloads.push(id);
      for (const s of secrets) if (!use.pullSecrets.includes(s)) use.pullSecrets.push(s);
    }
  }
  return [...uses.values()];
}

type ImageSource = { path: string; repository?: string; tag?: string; digest?: string; value?: string };

/**
 * Where the values set images: maps with a `repository` (the chart's `{registry, repository, tag,
 * digest}` shape) and plain strings under an `image` key (extra containers).
 */
function imageSources(values: Record<string, unknown>): ImageSource[] {
  const out: ImageSource[] = [];
  const walk = (v: unknown, path: string[], depth: number) => {
    if (depth > 8 || !v || typeof v !== 'object') return;
    if (Array.isArray(v)) {
      v.forEach((item, i) => walk(item, [...path.slice(0, -1), `${path.at(-1) ?? ''}[${i}]`], depth + 1));
      return;
    }
    const o = v as Record<string, unknown>;
    if (typeof o.repository === 'string' && o.repository) {
      out.push({ path: path.join('.'), repository: o.repository, tag: o.tag === undefined || o.tag === null ? undefined : String(o.tag), digest: typeof o.digest === 'string' ? o.digest : undefined });
    }
    for (const [k, child] of Object.entries(o)) {
      if (k === 'image' && typeof child === 'string' && child) out.push({ path: [...path, k].join('.'), value: child });
      else walk(child, [...path, k], depth + 1);
    }
  };
  walk(values, [], 0);
  return out;
}

/** The values key that sets `image`, e.g. `api.image.tag`; undefined when no key matches. */
function valuesKeyOf(image: string, sources: ImageSource[]): string | undefined {
  const exact = sources.find((s) => s.value === image);
  if (exact) return exact.path;
  let ref: ImageReference;
  try {
    ref = parseImageReference(image);
  } catch {
    return undefined;
  }
  const candidates = sources.filter((s) => s.repository && (ref.repository === s.repository || ref.repository === `library/${s.repository}` || ref.repository.endsWith(`/${s.repository}`)));
  const best = candidates.find((s) => (ref.digest ? s.digest === ref.digest : !s.digest && (!s.tag || s.tag === ref.tag))) ?? candidates[0];
  if (!best) return undefined;
  return `${best.path}.${ref.digest ? 'digest' : 'tag'}`;
}

export interface ImageCheckOptions {
  namespace: string;
  /** Reads the pull Secrets; without it every image is asked for anonymously. */
  kube?: Kube;
  /** Per image (default 5 s). */
  timeoutMs?: number;
  /** For tests: another manifest check. */
  check?: (ref: ImageReference, options: ManifestCheckOptions) => Promise<ManifestCheck>;
}

type DockerConfigSecret = KubeObject & { type?: string; data?: Record<string, string> };

/** Ask every image's registry, all at once; never throws for a registry's answer (see imageCheckFailure). */
export async function checkImages(uses: ImageUse[], options: ImageCheckOptions): Promise<ImageCheckReport> {
  const started = performance.now();
  const warnings: string[] = [];
  const check = options.check ?? checkManifest;
  // Each pull Secret is read once, alongside the others.
  const secretNames = [...new Set(uses.flatMap((u) => u.pullSecrets))];
  const secrets = new Map<string, unknown>();
  if (secretNames.length && options.kube) {
    const kube = options.kube;
    await Promise.all(
      secretNames.map(async (name) => {
        try {
          const s = await kube.get<DockerConfigSecret>('secret', name, { namespace: options.namespace, timeoutMs: 5000 });
          if (!s) return void warnings.push(`image pull Secret ${name} is not in namespace ${options.namespace}: its registry is asked without credentials (the pods will not find it either)`);
          const raw = s.data?.['.dockerconfigjson'] ?? s.data?.['.dockercfg'];
          if (!raw) return void warnings.push(`Secret ${options.namespace}/${name} has no .dockerconfigjson: it is not an image pull Secret (type kubernetes.io/dockerconfigjson)`);
          secrets.set(name, JSON.parse(Buffer.from(raw, 'base64').toString('utf8')));
        } catch (e) {
          const why = isKubeError(e, 'Forbidden') ? 'you may not read Secrets there' : e instanceof SyntaxError ? 'its .dockerconfigjson is not JSON' : (e as Error).message.split('\n')[0];
          warnings.push(`image pull Secret ${options.namespace}/${name} not read (${why}): its registry is asked without credentials`);
        }
      }),
    );
  }
  const results = await Promise.all(
    uses.map(async (u): Promise<ImageCheckResult> => {
      const base = { image: u.image, workloads: u.workloads, ...(u.key ? { key: u.key } : {}) };
      let ref: ImageReference;
      try {
        ref = parseImageReference(u.image);
      } catch (e) {
        if (e instanceof ImageReferenceError) return { ...base, status: 'invalid', detail: e.message };
        throw e;
      }
      let credentials: RegistryCredentials | undefined;
      let pullSecret: string | undefined;
      for (const name of u.pullSecrets) {
        credentials = dockerConfigCredentials(secrets.get(name), ref.registry);
        if (credentials) {
          pullSecret = name;
          break;
        }
      }
      const r = await check(ref, { credentials, timeoutMs: options.timeoutMs ?? 5000 });
      return { ...base, status: r.status, detail: r.detail, registry: ref.registry, ...(r.digest ? { digest: r.digest } : {}), ...(pullSecret ? { pullSecret } : {}) };
    }),
  );
  // Not checked: one line per registry and reason, rather than one per image.
  const unchecked = new Map<string, ImageCheckResult[]>();
  for (const r of results) {
    if (r.status !== 'unreachable' && r.status !== 'denied') continue;
    const k = `${r.registry}\u0000${r.status}\u0000${r.detail}`;
    unchecked.set(k, [...(unchecked.get(k) ?? []), r]);
  }
  for (const group of unchecked.values()) {
    const { registry, status, detail } = group[0];
    const what = status === 'unreachable' ? `could not reach registry ${registry} (${detail})` : `registry ${registry} would not say (${detail})`;
    warnings.push(`${what}: ${group.length === 1 ? 'image' : `${group.length} images`} not checked, the deploy goes on: ${group.map((r) => r.image).join(', ')}`);
  }
  return { results, warnings, ms: Math.round(performance.now() - started) };
}

/** One line: how many images, found, missing, not checked, and how long it took. */
export function summarizeImageCheck(report: ImageCheckReport): string {
  if (report.skipped) return `image check skipped (${report.skipped}): no registry was asked whether the images exist`;
  const count = (s: ImageCheckResult['status'][]) => report.results.filter((r) => s.includes(r.status)).length;
  const parts = [
    `${count(['found'])} found`,
    ...(count(['missing', 'invalid']) ? [`${count(['missing', 'invalid'])} missing or invalid`] : []),
    ...(count(['unreachable', 'denied']) ? [`${count(['unreachable', 'denied'])} not checked (registry unreachable or asking for credentials)`] : []),
  ];
  return `images: ${report.results.length} asked for at their registries in ${report.ms} ms: ${parts.join(', ')}`;
}

/** The images as a table (image, status, workloads, values key). */
export function formatImageCheck(report: ImageCheckReport): string {
  return table(
    ['image', 'status', 'workloads', 'values key'],
    report.results.map((r) => [r.image, r.status, r.workloads.join(', '), r.key ?? '-']),
  );
}

const APP_COMPONENTS = new Set(['api', 'admin', 'webui']);

/** The refusal when an image is missing or invalid: names image, workloads and the key to change. */
export function imageCheckFailure(report: ImageCheckReport, cluster: string): UserError | undefined {
  const bad = report.results.filter((r) => r.status === 'missing' || r.status === 'invalid');
  if (!bad.length) return undefined;
  const lines = bad.map((r) => {
    const component = r.key?.split('.')[0];
    const fix = r.key
      ? `change ${r.key}${component && APP_COMPONENTS.has(component) && r.key === `${component}.image.tag` ? ' (or --image-tag, for api, admin and webui together)' : ''}`
      : 'change the values that set this image';
    return `  ${r.image} (${r.workloads.join(', ')}): ${r.status === 'missing' ? `not in registry ${r.registry}: ${r.detail}` : r.detail}; ${fix}`;
  });
  return new UserError(
    `${bad.length === 1 ? 'an image' : `${bad.length} images`} of the release ${bad.length === 1 ? 'does' : 'do'} not exist in ${bad.length === 1 ? 'its registry' : 'their registries'}, so its pods could never start on ${cluster}; nothing was deployed:\n${lines.join('\n')}`,
    {
      hint: 'Set the key named above to a tag or digest the registry has (list the tags: skopeo list-tags docker://REGISTRY/REPOSITORY), then deploy again.',
      details: { imageCheck: report },
    },
  );
}
