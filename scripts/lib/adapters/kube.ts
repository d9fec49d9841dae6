// The one way this toolkit talks to a Kubernetes API: kubectl (pinned, see tools.ts) with an explicit
// kubeconfig and context on every call, objects always on stdin (never in argv, so a Secret never
// shows up in a process list), JSON out, and server errors classified by their reason so callers can
// tell "already exists" from "conflict" from "unreachable" without parsing text themselves.
// The plain reads and writes (get, list, create, replace, delete, raw paths, access reviews) go to the
// API server directly over HTTPS when the kubeconfig allows it (kuberest.ts): same answers and errors,
// without a kubectl process per call. CONDUIT_KUBE_TRANSPORT=kubectl turns that off.
import { UserError } from '../core/errors.ts';
import { formatArgv, run, type RunResult } from '../core/exec.ts';
import { KubeRest, resourceByName, resourceOf, resourcePath, restConfigFor, RestTransportError, type ResourceInfo, type RestResponse } from './kuberest.ts';
import { redact } from '../core/redact.ts';

export interface KubeTarget {
  /** Context name in the kubeconfig; the kubeconfig's current context when absent. */
  context?: string;
  /** Path of the kubeconfig; kubectl's default ($KUBECONFIG or ~/.kube/config) when absent. */
  kubeconfig?: string;
}

/** A Kubernetes object as kubectl returns it (the fields this toolkit reads are typed). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    ownerReferences?: { kind: string; name: string; uid: string; controller?: boolean }[];
    generation?: number;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface KubeList<T = KubeObject> {
  items: T[];
}

/** The reason the API server (or the connection) gave for a failure. */
export type KubeErrorReason = 'NotFound' | 'AlreadyExists' | 'Conflict' | 'Forbidden' | 'Unauthorized' | 'Invalid' | 'BadRequest' | 'Timeout' | 'Unreachable' | 'Other';

export class KubeError extends Error {
  readonly reason: KubeErrorReason;
  readonly result: RunResult;
  constructor(reason: KubeErrorReason, result: RunResult) {
    const text = redact((result.stderr || result.stdout).trim().split('\n').slice(-10).join('\n'));
    super(`${result.command} failed (${reason}): ${text}`);
    this.name = 'KubeError';
    this.reason = reason;
    this.result = result;
  }
}

export function isKubeError(e: unknown, reason?: KubeErrorReason): e is KubeError {
  return e instanceof KubeError && (reason === undefined || e.reason === reason);
}

const SERVER_REASONS: Record<string, KubeErrorReason> = {
  NotFound: 'NotFound',
  AlreadyExists: 'AlreadyExists',
  Conflict: 'Conflict',
  Forbidden: 'Forbidden',
  Unauthorized: 'Unauthorized',
  Invalid: 'Invalid',
  BadRequest: 'BadRequest',
  Timeout: 'Timeout',
  ServerTimeout: 'Timeout',
};

/** Classify kubectl's stderr (pure; exported for tests). */
export function classifyKubectlError(stderr: string, timedOut = false): KubeErrorReason {
  if (timedOut) return 'Timeout';
  const server = /Error from server \((\w+)\)/.exec(stderr);
  if (server) return SERVER_REASONS[server[1]] ?? 'Other';
  if (/the object has been modified|Operation cannot be fulfilled/.test(stderr)) return 'Conflict';
  if (/\bnot found\b/i.test(stderr) && /Error from server|NotFound/.test(stderr)) return 'NotFound';
  if (/already exists/.test(stderr)) return 'AlreadyExists';
  if (/Unable to connect to the server|connection refused|The connection to the server .* was refused|no such host|i\/o timeout|context deadline exceeded/.test(stderr)) {
    return 'Unreachable';
  }
  if (/error: context "[^"]*" does not exist|no context exists with the name|cannot stat kubeconfig|stat .*: no such file/.test(stderr)) return 'Unreachable';
  if (/is invalid:|error validating|strict decoding error|unknown field/.test(stderr)) return 'Invalid';
  return 'Other';
}

