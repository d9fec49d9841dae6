// The one way this toolkit asks a container registry something: the OCI distribution HTTP API
// (`/v2/<repository>/manifests/<reference>`), with the anonymous or credentialed bearer-token flow a
// 401's WWW-Authenticate challenge asks for, or HTTP basic auth. Reads only; nothing is pulled.
// Image references are parsed the way Docker and the kubelet read them (docker.io default, the
// `library/` prefix of official images, an implicit `latest`). Loopback registries are spoken to
// over plain HTTP, every other one over HTTPS. Credentials are only ever sent in headers, never
// logged, and registered with redact.ts so no message can show them.
import http from 'node:http';
import https from 'node:https';
import { registerSecret } from '../core/redact.ts';

/** Tags that upstream moves on every push: refused wherever a deployment must be reproducible. */
export const MOVING_TAGS: readonly string[] = ['latest', 'master'];

export interface ImageReference {
  /** The reference as written. */
  original: string;
  /** Registry host (with port) as Docker names it: `docker.io` for Docker Hub. */
  registry: string;
  /** Repository path inside the registry (`library/redis` for Docker Hub's official images). */
  repository: string;
  /** The tag, `latest` when neither a tag nor a digest is written. */
  tag?: string;
  /** `algorithm:hex`; when present it is what the registry is asked for (the tag is then informational). */
  digest?: string;
}

export class ImageReferenceError extends Error {
  constructor(reference: string, why: string) {
    super(`"${reference}" is not a valid image reference: ${why}`);
    this.name = 'ImageReferenceError';
  }
}

const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$/;
const HOST = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::\d{1,5})?$/;

/** Parse `[registry/]repository[:tag][@digest]` (throws ImageReferenceError). */
export function parseImageReference(reference: string): ImageReference {
  const ref = reference.trim();
  if (!ref) throw new ImageReferenceError(reference, 'it is empty');
  let name = ref;
  let digest: string | undefined;
  const at = name.indexOf('@');
  if (at >= 0) {
    digest = name.slice(at + 1);
    name = name.slice(0, at);
    if (!DIGEST.test(digest)) throw new ImageReferenceError(reference, `the digest "${digest}" is not algorithm:hex (e.g. sha256:<64 hex digits>)`);
  }
  let tag: string | undefined;
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
    if (!TAG.test(tag)) throw new ImageReferenceError(reference, `the tag "${tag}" may only hold letters, digits, "_", "." and "-" (at most 128, not starting with "." or "-")`);
  }
  const slash = name.indexOf('/');
  const first = slash >= 0 ? name.slice(0, slash) : '';
  // As Docker decides: the first component is a registry when it looks like a host (a dot, a port, localhost).
  const hasRegistry = slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['));
  let registry = hasRegistry ? first : DOCKER_HUB;
  let repository = hasRegistry ? name.slice(slash + 1) : name;
  if (hasRegistry && !HOST.test(registry)) throw new ImageReferenceError(reference, `"${registry}" is not a registry host[:port]`);
  if (DOCKER_HUB_ALIASES.has(registry.toLowerCase())) registry = DOCKER_HUB;
  if (!repository) throw new ImageReferenceError(reference, 'the repository is empty');
  const bad = repository.split('/').find((c) => !PATH_COMPONENT.test(c));
  if (bad !== undefined) throw new ImageReferenceError(reference, `the repository component "${bad}" must be lower-case letters and digits, separated by ".", "_", "__" or "-"`);
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (!tag && !digest) tag = 'latest';
  return { original: reference, registry, repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** What the registry is asked for: the digest when there is one, else the tag. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

/** The host that serves a registry's API (Docker Hub's API is not at docker.io). */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB ? 'registry-1.docker.io' : registry;
}

/** A registry on this machine (127.0.0.0/8, ::1, localhost), spoken to over plain HTTP. */
export function isLoopbackRegistry(host: string): boolean {
  const h = host
    .replace(/:\d+$/, '')
    .replace(/^\[(.*)\]$/, '$1')
    .toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(?:\.\d{1,3}){3}$/.test(h);
}

/** `https://host` or, for a loopback registry, `http://host`. */
export function registryBaseUrl(registry: string): string {
  const host = registryApiHost(registry);
  return `${isLoopbackRegistry(host) ? 'http' : 'https'}://${host}`;
}

// --- WWW-Authenticate ----------------------------------------------------------------------------

export interface AuthChallenge {
  /** Lower-case scheme: `bearer`, `basic`, ... */
  scheme: string;
  /** Parameters, names lower-cased, quoted values unquoted. */
  params: Record<string, string>;
  /** A token68 given instead of parameters (rare for registries). */
  token68?: string;
}

const TOKEN_CHARS = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*(?=\s*(?:,|$))/;

/**
 * The challenges of a WWW-Authenticate header (RFC 7235): `Bearer realm="...",service="...",
 * scope="..."`, several challenges separated by commas, quoted strings with backslash escapes.
 */
export function parseAuthChallenges(header: string): AuthChallenge[] {
  const out: AuthChallenge[] = [];
  const s = header;
  let i = 0;
  let current: AuthChallenge | undefined;
  const skipSpace = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  while (i < s.length) {
    skipSpace();
    if (s[i] === ',') {
      i++;
      continue;
    }
    const name = TOKEN_CHARS.exec(s.slice(i))?.[0];
    if (!name) {
      i++; // not a token: skip the character rather than give up on the rest
      continue;
    }
    i += name.length;
    skipSpace();
    if (s[i] === '=' && current) {
      i++;
      skipSpace();
      let value = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          value += s[i++];
        }
        i++; // the closing quote
      } else {
        const m = /^[^,\s]*/.exec(s.slice(i))![0];
        value = m;
        i += m.length;
      }
      current.params[name.toLowerCase()] = value;
      continue;
    }
    current = { scheme: name.toLowerCase(), params: {} };
    out.push(current);
    const t68 = TOKEN68.exec(s.slice(i))?.[0];
    if (t68) {
      current.token68 = t68;
      i += t68.length;
    }
  }
  return out;
}

