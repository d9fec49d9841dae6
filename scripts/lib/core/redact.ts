// Secrets never reach a log line, a diff, an audit record or --json output.
// Every value known to be secret is registered here; redact() masks those values and any
// credentials embedded in URLs (scheme://user:password@host).

const MASK = '***';
const registered = new Set<string>();

/** Register a secret value so that every later redact() call masks it. Short values are ignored. */
export function registerSecret(value: string | undefined | null): void {
  if (value && value.length >= 4) registered.add(value);
}

export function clearSecrets(): void {
  registered.clear();
}

const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/)([^\s:@/]*):([^\s@/]+)@/gi;
const SECRET_ASSIGNMENT = /\b([A-Z0-9_]*(?:PASSWORD|SECRET|TOKEN|AUTH_KEY|ACCESS_KEY|API_KEY)[A-Z0-9_]*)=([^\s'"]+)/g;

export function redact(text: string): string {
  let out = text;
  // Longest first, so a secret that contains another is masked whole.
  for (const secret of [...registered].sort((a, b) => b.length - a.length)) {
    out = out.split(secret).join(MASK);
  }
  out = out.replace(URL_CREDENTIALS, (_m, scheme: string, user: string) => `${scheme}${user}:${MASK}@`);
  out = out.replace(SECRET_ASSIGNMENT, (_m, key: string) => `${key}=${MASK}`);
  return out;
}

/** Deep-copy a JSON-like value with every string redacted. */
export function redactValue<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map((v) => redactValue(v)) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redactValue(v);
    return out as T;
  }
  return value;
}