// HTTP status -> the Status reason the API server would give, for answers without a Status body.
const HTTP_REASONS: Record<number, string> = { 400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 409: 'Conflict', 422: 'Invalid', 504: 'Timeout' };

export interface CallOptions {
  namespace?: string;
  input?: string;
  timeoutMs?: number;
}

export interface ApplyOptions {
  namespace?: string;
  /** Field manager name recorded by server-side apply (default conduit-deploy). */
  fieldManager?: string;
  /** Take over fields owned by another manager instead of failing with a conflict. */
  forceConflicts?: boolean;
  /** 'server': the API server validates and admits the objects but stores nothing. */
  dryRun?: 'server';
  timeoutMs?: number;
}

export interface KubeEvent {
  type: string;
  reason: string;
  message: string;
  object: string;
  count: number;
  lastSeen: string;
}

/** Serialise objects for kubectl's stdin: JSON list documents are accepted by every kubectl verb. */
export function toKubectlInput(objects: readonly object[] | object): string {
  const items = Array.isArray(objects) ? objects : [objects];
  if (items.length === 1) return JSON.stringify(items[0]);
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
}

export class Kube {
  readonly kubectl: string;
  readonly target: KubeTarget;

  private restClient?: KubeRest | null;

  /** `direct: false`: every call through kubectl, as with CONDUIT_KUBE_TRANSPORT=kubectl. */
  constructor(kubectl: string, target: KubeTarget = {}, options: { direct?: boolean } = {}) {
    this.kubectl = kubectl;
    this.target = { ...target };
    if (options.direct === false) this.restClient = null;
  }

  /** The direct API client, or null when this target needs kubectl (see kuberest.ts). */
  get rest(): KubeRest | null {
    if (this.restClient === undefined) {
      const config = process.env.CONDUIT_KUBE_TRANSPORT === 'kubectl' ? undefined : restConfigFor(this.target);
      this.restClient = config ? new KubeRest(config) : null;
    }
    return this.restClient;
  }

  /** One API request; a non-2xx answer or no connection becomes a KubeError like kubectl's. */
  private async request(method: string, urlPath: string, options: { body?: unknown; timeoutMs?: number } = {}): Promise<RestResponse> {
    const rest = this.rest!;
    const command = `${method} ${urlPath.split('?')[0]}`;
    const result = (exitCode: number, stderr: string, timedOut = false): RunResult => ({ command, argv: [], exitCode, stdout: '', stderr, ms: 0, timedOut });
    let res: RestResponse;
    try {
      res = await rest.request(method, urlPath, options);
    } catch (e) {
      if (!(e instanceof RestTransportError)) throw e;
      throw new KubeError(e.timedOut ? 'Timeout' : 'Unreachable', result(-1, `Unable to connect to the server: ${e.message}`, e.timedOut));
    }
    if (res.status >= 200 && res.status < 300) return res;
    let status: { reason?: string; message?: string } = {};
    try {
      status = JSON.parse(res.body) as typeof status;
    } catch {
      status = { message: res.body.trim().slice(0, 500) };
    }
    const reason = status.reason ?? HTTP_REASONS[res.status] ?? 'InternalError';
    throw new KubeError(SERVER_REASONS[reason] ?? (res.status === 409 ? 'Conflict' : 'Other'), result(res.status, `Error from server (${reason}): ${status.message ?? `HTTP ${res.status}`}`));
  }

  private async requestJson<T>(method: string, urlPath: string, options: { body?: unknown; timeoutMs?: number } = {}): Promise<T> {
    return JSON.parse((await this.request(method, urlPath, options)).body) as T;
  }

  /** The resource of a kubectl-style name when the direct client can serve it. */
  private restResource(kind: string): ResourceInfo | undefined {
    return this.rest ? resourceByName(kind) : undefined;
  }

  private restNamespace(r: ResourceInfo, namespace?: string): string | undefined {
    return r.namespaced ? (namespace ?? this.rest!.config.namespace) : undefined;
  }

  /** Close kept-alive API connections. */
  close(): void {
    this.restClient?.close();
  }