// --- credentials ---------------------------------------------------------------------------------

export interface RegistryCredentials {
  username: string;
  password: string;
}

type DockerAuthEntry = { auth?: string; username?: string; password?: string };

/** The host a docker config key names (`https://index.docker.io/v1/` -> docker.io, `ghcr.io` -> ghcr.io). */
function configKeyRegistry(key: string): string {
  const host = key
    .replace(/^[a-z]+:\/\//i, '')
    .split('/')[0]
    .toLowerCase();
  return DOCKER_HUB_ALIASES.has(host) ? DOCKER_HUB : host;
}

/**
 * The credentials for `registry` in a docker config (`.dockerconfigjson` with `auths`, or the older
 * `.dockercfg` map), from `username`/`password` or the base64 `auth` field. Found values are
 * registered as secrets (redact.ts). Identity tokens (OAuth refresh tokens) are not supported.
 */
export function dockerConfigCredentials(config: unknown, registry: string): RegistryCredentials | undefined {
  if (!config || typeof config !== 'object') return undefined;
  const c = config as { auths?: Record<string, DockerAuthEntry> };
  const auths = (c.auths && typeof c.auths === 'object' ? c.auths : c) as Record<string, DockerAuthEntry>;
  const want = DOCKER_HUB_ALIASES.has(registry.toLowerCase()) ? DOCKER_HUB : registry.toLowerCase();
  for (const [key, entry] of Object.entries(auths)) {
    if (!entry || typeof entry !== 'object' || configKeyRegistry(key) !== want) continue;
    let { username, password } = entry;
    if ((!username || !password) && typeof entry.auth === 'string') {
      registerSecret(entry.auth);
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const sep = decoded.indexOf(':');
      if (sep > 0) [username, password] = [decoded.slice(0, sep), decoded.slice(sep + 1)];
    }
    if (typeof username === 'string' && typeof password === 'string' && username && password) {
      registerSecret(password);
      return { username, password };
    }
  }
  return undefined;
}

// --- manifest check ------------------------------------------------------------------------------

/**
 * `found`: the registry has the manifest. `missing`: it answered that the tag (or repository) does
 * not exist. `denied`: it wants credentials it was not given, or refused those it was given (some
 * registries answer so for repositories that do not exist, too). `unreachable`: no answer to go by
 * (DNS, connection, TLS, timeout, 5xx, rate limit, an unexpected status).
 */
export type ManifestStatus = 'found' | 'missing' | 'denied' | 'unreachable';

export interface ManifestCheck {
  status: ManifestStatus;
  /** What was seen, one line without credentials (e.g. `HTTP 404 MANIFEST_UNKNOWN: manifest unknown`). */
  detail: string;
  /** The manifest digest the registry reported (found only). */
  digest?: string;
  /** Whether credentials were sent. */
  authenticated: boolean;
}

export interface ManifestCheckOptions {
  credentials?: RegistryCredentials;
  /** The whole check, token round trip included (default 5 s). */
  timeoutMs?: number;
}

/** Every manifest type a pull may resolve a tag to: indexes first, then single-platform manifests. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

const basicAuth = (c: RegistryCredentials) => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;

interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body (GET only), at most 64 KiB of it: enough for an error or a token. */
  body: string;
}

