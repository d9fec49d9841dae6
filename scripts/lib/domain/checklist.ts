// The production deployment checklist as checks: each item evaluated from the merged values and the
// rendered manifests, with pass / warn / fail and, for anything not passing, the fix to apply.
// Pure: the deploy pre-flight feeds it what validation already computed; a fail stops the deploy.
import { manifestDocuments } from './manifests.ts';
import { MOVING_TAGS } from '../adapters/registry.ts';

export type CheckStatus = 'pass' | 'warn' | 'fail';

export interface CheckResult {
  id: string;
  title: string;
  status: CheckStatus;
  /** What was found (one line). */
  detail: string;
  /** What to change when not passing. */
  fix?: string;
}

export interface ChecklistInput {
  /** Registry environment: `production` makes several items mandatory. */
  environment: string;
  /** The merged values (chart defaults, layers, --values, --set). */
  values: Record<string, unknown>;
  /** `helm template` output of the same values. */
  manifest: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
function at(v: unknown, ...path: string[]): unknown {
  let cur = v;
  for (const p of path) cur = isObj(cur) ? cur[p] : undefined;
  return cur;
}

interface K8sObject {
  kind: string;
  metadata: { name: string };
  spec?: Obj;
}

export function parseManifest(manifest: string): K8sObject[] {
  return (manifestDocuments(manifest) as unknown[]).filter((o): o is K8sObject => isObj(o) && typeof o.kind === 'string' && isObj(o.metadata));
}

interface Container {
  name: string;
  image?: string;
  resources?: { requests?: Obj; limits?: Obj };
  readinessProbe?: unknown;
  livenessProbe?: unknown;
}

/** Pod templates of the workloads (Deployment, StatefulSet, DaemonSet, Job, CronJob). */
function podSpecs(objects: K8sObject[]): { owner: string; long: boolean; spec: { containers?: Container[]; initContainers?: Container[] } }[] {
  const out: ReturnType<typeof podSpecs> = [];
  for (const o of objects) {
    const owner = `${o.kind}/${o.metadata.name}`;
    if (['Deployment', 'StatefulSet', 'DaemonSet'].includes(o.kind)) out.push({ owner, long: true, spec: (at(o, 'spec', 'template', 'spec') ?? {}) as never });
    else if (o.kind === 'Job') out.push({ owner, long: false, spec: (at(o, 'spec', 'template', 'spec') ?? {}) as never });
    else if (o.kind === 'CronJob') out.push({ owner, long: false, spec: (at(o, 'spec', 'jobTemplate', 'spec', 'template', 'spec') ?? {}) as never });
  }
  return out;
}

/** Bytes of a Kubernetes quantity (256Mi, 1G) or a Redis size (200mb, 1gb, 1000000). */
export function memoryBytes(q: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(q.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const units: Record<string, number> = {
    '': 1,
    k: 1e3,
    K: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    // Redis: kb/mb/gb are powers of 1024, k/m/g powers of 1000 (case-insensitive).
    kb: 2 ** 10,
    mb: 2 ** 20,
    gb: 2 ** 30,
    m: 1e6,
    g: 1e9,
  };
  const u = m[2] in units ? m[2] : m[2].toLowerCase();
  return u in units ? n * units[u] : undefined;
}

/** Secret-looking value keys (not the names of keys inside an existing Secret). */
const INLINE_SECRET_KEY = /^(password|.*Password|secret|clientSecret|secretAccessKey|accessKeySecret|token|apiKey|masterKey)$/;

function inlineSecrets(v: unknown, path: string[] = []): string[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => inlineSecrets(x, [...path, String(i)]));
  if (!isObj(v)) return [];
  const found: string[] = [];
  for (const [k, x] of Object.entries(v)) {
    if (typeof x === 'string' && x !== '' && INLINE_SECRET_KEY.test(k)) found.push([...path, k].join('.'));
    // env entries: { name: FOO_PASSWORD, value: "..." } instead of valueFrom.
    else if (k === 'value' && typeof x === 'string' && x !== '' && typeof v.name === 'string' && /(PASSWORD|SECRET|TOKEN|API_KEY|MASTER_KEY)/i.test(v.name)) found.push([...path, k].join('.'));
    else found.push(...inlineSecrets(x, [...path, k]));
  }
  return found;
}

/** What every check reads: the input, parsed once. */
interface ChecklistContext {
  environment: string;
  values: Record<string, unknown>;
  production: boolean;
  objects: K8sObject[];
  pods: ReturnType<typeof podSpecs>;
  /** Mandatory in production, advised elsewhere. */
  prodFail: CheckStatus;
}

/** 1. TLS on every ingress host. */
function tlsOnIngress(ctx: ChecklistContext): CheckResult {
  const { objects, prodFail } = ctx;
  const ingresses = objects.filter((o) => o.kind === 'Ingress');
  const routes = objects.filter((o) => o.kind === 'HTTPRoute');
  const uncovered: string[] = [];
  for (const ing of ingresses) {
    const hosts = ((at(ing, 'spec', 'rules') as { host?: string }[] | undefined) ?? []).map((r) => r.host).filter((h): h is string => Boolean(h));
    const tlsHosts = new Set(((at(ing, 'spec', 'tls') as { hosts?: string[] }[] | undefined) ?? []).flatMap((t) => t.hosts ?? []));
    for (const h of hosts) if (!tlsHosts.has(h)) uncovered.push(`${h} (Ingress/${ing.metadata.name})`);
  }
  if (!ingresses.length && !routes.length) return { id: 'tls', title: 'TLS on ingress hosts', status: 'pass', detail: 'no Ingress rendered (not exposed by this chart)' };
  if (uncovered.length)
    return {
      id: 'tls',
      title: 'TLS on ingress hosts',
      status: prodFail,
      detail: `hosts without TLS: ${uncovered.join(', ')}`,
      fix: 'Set ingress.tls.enabled: true (and ingress.tls.clusterIssuer for cert-manager, or provide the TLS Secrets).',
    };
  return {
    id: 'tls',
    title: 'TLS on ingress hosts',
    status: 'pass',
    detail: ingresses.length ? `${ingresses.length} Ingress(es), every host has TLS` : `${routes.length} HTTPRoute(s): TLS terminates at the Gateway`,
  };
}

/** 2. Connection pool budget: the worst case of pods x pool size fits the server. */
function connectionBudget(ctx: ChecklistContext): CheckResult {
  const { values } = ctx;
  const maxConn = Number(at(values, 'database', 'maxConnections') ?? 0);
  const reserved = Number(at(values, 'database', 'reservedConnections') ?? 0);
  const parts: string[] = [];
  let used = 0;
  for (const c of ['api', 'admin'] as const) {
    if (at(values, c, 'enabled') === false) continue;
    const pods = at(values, c, 'autoscaling', 'enabled') === true ? Number(at(values, c, 'autoscaling', 'maxReplicas') ?? 0) : Number(at(values, c, 'replicaCount') ?? 1);
    const pool = Number(at(values, 'database', 'pool', c, 'maxPoolSize') ?? 0);
    used += pods * pool;
    parts.push(`${c} ${pods}x${pool}`);
  }
  const budget = maxConn - reserved;
  return used <= budget
    ? { id: 'connection-budget', title: 'Connection pool budget fits', status: 'pass', detail: `${parts.join(' + ')} = ${used} <= ${budget} (maxConnections ${maxConn} - reserved ${reserved})` }
    : {
        id: 'connection-budget',
        title: 'Connection pool budget fits',
        status: 'fail',
        detail: `${parts.join(' + ')} = ${used} > ${budget} (maxConnections ${maxConn} - reserved ${reserved})`,
        fix: 'Lower database.pool.*.maxPoolSize or the replica/maxReplicas counts, or raise database.maxConnections.',
      };
}

/** 3. Redis maxmemory below its memory limit. */
function redisMemory(ctx: ChecklistContext): CheckResult {
  const { values } = ctx;
  const mode = at(values, 'redis', 'mode');
  if (mode !== 'standalone') return { id: 'redis-memory', title: 'Redis maxmemory and memory limit', status: 'pass', detail: `redis.mode ${String(mode)}: sized by whoever runs it` };
  const maxmemory = String(at(values, 'redis', 'standalone', 'maxmemory') ?? '');
  const limit = String(at(values, 'redis', 'standalone', 'resources', 'limits', 'memory') ?? '');
  const mm = maxmemory ? memoryBytes(maxmemory) : undefined;
  const lim = limit ? memoryBytes(limit) : undefined;
  if (!mm || !lim)
    return {
      id: 'redis-memory',
      title: 'Redis maxmemory and memory limit',
      status: 'fail',
      detail: `maxmemory ${maxmemory || '(unset)'}, memory limit ${limit || '(unset)'}`,
      fix: 'Set redis.standalone.maxmemory and redis.standalone.resources.limits.memory (maxmemory about 80% of the limit).',
    };
  if (mm >= lim)
    return {
      id: 'redis-memory',
      title: 'Redis maxmemory and memory limit',
      status: 'fail',
      detail: `maxmemory ${maxmemory} is not below the memory limit ${limit}: Redis would be OOM-killed before it evicts`,
      fix: 'Lower redis.standalone.maxmemory to about 80% of redis.standalone.resources.limits.memory.',
    };
  return { id: 'redis-memory', title: 'Redis maxmemory and memory limit', status: 'pass', detail: `maxmemory ${maxmemory} < limit ${limit}` };
}

/** 4. Autoscaling of the Core API in production. */
function autoscaling(ctx: ChecklistContext): CheckResult {
  const { values, production } = ctx;
  const on = at(values, 'api', 'autoscaling', 'enabled') === true;
  if (on)
    return {
      id: 'autoscaling',
      title: 'Autoscaling (Core API)',
      status: 'pass',
      detail: `HPA ${String(at(values, 'api', 'autoscaling', 'minReplicas'))}..${String(at(values, 'api', 'autoscaling', 'maxReplicas'))} replicas`,
    };
  return production
    ? {
        id: 'autoscaling',
        title: 'Autoscaling (Core API)',
        status: 'fail',
        detail: 'api.autoscaling.enabled is false in production',
        fix: 'Set api.autoscaling.enabled: true with minReplicas >= 2 (the environment file production.yaml does).',
      }
    : { id: 'autoscaling', title: 'Autoscaling (Core API)', status: 'pass', detail: `off (${ctx.environment}: a fixed ${String(at(values, 'api', 'replicaCount') ?? 1)} replica(s) is fine)` };
}

/**
 * 5. Probes: readiness and liveness on each workload's main container (the first); a sidecar (e.g.
 * the metrics exporter) without them is a warning, it does not gate traffic.
 */
function probes(ctx: ChecklistContext): CheckResult {
  const { pods } = ctx;
  const missingMain: string[] = [];
  const missingSidecar: string[] = [];
  let count = 0;
  for (const p of pods.filter((x) => x.long))
    (p.spec.containers ?? []).forEach((c, i) => {
      count++;
      const lacks = [!c.readinessProbe && 'readiness', !c.livenessProbe && 'liveness'].filter(Boolean);
      if (lacks.length) (i === 0 ? missingMain : missingSidecar).push(`${p.owner} ${c.name} (${lacks.join(', ')})`);
    });
  const fix = 'Keep the chart probes enabled (<component>.probes.*.enabled) for every component.';
  if (missingMain.length) return { id: 'probes', title: 'Probes present', status: 'fail', detail: `without probes: ${[...missingMain, ...missingSidecar].join('; ')}`, fix };
  if (missingSidecar.length)
    return {
      id: 'probes',
      title: 'Probes present',
      status: 'warn',
      detail: `main containers have both; sidecars without: ${missingSidecar.join('; ')}`,
      fix: 'Give the sidecars a readiness/liveness probe in the chart.',
    };
  return { id: 'probes', title: 'Probes present', status: 'pass', detail: `readiness and liveness on ${count} container(s)` };
}

/** 6. Monitoring: ServiceMonitor and alert rules. */
function monitoring(ctx: ChecklistContext): CheckResult {
  const { values, prodFail } = ctx;
  const sm = at(values, 'monitoring', 'serviceMonitor', 'enabled') === true;
  const rules = at(values, 'monitoring', 'prometheusRule', 'enabled') === true;
  return sm && rules
    ? {
        id: 'monitoring',
        title: 'Monitoring enabled',
        status: 'pass',
        detail: `ServiceMonitor and PrometheusRule on${at(values, 'monitoring', 'dashboards', 'enabled') === true ? ', dashboards shipped' : ''}`,
      }
    : {
        id: 'monitoring',
        title: 'Monitoring enabled',
        status: prodFail,
        detail: `${sm ? '' : 'monitoring.serviceMonitor.enabled false; '}${rules ? '' : 'monitoring.prometheusRule.enabled false'}`.replace(/; $/, ''),
        fix: 'Set monitoring.serviceMonitor.enabled and monitoring.prometheusRule.enabled to true (needs the Prometheus Operator CRDs).',
      };
}

/** 7. Backups scheduled (production). */
function backups(ctx: ChecklistContext): CheckResult {
  const { values, production, objects } = ctx;
  const on = at(values, 'backup', 'enabled') === true && at(values, 'backup', 'suspend') !== true;
  const scheduled = objects.some((o) => o.kind === 'ScheduledBackup' || o.kind === 'CronJob');
  return on && scheduled
    ? { id: 'backups', title: 'Backups scheduled', status: 'pass', detail: `schedule "${String(at(values, 'backup', 'schedule'))}", retention ${String(at(values, 'backup', 'retention'))}` }
    : production
      ? // A warning, not a stop: a cluster may be backed up outside the chart (a managed database's own backups).
        {
          id: 'backups',
          title: 'Backups scheduled',
          status: 'warn',
          detail: at(values, 'backup', 'enabled') === true ? 'backup.suspend is true (or nothing scheduled)' : 'backup.enabled is false in production (no backups by the chart)',
          fix: 'Set backup.enabled: true with backup.destination (see docs/backups.md) and backup.suspend: false, unless the database is backed up elsewhere.',
        }
      : { id: 'backups', title: 'Backups scheduled', status: 'pass', detail: `off (${ctx.environment}: not required)` };
}

/** 8. Network policies. */
function networkPolicies(ctx: ChecklistContext): CheckResult {
  const { values, objects, prodFail } = ctx;
  const n = objects.filter((o) => o.kind === 'NetworkPolicy').length;
  return at(values, 'networkPolicy', 'enabled') === true && n > 0
    ? { id: 'network-policies', title: 'Network policies on', status: 'pass', detail: `${n} NetworkPolicy object(s)` }
    : {
        id: 'network-policies',
        title: 'Network policies on',
        status: prodFail,
        detail: 'networkPolicy.enabled is false: every pod accepts traffic from anywhere',
        fix: 'Set networkPolicy.enabled: true.',
      };
}

/** 9. Requests and limits on every container (init containers too). */
function resources(ctx: ChecklistContext): CheckResult {
  const { pods } = ctx;
  const missing: string[] = [];
  let count = 0;
  for (const p of pods)
    for (const c of [...(p.spec.containers ?? []), ...(p.spec.initContainers ?? [])]) {
      count++;
      const lacks = [
        !at(c, 'resources', 'requests', 'cpu') && 'cpu request',
        !at(c, 'resources', 'requests', 'memory') && 'memory request',
        !at(c, 'resources', 'limits', 'memory') && 'memory limit',
      ].filter(Boolean);
      if (lacks.length) missing.push(`${p.owner} ${c.name} (${lacks.join(', ')})`);
    }
  return missing.length
    ? {
        id: 'resources',
        title: 'Requests and limits on every container',
        status: 'fail',
        detail: missing.join('; '),
        fix: 'Set <component>.resources.requests (cpu, memory) and resources.limits.memory for the containers named.',
      }
    : { id: 'resources', title: 'Requests and limits on every container', status: 'pass', detail: `${count} container(s) with cpu/memory requests and a memory limit` };
}

/** 10. Secrets not inline in the values. */
function inlineSecretsInValues(ctx: ChecklistContext): CheckResult {
  const { values, prodFail } = ctx;
  const found = inlineSecrets(values);
  return found.length
    ? {
        id: 'inline-secrets',
        title: 'Secrets not inline in values',
        status: prodFail,
        detail: `inline: ${found.join(', ')}`,
        fix: 'Move each value into a Secret and reference it with the matching existingSecret key (e.g. database.auth.existingSecret) instead of the inline password.',
      }
    : { id: 'inline-secrets', title: 'Secrets not inline in values', status: 'pass', detail: 'none: generated or from existingSecret' };
}

/** 11. Image tags pinned (no moving latest/master, no missing tag). */
function imageTags(ctx: ChecklistContext): CheckResult {
  const { pods, prodFail } = ctx;
  const images = new Set(pods.flatMap((p) => [...(p.spec.containers ?? []), ...(p.spec.initContainers ?? [])].map((c) => c.image ?? '')));
  const loose = [...images].filter((i) => {
    if (i.includes('@sha256:')) return false;
    const tag = /:([\w][\w.-]*)$/.exec(i.replace(/^[^/]*\//, (h) => h.replace(/:\d+\//, '/')))?.[1];
    return !tag || MOVING_TAGS.includes(tag);
  });
  return loose.length
    ? {
        id: 'image-tags',
        title: 'Image tags pinned',
        status: prodFail,
        detail: `unpinned: ${loose.join(', ')}`,
        fix: 'Deploy an immutable tag (--image-tag master-<7-char commit sha>) or a digest; never latest or master.',
      }
    : { id: 'image-tags', title: 'Image tags pinned', status: 'pass', detail: `${images.size} image(s), all with a version tag or digest` };
}

const CHECKS: readonly ((c: ChecklistContext) => CheckResult)[] = [
  tlsOnIngress,
  connectionBudget,
  redisMemory,
  autoscaling,
  probes,
  monitoring,
  backups,
  networkPolicies,
  resources,
  inlineSecretsInValues,
  imageTags,
];

export function evaluateChecklist(input: ChecklistInput): CheckResult[] {
  const production = input.environment === 'production';
  const objects = parseManifest(input.manifest);
  const c: ChecklistContext = { environment: input.environment, values: input.values, production, objects, pods: podSpecs(objects), prodFail: production ? 'fail' : 'warn' };
  return CHECKS.map((check) => check(c));
}

export function checklistFailed(checks: CheckResult[]): boolean {
  return checks.some((c) => c.status === 'fail');
}