  /** The global flags that pin every call to one cluster. */
  globalArgs(): string[] {
    const a: string[] = [];
    if (this.target.kubeconfig) a.push('--kubeconfig', this.target.kubeconfig);
    if (this.target.context) a.push('--context', this.target.context);
    return a;
  }

  /** The full argv of one call (for plans and dry runs). */
  argv(args: readonly string[], namespace?: string): string[] {
    return [...this.globalArgs(), ...(namespace ? ['--namespace', namespace] : []), ...args];
  }

  describe(args: readonly string[], namespace?: string): string {
    return formatArgv('kubectl', this.argv(args, namespace));
  }

  /** Run kubectl and return the raw result, whatever its exit code. */
  async exec(args: readonly string[], options: CallOptions = {}): Promise<RunResult> {
    return run(this.kubectl, this.argv(args, options.namespace), { input: options.input, timeoutMs: options.timeoutMs ?? 120_000 });
  }

  /** Run kubectl; a non-zero exit becomes a classified KubeError. Returns stdout. */
  async call(args: readonly string[], options: CallOptions = {}): Promise<string> {
    const r = await this.exec(args, options);
    if (r.exitCode !== 0) throw new KubeError(classifyKubectlError(r.stderr, r.timedOut), r);
    return r.stdout;
  }

  async callJson<T>(args: readonly string[], options: CallOptions = {}): Promise<T> {
    const out = await this.call([...args, '-o', 'json'], options);
    return JSON.parse(out) as T;
  }

  /** Server-side apply from stdin; returns the applied objects as the server stored them. */
  async apply(objects: readonly object[] | object, options: ApplyOptions = {}): Promise<KubeObject[]> {
    const args = ['apply', '--server-side', '--field-manager', options.fieldManager ?? 'conduit-deploy', '-f', '-'];
    if (options.forceConflicts) args.push('--force-conflicts');
    if (options.dryRun) args.push('--dry-run=server');
    const out = await this.callJson<KubeObject & Partial<KubeList>>(args, { namespace: options.namespace, input: toKubectlInput(objects), timeoutMs: options.timeoutMs });
    return out.kind === 'List' && Array.isArray(out.items) ? out.items : [out];
  }

  /** Server-side apply of a YAML/JSON manifest text (e.g. a CRD file or helm output). */
  async applyManifest(manifest: string, options: ApplyOptions = {}): Promise<string> {
    const args = ['apply', '--server-side', '--field-manager', options.fieldManager ?? 'conduit-deploy', '-f', '-'];
    if (options.forceConflicts) args.push('--force-conflicts');
    if (options.dryRun) args.push('--dry-run=server');
    return this.call(args, { namespace: options.namespace, input: manifest, timeoutMs: options.timeoutMs });
  }

  /**
   * What applying a manifest would change (server-side dry run compared with the live objects), as a
   * unified diff. kubectl masks Secret data in it; the text is redacted on top.
   */
  async diff(manifest: string, options: { namespace?: string; fieldManager?: string; timeoutMs?: number } = {}): Promise<{ changed: boolean; text: string }> {
    const args = ['diff', '--server-side', '--force-conflicts', '--field-manager', options.fieldManager ?? 'conduit-deploy', '-f', '-'];
    const r = await this.exec(args, { namespace: options.namespace, input: manifest, timeoutMs: options.timeoutMs });
    // kubectl diff: 0 no differences, 1 differences found, anything else an error.
    if (r.exitCode === 0) return { changed: false, text: '' };
    if (r.exitCode === 1 && !/^error:|Error from server/m.test(r.stderr)) return { changed: true, text: redact(r.stdout) };
    throw new KubeError(classifyKubectlError(r.stderr, r.timedOut), r);
  }

