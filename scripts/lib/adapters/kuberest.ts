// A direct HTTPS client for the Kubernetes API, used by Kube (kube.ts) for the plain reads and writes
// (get, list, create, replace, delete, raw paths, access reviews) instead of one kubectl process per
// call: a kubectl process costs 0.1-0.5 s to start, a request on a kept-alive connection a few ms.
// It reads the same kubeconfig and context as kubectl. Whatever it cannot do exactly as kubectl
// would (exec or auth-provider credentials, proxies, merged KUBECONFIG lists, kinds it does not
// know) returns undefined from the factory / the resolver, and the caller uses kubectl.
import fs from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';

export interface RestConfig {
  server: URL;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  token?: string;
  basic?: { username: string; password: string };
  insecure?: boolean;
  /** The context's namespace: the default for namespaced calls without one (as kubectl). */
  namespace: string;
  /** Where the settings came from, for errors: `context "x" of FILE`. */
  source: string;
}

type Named<T> = { name: string } & T;
interface KubeconfigFile {
  'current-context'?: string;
  clusters?: Named<{ cluster?: Record<string, unknown> }>[];
  contexts?: Named<{ context?: { cluster?: string; user?: string; namespace?: string } }>[];
  users?: Named<{ user?: Record<string, unknown> }>[];
}

/** The one kubeconfig file kubectl would read, or undefined when it would merge several. */
export function kubeconfigPath(explicit?: string, env = process.env): string | undefined {
  if (explicit) return explicit;
  const list = (env.KUBECONFIG ?? '').split(path.delimiter).filter(Boolean);
  if (list.length > 1) return undefined;
  return list[0] ?? path.join(os.homedir(), '.kube', 'config');
}

function fileOrData(base: string, entry: Record<string, unknown>, fileKey: string, dataKey: string): Buffer | undefined {
  const data = entry[dataKey];
  if (typeof data === 'string' && data) return Buffer.from(data, 'base64');
  const file = entry[fileKey];
  if (typeof file === 'string' && file) return fs.readFileSync(path.resolve(base, file));
  return undefined;
}

/**
 * The connection settings of a context, or undefined when this client cannot reproduce kubectl's
 * behaviour for it (credentials from a plugin, a proxy, several kubeconfig files, no such context).
 */
export function restConfigFor(target: { kubeconfig?: string; context?: string }, env = process.env): RestConfig | undefined {
  const file = kubeconfigPath(target.kubeconfig, env);
  if (!file || !fs.existsSync(file)) return undefined;
  let cfg: KubeconfigFile;
  try {
    cfg = (parseYaml(fs.readFileSync(file, 'utf8')) ?? {}) as KubeconfigFile;
  } catch {
    return undefined;
  }
  const contextName = target.context ?? cfg['current-context'];
  const context = cfg.contexts?.find((c) => c.name === contextName)?.context;
  if (!context) return undefined;
  const cluster = cfg.clusters?.find((c) => c.name === context.cluster)?.cluster;
  const user = (context.user ? cfg.users?.find((u) => u.name === context.user)?.user : {}) ?? undefined;
  if (!cluster || user === undefined || typeof cluster.server !== 'string') return undefined;
  if (cluster['proxy-url'] || cluster['tls-server-name'] || user.exec || user['auth-provider'] || user.as || user['as-groups']) return undefined;
  const base = path.dirname(path.resolve(file));
  try {
    const server = new URL(cluster.server);
    if (server.protocol !== 'https:' && server.protocol !== 'http:') return undefined;
    const tokenFile = typeof user.tokenFile === 'string' ? fs.readFileSync(path.resolve(base, user.tokenFile), 'utf8').trim() : undefined;
    return {
      server,
      ca: fileOrData(base, cluster, 'certificate-authority', 'certificate-authority-data'),
      cert: fileOrData(base, user, 'client-certificate', 'client-certificate-data'),
      key: fileOrData(base, user, 'client-key', 'client-key-data'),
      token: typeof user.token === 'string' ? user.token : tokenFile,
      basic: typeof user.username === 'string' && typeof user.password === 'string' ? { username: user.username, password: user.password } : undefined,
      insecure: cluster['insecure-skip-tls-verify'] === true,
      namespace: context.namespace || 'default',
      source: `context "${contextName}" of ${file}`,
    };
  } catch {
    return undefined;
  }
}

export interface ResourceInfo {
  kind: string;
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
}

