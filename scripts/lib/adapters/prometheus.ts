// A client of the Prometheus HTTP API (instant queries, /api/v1/query), as the rollout gate uses it.
// Credentials are read from the env var or file the registry names, registered with redact() at once,
// and sent in a header only: never in a URL, argv or a message. Every failure to get an answer (DNS,
// connection refused, timeout, a 5xx, an answer that is not Prometheus's) is a PrometheusUnreachable
// error naming the URL; a query Prometheus refuses (4xx, status "error") is a plain Error with its reason.
import fs from 'node:fs';
import { UserError } from '../core/errors.ts';
import { redact, registerSecret } from '../core/redact.ts';

export interface PrometheusAuth {
  bearerTokenEnv?: string;
  bearerTokenFile?: string;
  basicAuth?: { username: string; passwordEnv?: string; passwordFile?: string };
}

export interface PrometheusEndpoint extends PrometheusAuth {
  url: string;
  timeoutSeconds: number;
}

export interface InstantSample {
  labels: Record<string, string>;
  value: number;
}

export class PrometheusUnreachable extends Error {
  override name = 'PrometheusUnreachable';
  readonly url: string;
  constructor(url: string, why: string) {
    super(`Prometheus at ${url} did not answer: ${why}`);
    this.url = url;
  }
}

function secretFrom(what: string, env?: string, file?: string): string | undefined {
  if (env !== undefined) {
    const v = process.env[env];
    if (!v) throw new UserError(`${what}: the env var ${env} is not set`, { hint: `Export ${env} (the registry names it), or change the registry entry.` });
    return v.trim();
  }
  if (file !== undefined) {
    try {
      return fs.readFileSync(file, 'utf8').trim();
    } catch (e) {
      throw new UserError(`${what}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: 'Create the file, or fix the path in the registry.' });
    }
  }
  return undefined;
}

/** The Authorization header an endpoint needs (undefined: none); its secret is registered with redact(). */
export function authorizationHeader(ep: PrometheusEndpoint, what = `Prometheus ${ep.url}`): string | undefined {
  const token = secretFrom(`${what} bearer token`, ep.bearerTokenEnv, ep.bearerTokenFile);
  if (token) {
    registerSecret(token);
    return `Bearer ${token}`;
  }
  if (ep.basicAuth) {
    const password = secretFrom(`${what} password`, ep.basicAuth.passwordEnv, ep.basicAuth.passwordFile) ?? '';
    registerSecret(password);
    const encoded = Buffer.from(`${ep.basicAuth.username}:${password}`).toString('base64');
    registerSecret(encoded);
    return `Basic ${encoded}`;
  }
  return undefined;
}

interface QueryAnswer {
  status: 'success' | 'error';
  error?: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

export class PrometheusClient {
  readonly url: string;
  private readonly timeoutMs: number;
  private readonly authorization?: string;

  constructor(ep: PrometheusEndpoint) {
    this.url = ep.url.replace(/\/+$/, '');
    this.timeoutMs = ep.timeoutSeconds * 1000;
    this.authorization = authorizationHeader(ep);
  }

  /** An instant query; NaN and ±Inf come back as such. */
  async query(expr: string, signal?: AbortSignal): Promise<InstantSample[]> {
    const body = new URLSearchParams({ query: expr });
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (this.authorization) headers.authorization = this.authorization;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    let res: Response;
    try {
      res = await fetch(`${this.url}/api/v1/query`, { method: 'POST', body, headers, signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
    } catch (e) {
      if (signal?.aborted) throw e;
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      const why = timeout.aborted ? `no answer within ${this.timeoutMs / 1000}s` : (cause?.code ?? cause?.message ?? (e as Error).message);
      throw new PrometheusUnreachable(this.url, redact(why));
    }
    const text = await res.text();
    let answer: QueryAnswer | undefined;
    try {
      answer = JSON.parse(text) as QueryAnswer;
    } catch {
      answer = undefined;
    }
    if (res.status === 401 || res.status === 403) throw new PrometheusUnreachable(this.url, `HTTP ${res.status} (the credentials were refused)`);
    if (!answer || res.status >= 500) throw new PrometheusUnreachable(this.url, `HTTP ${res.status}${answer ? '' : ', not a Prometheus API answer'}`);
    if (answer.status !== 'success' || !answer.data) throw new Error(`Prometheus at ${this.url} refused the query ${expr}: ${redact(answer.error ?? `HTTP ${res.status}`)}`);
    if (answer.data.resultType !== 'vector') throw new Error(`Prometheus at ${this.url} answered ${expr} with a ${answer.data.resultType}, not a vector`);
    return answer.data.result.map((r) => ({ labels: r.metric, value: Number(r.value[1]) }));
  }
}