  /** Create an object; fails with reason AlreadyExists when it exists (the race-free primitive). */
  async create<T extends KubeObject>(object: T, options: CallOptions = {}): Promise<T> {
    const r = this.rest ? resourceOf(object) : undefined;
    if (r) {
      const namespace = this.restNamespace(r, object.metadata.namespace ?? options.namespace);
      return this.requestJson<T>('POST', resourcePath(r, { namespace }), { body: object, timeoutMs: options.timeoutMs });
    }
    return this.callJson<T>(['create', '-f', '-'], { ...options, input: toKubectlInput(object) });
  }

  /**
   * Replace an object. When `object.metadata.resourceVersion` is set the API server refuses the write
   * with reason Conflict if anyone changed the object since it was read (optimistic locking).
   */
  async replace<T extends KubeObject>(object: T, options: CallOptions = {}): Promise<T> {
    const r = this.rest ? resourceOf(object) : undefined;
    if (r) {
      const namespace = this.restNamespace(r, object.metadata.namespace ?? options.namespace);
      return this.requestJson<T>('PUT', resourcePath(r, { namespace, name: object.metadata.name }), { body: object, timeoutMs: options.timeoutMs });
    }
    return this.callJson<T>(['replace', '-f', '-'], { ...options, input: toKubectlInput(object) });
  }

  /** One object, or undefined when it does not exist. */
  async get<T extends KubeObject = KubeObject>(kind: string, name: string, options: CallOptions = {}): Promise<T | undefined> {
    const r = this.restResource(kind);
    try {
      if (r) return await this.requestJson<T>('GET', resourcePath(r, { namespace: this.restNamespace(r, options.namespace), name }), { timeoutMs: options.timeoutMs });
      return await this.callJson<T>(['get', kind, name], options);
    } catch (e) {
      if (isKubeError(e, 'NotFound')) return undefined;
      throw e;
    }
  }

  async list<T extends KubeObject = KubeObject>(kind: string, options: CallOptions & { selector?: string; allNamespaces?: boolean } = {}): Promise<T[]> {
    // `a,b`: one list per kind, concatenated in that order (as kubectl prints them).
    const kinds = kind.split(',');
    if (kinds.length > 1 && kinds.every((k) => this.restResource(k))) return (await Promise.all(kinds.map((k) => this.list<T>(k, options)))).flat();
    const r = this.restResource(kind);
    if (r) {
      const namespace = options.allNamespaces ? undefined : this.restNamespace(r, options.namespace);
      const query = options.selector ? `?labelSelector=${encodeURIComponent(options.selector)}` : '';
      const out = await this.requestJson<KubeList<T>>('GET', resourcePath(r, { namespace }) + query, { timeoutMs: options.timeoutMs });
      // The API leaves apiVersion and kind off list items; kubectl fills them in, and so does this.
      const apiVersion = r.group ? `${r.group}/${r.version}` : r.version;
      return (out.items ?? []).map((i) => ({ ...i, apiVersion, kind: r.kind }));
    }
    const args = ['get', kind];
    if (options.selector) args.push('--selector', options.selector);
    if (options.allNamespaces) args.push('--all-namespaces');
    const out = await this.callJson<KubeList<T>>(args, options);
    return out.items ?? [];
  }

  async patch<T extends KubeObject = KubeObject>(kind: string, name: string, patch: object, options: CallOptions & { type?: 'merge' | 'strategic' | 'json' } = {}): Promise<T> {
    // A patch travels in argv (kubectl reads patches only inline or from a file): never put a secret
    // value in one; write secrets with apply/replace, whose objects go through stdin.
    return this.callJson<T>(['patch', kind, name, '--type', options.type ?? 'merge', '--patch', JSON.stringify(patch)], options);
  }

  /** Delete; returns false when it did not exist. */
  async delete(kind: string, name: string, options: CallOptions & { wait?: boolean } = {}): Promise<boolean> {
    const r = options.wait ? undefined : this.restResource(kind);
    if (r) {
      try {
        await this.request('DELETE', resourcePath(r, { namespace: this.restNamespace(r, options.namespace), name }), { timeoutMs: options.timeoutMs });
        return true;
      } catch (e) {
        if (isKubeError(e, 'NotFound')) return false;
        throw e;
      }
    }
    const out = await this.call(['delete', kind, name, '--ignore-not-found', `--wait=${options.wait ? 'true' : 'false'}`], options);
    return out.trim().length > 0;
  }