// The built-in resources this toolkit reads and writes, under every name kubectl accepts for them
// that the scripts use (plural, singular, short name, plural.group) and by Kind.
const RESOURCES: [kind: string, group: string, version: string, plural: string, namespaced: boolean, short: string[]][] = [
  ['Namespace', '', 'v1', 'namespaces', false, ['ns']],
  ['Node', '', 'v1', 'nodes', false, ['no']],
  ['Pod', '', 'v1', 'pods', true, ['po']],
  ['Secret', '', 'v1', 'secrets', true, []],
  ['ConfigMap', '', 'v1', 'configmaps', true, ['cm']],
  ['Service', '', 'v1', 'services', true, ['svc']],
  ['ServiceAccount', '', 'v1', 'serviceaccounts', true, ['sa']],
  ['Event', '', 'v1', 'events', true, ['ev']],
  ['PersistentVolumeClaim', '', 'v1', 'persistentvolumeclaims', true, ['pvc']],
  ['Endpoints', '', 'v1', 'endpoints', true, ['ep']],
  ['Deployment', 'apps', 'v1', 'deployments', true, ['deploy']],
  ['StatefulSet', 'apps', 'v1', 'statefulsets', true, ['sts']],
  ['ReplicaSet', 'apps', 'v1', 'replicasets', true, ['rs']],
  ['DaemonSet', 'apps', 'v1', 'daemonsets', true, ['ds']],
  ['Job', 'batch', 'v1', 'jobs', true, []],
  ['CronJob', 'batch', 'v1', 'cronjobs', true, ['cj']],
  ['HorizontalPodAutoscaler', 'autoscaling', 'v2', 'horizontalpodautoscalers', true, ['hpa']],
  ['PodDisruptionBudget', 'policy', 'v1', 'poddisruptionbudgets', true, ['pdb']],
  ['NetworkPolicy', 'networking.k8s.io', 'v1', 'networkpolicies', true, ['netpol']],
  ['Ingress', 'networking.k8s.io', 'v1', 'ingresses', true, ['ing']],
  ['Lease', 'coordination.k8s.io', 'v1', 'leases', true, []],
];

const BY_NAME = new Map<string, ResourceInfo>();
const BY_KIND = new Map<string, ResourceInfo>();
for (const [kind, group, version, plural, namespaced, short] of RESOURCES) {
  const info = { kind, group, version, plural, namespaced };
  BY_KIND.set(`${group ? `${group}/` : ''}${version}/${kind}`, info);
  const singular = kind.toLowerCase();
  for (const n of [plural, singular, ...short, ...(group ? [`${plural}.${group}`, `${singular}.${group}`] : [])]) BY_NAME.set(n, info);
}

/** The resource behind a kubectl-style name (`deployments`, `deploy`, `leases.coordination.k8s.io`). */
export function resourceByName(name: string): ResourceInfo | undefined {
  return BY_NAME.get(name.toLowerCase());
}

/** The resource of an object's apiVersion and kind (only versions this client knows). */
export function resourceOf(object: { apiVersion?: string; kind?: string }): ResourceInfo | undefined {
  return BY_KIND.get(`${object.apiVersion}/${object.kind}`);
}

/** The REST path of a resource (collection when name is absent). */
export function resourcePath(r: ResourceInfo, options: { namespace?: string; name?: string } = {}): string {
  const root = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  const ns = r.namespaced && options.namespace ? `/namespaces/${encodeURIComponent(options.namespace)}` : '';
  return `${root}${ns}/${r.plural}${options.name ? `/${encodeURIComponent(options.name)}` : ''}`;
}

export interface RestResponse {
  status: number;
  body: string;
}

/** Failure to reach the server at all (refused, reset, DNS, TLS) or no answer in time. */
export class RestTransportError extends Error {
  readonly timedOut: boolean;
  constructor(message: string, timedOut: boolean) {
    super(message);
    this.name = 'RestTransportError';
    this.timedOut = timedOut;
  }
}

export class KubeRest {
  readonly config: RestConfig;
  private agent: http.Agent;

  constructor(config: RestConfig) {
    this.config = config;
    const tls = config.server.protocol === 'https:';
    this.agent = tls ? new https.Agent({ keepAlive: true, ca: config.ca, cert: config.cert, key: config.key, rejectUnauthorized: !config.insecure }) : new http.Agent({ keepAlive: true });
  }

  request(method: string, urlPath: string, options: { body?: unknown; contentType?: string; timeoutMs?: number } = {}): Promise<RestResponse> {
    const url = new URL(urlPath, this.config.server);
    // A server URL with a path prefix (behind a proxy) keeps it.
    if (this.config.server.pathname !== '/') url.pathname = this.config.server.pathname.replace(/\/$/, '') + urlPath.split('?')[0];
    const payload = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': 'conduit-deploy' };
    if (payload !== undefined) {
      headers['Content-Type'] = options.contentType ?? 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(payload));
    }
    if (this.config.token) headers.Authorization = `Bearer ${this.config.token}`;
    else if (this.config.basic) headers.Authorization = `Basic ${Buffer.from(`${this.config.basic.username}:${this.config.basic.password}`).toString('base64')}`;
    const lib = url.protocol === 'https:' ? https : http;
    const timeoutMs = options.timeoutMs ?? 60_000;
    return new Promise((resolve, reject) => {
      const req = lib.request(url, { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (e) => reject(new RestTransportError(e.message, false)));
      });
      req.setTimeout(timeoutMs, () => req.destroy(new RestTransportError(`no answer from ${this.config.server.origin} in ${timeoutMs} ms`, true)));
      req.on('error', (e) => reject(e instanceof RestTransportError ? e : new RestTransportError(`${e.message} (${this.config.server.origin})`, false)));
      req.end(payload);
    });
  }

  /** Close the kept-alive connections (the process can then exit at once). */
  close(): void {
    this.agent.destroy();
  }
}