/**
 * One request with node's own client (already loaded for the Kubernetes API; fetch would load
 * undici on first use, which costs more than the check itself). Redirects are followed (three at
 * most); the Authorization header only goes to the host it was meant for.
 */
function httpRequest(url: URL, method: 'HEAD' | 'GET', headers: Record<string, string>, signal: AbortSignal, redirects = 3): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const client = url.protocol === 'http:' ? http : https;
    const req = client.request(url, { method, headers: { 'user-agent': 'conduit-deploy', ...headers }, signal }, (res) => {
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (status >= 300 && status < 400 && location && redirects > 0) {
        res.resume();
        const next = new URL(location, url);
        const { authorization, ...rest } = headers;
        resolve(httpRequest(next, method, next.host === url.host && authorization ? { ...rest, authorization } : rest, signal, redirects - 1));
        return;
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < 65536) body += chunk;
      });
      res.on('end', () => resolve({ status, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Why a request failed, in a few words (DNS name not found, connection refused, timeout, TLS). */
function networkFailure(e: unknown): string {
  const err = e as { name?: string; code?: string; message?: string };
  if (err?.name === 'AbortError' || err?.name === 'TimeoutError' || err?.code === 'ABORT_ERR') return 'no answer in time';
  const known: Record<string, string> = {
    ENOTFOUND: 'DNS name not found',
    EAI_AGAIN: 'DNS lookup failed',
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    ETIMEDOUT: 'connection timed out',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
  };
  if (err?.code && known[err.code]) return known[err.code];
  return err?.code ? `${err.code}${err.message ? ` (${err.message})` : ''}` : (err?.message ?? String(e));
}

/** The first error of a registry's JSON error body (`{"errors":[{"code","message"}]}`). */
function registryError(body: string): string | undefined {
  try {
    const e = (JSON.parse(body) as { errors?: { code?: string; message?: string }[] }).errors?.[0];
    return e ? [e.code, e.message].filter(Boolean).join(': ') : undefined;
  } catch {
    return undefined;
  }
}

const ok = (status: number) => status >= 200 && status < 300;
const digestOf = (a: HttpAnswer) => (typeof a.headers['docker-content-digest'] === 'string' ? a.headers['docker-content-digest'] : undefined);

/**
 * Ask the registry whether it has `ref`'s manifest: HEAD (GET where HEAD is not allowed) on
 * /v2/<repository>/manifests/<tag or digest>, following a bearer or basic challenge once.
 */
export async function checkManifest(ref: ImageReference, options: ManifestCheckOptions = {}): Promise<ManifestCheck> {
  const signal = AbortSignal.timeout(options.timeoutMs ?? 5000);
  const url = new URL(`${registryBaseUrl(ref.registry)}/v2/${ref.repository}/manifests/${manifestReference(ref)}`);
  const creds = options.credentials;
  let authenticated = false;
  let authorization: string | undefined;
  const request = (method: 'HEAD' | 'GET') => httpRequest(url, method, { accept: MANIFEST_ACCEPT, ...(authorization ? { authorization } : {}) }, signal);
  try {
    let res = await request('HEAD');
    if (res.status === 401) {
      const header = res.headers['www-authenticate'];
      const challenges = parseAuthChallenges(Array.isArray(header) ? header.join(', ') : (header ?? ''));
      const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
      const basic = challenges.find((c) => c.scheme === 'basic');
      if (bearer) {
        const token = await fetchToken(bearer, ref, creds, signal);
        if (token.status !== 'ok') return { status: token.status, detail: token.detail, authenticated: token.authenticated };
        authenticated = token.authenticated;
        authorization = `Bearer ${token.token}`;
      } else if (basic && creds) {
        authenticated = true;
        authorization = basicAuth(creds);
      } else {
        return { status: 'denied', detail: `HTTP 401: the registry asks for credentials${basic ? ' (basic)' : ''} and no image pull Secret holds any for it`, authenticated: false };
      }
      res = await request('HEAD');
    }
    // A few registries allow GET only.
    if (res.status === 405 || res.status === 501) res = await request('GET');
    if (ok(res.status)) return { status: 'found', detail: `HTTP ${res.status}`, digest: digestOf(res), authenticated };
    if (res.status === 404) {
      // A HEAD answer has no body: one GET says whether the tag or the whole repository is unknown.
      const again = await request('GET').catch(() => undefined);
      if (again && ok(again.status)) return { status: 'found', detail: `HTTP ${again.status}`, digest: digestOf(again), authenticated };
      const why = again?.status === 404 ? registryError(again.body) : undefined;
      return { status: 'missing', detail: `HTTP 404${why ? ` ${why}` : ''}`, authenticated };
    }
    if (res.status === 401 || res.status === 403) {
      return {
        status: 'denied',
        detail: `HTTP ${res.status}: ${authenticated ? 'the credentials of the image pull Secret were refused, or the repository does not exist' : 'anonymous access refused (a private repository, or one that does not exist)'}`,
        authenticated,
      };
    }
    return { status: 'unreachable', detail: `HTTP ${res.status}${res.status === 429 ? ' (rate limited)' : res.status >= 500 ? ' (registry error)' : ''}`, authenticated };
  } catch (e) {
    return { status: 'unreachable', detail: networkFailure(e), authenticated };
  }
}

type TokenResult = { status: 'ok'; token: string; authenticated: boolean } | { status: Exclude<ManifestStatus, 'found'>; detail: string; authenticated: boolean };

/** The bearer token flow: GET realm?service=...&scope=repository:<repo>:pull, with basic auth when there are credentials. */
async function fetchToken(challenge: AuthChallenge, ref: ImageReference, creds: RegistryCredentials | undefined, signal: AbortSignal): Promise<TokenResult> {
  let realm: URL;
  try {
    realm = new URL(challenge.params.realm);
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') throw new Error('not http(s)');
  } catch {
    return { status: 'unreachable', detail: `the registry's token realm "${challenge.params.realm}" is not an http(s) URL`, authenticated: false };
  }
  realm.searchParams.set('scope', challenge.params.scope ?? `repository:${ref.repository}:pull`);
  if (challenge.params.service) realm.searchParams.set('service', challenge.params.service);
  // Credentials go to the token service only over HTTPS (or to this machine).
  const sendCreds = Boolean(creds) && (realm.protocol === 'https:' || isLoopbackRegistry(realm.host));
  const res = await httpRequest(realm, 'GET', sendCreds ? { authorization: basicAuth(creds!) } : {}, signal);
  if (res.status === 401 || res.status === 403) {
    return {
      status: 'denied',
      detail: `HTTP ${res.status} from the token service ${realm.host}: ${sendCreds ? 'the credentials of the image pull Secret were refused' : 'anonymous access refused'}`,
      authenticated: sendCreds,
    };
  }
  if (!ok(res.status)) return { status: 'unreachable', detail: `HTTP ${res.status} from the token service ${realm.host}`, authenticated: sendCreds };
  let token: string | undefined;
  try {
    const body = JSON.parse(res.body) as { token?: string; access_token?: string };
    token = body.token ?? body.access_token;
  } catch {
    token = undefined;
  }
  if (!token) return { status: 'unreachable', detail: `the token service ${realm.host} answered without a token`, authenticated: sendCreds };
  registerSecret(token);
  return { status: 'ok', token, authenticated: sendCreds };
}