  /** `kubectl wait --for=CONDITION` (e.g. condition=Established, delete, jsonpath=...). */
  async wait(resource: string, condition: string, options: CallOptions & { timeoutSeconds?: number; selector?: string; all?: boolean } = {}): Promise<void> {
    const timeout = options.timeoutSeconds ?? 60;
    const args = ['wait', resource, `--for=${condition}`, `--timeout=${timeout}s`];
    if (options.selector) args.push('--selector', options.selector);
    if (options.all) args.push('--all');
    await this.call(args, { ...options, timeoutMs: (timeout + 30) * 1000 });
  }

  /** Wait until a Deployment/StatefulSet/DaemonSet rollout finished; throws Timeout when it did not. */
  async rolloutStatus(resource: string, options: CallOptions & { timeoutSeconds?: number } = {}): Promise<void> {
    const timeout = options.timeoutSeconds ?? 120;
    await this.call(['rollout', 'status', resource, `--timeout=${timeout}s`, '--watch=true'], { ...options, timeoutMs: (timeout + 30) * 1000 });
  }

  /** Events of a namespace, oldest first; with `involving`, only those about objects of that name. */
  async events(namespace: string, options: { involving?: string; limit?: number } = {}): Promise<KubeEvent[]> {
    type Ev = KubeObject & {
      type?: string;
      reason?: string;
      message?: string;
      count?: number;
      lastTimestamp?: string;
      eventTime?: string;
      involvedObject?: { kind?: string; name?: string };
      metadata: KubeObject['metadata'];
    };
    const items = await this.list<Ev>('events', { namespace });
    const events = items
      .filter((e) => !options.involving || e.involvedObject?.name === options.involving || e.involvedObject?.name?.startsWith(`${options.involving}-`))
      .map((e) => ({
        type: e.type ?? 'Normal',
        reason: e.reason ?? '',
        message: redact(e.message ?? ''),
        object: `${e.involvedObject?.kind ?? '?'}/${e.involvedObject?.name ?? '?'}`,
        count: e.count ?? 1,
        lastSeen: e.lastTimestamp ?? e.eventTime ?? e.metadata.creationTimestamp ?? '',
      }))
      .sort((a, b) => a.lastSeen.localeCompare(b.lastSeen));
    return options.limit ? events.slice(-options.limit) : events;
  }

  /** Container logs (redacted), e.g. target `deployment/conduit-api` or a pod name. */
  async logs(namespace: string, target: string, options: { container?: string; tail?: number; previous?: boolean; sinceSeconds?: number; allContainers?: boolean } = {}): Promise<string> {
    const args = ['logs', target, `--tail=${options.tail ?? 200}`];
    if (options.container) args.push('--container', options.container);
    if (options.allContainers) args.push('--all-containers=true');
    if (options.previous) args.push('--previous');
    if (options.sinceSeconds) args.push(`--since=${options.sinceSeconds}s`);
    return redact(await this.call(args, { namespace }));
  }

  /** `kubectl get --raw PATH` (e.g. /readyz, /version). */
  async raw(path: string, options: CallOptions = {}): Promise<string> {
    if (this.rest) return (await this.request('GET', path, { timeoutMs: options.timeoutMs })).body;
    return this.call(['get', '--raw', path], options);
  }

  /** True when the API server answers /readyz within a few seconds. */
  async reachable(timeoutMs = 10_000): Promise<boolean> {
    if (this.rest) return (await this.raw('/readyz', { timeoutMs }).catch(() => '')).trim() === 'ok';
    const r = await this.exec(['get', '--raw', '/readyz', `--request-timeout=${Math.ceil(timeoutMs / 1000)}s`], { timeoutMs: timeoutMs + 5000 });
    return r.exitCode === 0 && r.stdout.trim() === 'ok';
  }

  async serverVersion(): Promise<{ gitVersion: string; major: string; minor: string }> {
    return JSON.parse(await this.raw('/version'));
  }

  /** Whether the current identity may do VERB on RESOURCE (e.g. `create`, `leases.coordination.k8s.io`): one access review (reviewAccess). */
  async can(verb: string, resource: string, namespace?: string): Promise<boolean> {
    // `plural[.group][/subresource]`, as kubectl auth can-i reads it; a name without a group must be
    // one the client knows (kubectl would look the group up: it is asked then).
    const [res, subresource] = resource.split('/');
    const dot = res.indexOf('.');
    const known = dot < 0 ? resourceByName(res) : undefined;
    if (dot < 0 && !known) return (await this.exec(['auth', 'can-i', verb, resource], { namespace })).stdout.trim() === 'yes';
    const attributes: AccessAttributes = {
      verb,
      resource: known ? known.plural : res.slice(0, dot),
      group: known ? known.group : res.slice(dot + 1),
      subresource,
      namespace: namespace ?? this.rest?.config.namespace,
    };
    const [allowed] = await this.reviewAccess([attributes]).catch(() => [false]);
    return allowed;
  }

  /**
   * Whether the current identity may do each of `asks` (one SelfSubjectAccessReview each, the API
   * server's own authorizer answers). Direct: a few requests at a time on kept-alive connections;
   * through kubectl: one `kubectl create` of them all. Throws a KubeError when the server cannot answer.
   */
  async reviewAccess(asks: readonly AccessAttributes[]): Promise<boolean[]> {
    const reviews = asks.map((a) => ({
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      spec: { resourceAttributes: { verb: a.verb, group: a.group, resource: a.resource, subresource: a.subresource, name: a.name, namespace: a.namespace } },
    }));
    type Review = { status?: { allowed?: boolean } };
    if (this.rest) {
      const answers: boolean[] = new Array<boolean>(reviews.length);
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < reviews.length; i = next++) {
          const out = await this.requestJson<Review>('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', { body: reviews[i] });
          answers[i] = out.status?.allowed === true;
        }
      };
      await Promise.all(Array.from({ length: Math.min(8, reviews.length) }, worker));
      return answers;
    }
    if (!reviews.length) return [];
    // kubectl prints one answer per object of the List, in order. Its client-side check of an access
    // review would list the cluster's CRDs, which a namespaced identity may not: there is nothing to check.
    const out = await this.call(['create', '-f', '-', '--validate=false', '-o', 'jsonpath={.status.allowed}{"\\n"}'], { input: toKubectlInput(reviews) });
    const answers = out.split('\n').slice(0, reviews.length);
    return reviews.map((_, i) => answers[i]?.trim() === 'true');
  }
}

/** What one access review asks: VERB on RESOURCE (of GROUP, '' = core), optionally one object; no namespace = cluster-wide. */
export interface AccessAttributes {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  name?: string;
  namespace?: string;
}

/** A KubeError as a user-facing error with a hint (for scripts' top level). */
export function explainKubeError(e: KubeError, what: string, target: KubeTarget): UserError {
  const where = `${target.context ? `context "${target.context}"` : 'the current context'}${target.kubeconfig ? ` of ${target.kubeconfig}` : ''}`;
  const hints: Record<KubeErrorReason, string> = {
    Unreachable: `Check that the cluster of ${where} is running (for the built-in one: npx zx scripts/cluster.ts up).`,
    Forbidden: `Your identity in ${where} lacks the permission; ask for it or use another context.`,
    Unauthorized: `The credentials of ${where} were refused; refresh them.`,
    Timeout: 'The API server did not answer in time; retry, or check the cluster health.',
    Conflict: 'Someone changed the object at the same time; retry.',
    AlreadyExists: 'The object exists already.',
    NotFound: 'The object does not exist.',
    Invalid: 'The API server rejected the object as invalid; fix the values that produced it.',
    BadRequest: 'The API server rejected the request.',
    Other: 'See the kubectl output above.',
  };
  return new UserError(`${what}: ${e.message}`, { hint: hints[e.reason], details: { reason: e.reason } });
}
