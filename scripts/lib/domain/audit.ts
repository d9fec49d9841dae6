// The audit trail of changes made by the toolkit, kept in the cluster next to what it describes:
// a ConfigMap `conduit-audit` per namespace, one JSON entry per data key. Keys sort by time, so the
// trail reads in order; it is bounded (entries and bytes) so it never outgrows a ConfigMap.
// An entry never holds a secret: every string is redacted (registered secrets, URL credentials,
// KEY=value assignments) and every field whose name says "secret" is masked, whatever its value.
// Writes are read-modify-write guarded by resourceVersion, retried on conflict, so concurrent writers
// never lose each other's entries.
import crypto from 'node:crypto';
import { UserError } from '../core/errors.ts';
import { isKubeError, type Kube, type KubeObject } from '../adapters/kube.ts';
import { redact } from '../core/redact.ts';

export const AUDIT_CONFIGMAP = 'conduit-audit';
/** Entries kept per namespace (oldest dropped first). */
export const AUDIT_MAX_ENTRIES = 200;
/** Total size of the entries kept (a ConfigMap holds at most 1 MiB). */
export const AUDIT_MAX_BYTES = 512 * 1024;
/** One entry's size limit; longer details are cut. */
export const AUDIT_MAX_ENTRY_BYTES = 8 * 1024;

export type AuditResult = 'started' | 'succeeded' | 'unchanged' | 'failed' | 'rolled-back' | 'refused' | 'dry-run' | 'interrupted' | 'recovered' | 'unlocked';

export interface AuditEntry {
  /** ISO time the action ended (or started, for `started`). */
  time: string;
  /** Who did it (user@host, or the CI identity). */
  actor: string;
  /** The verb, e.g. `deploy`, `rollback`, `restart`, `scale`, `rotate-master-key`. */
  action: string;
  result: AuditResult;
  cluster?: string;
  namespace: string;
  release?: string;
  /** One human line, e.g. `conduit 0.3.1 -> 0.3.2 (image 1.4.0)`. */
  summary?: string;
  durationMs?: number;
  /** Anything else worth keeping (revisions, chart version, values checksum): never secret values. */
  details?: Record<string, unknown>;
}

export interface StoredAuditEntry extends AuditEntry {
  key: string;
}

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

const SECRET_KEY = /(pass(word|wd)?|secret|token|api[-_]?key|master[-_]?key|credential|private[-_]?key|auth)/i;
const MASK = '***';
// Stricter than redact()'s: any NAME=value or NAME: value whose name mentions a key, password,
// secret, token or credential (e.g. CONDUIT_MASTER_KEY=..., "apiKey: ...") loses its value.
const SECRET_ASSIGNMENT = /\b([A-Za-z0-9_.-]*(?:KEY|PASS|SECRET|TOKEN|CRED)[A-Za-z0-9_.-]*)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;'"]+)/gi;

function redactText(text: string): string {
  return redact(text).replace(SECRET_ASSIGNMENT, (_m, name: string, sep: string) => `${name}${sep}${MASK}`);
}

/** A deep copy with strings redacted and every field whose name says secret masked, whatever it holds (pure). */
export function maskSecretValues<T>(value: T): T {
  const clean = (v: unknown, key?: string): unknown => {
    if (key !== undefined && SECRET_KEY.test(key) && v !== null && v !== undefined && v !== '') return MASK;
    if (typeof v === 'string') return redactText(v);
    if (Array.isArray(v)) return v.map((x) => clean(x));
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clean(x, k)]));
    return v;
  };
  return clean(value) as T;
}

/** Redact an entry (maskSecretValues) and keep it small (pure). */
export function sanitizeAuditEntry(entry: AuditEntry): AuditEntry {
  const out = maskSecretValues(entry);
  // The top-level fields are ours and known to be safe names; only their values needed redacting.
  let text = JSON.stringify(out);
  if (Buffer.byteLength(text) > AUDIT_MAX_ENTRY_BYTES && out.details) {
    out.details = { truncated: true, note: `details were larger than ${AUDIT_MAX_ENTRY_BYTES} bytes` };
    text = JSON.stringify(out);
  }
  if (Buffer.byteLength(text) > AUDIT_MAX_ENTRY_BYTES && out.summary) out.summary = out.summary.slice(0, 1000) + '…';
  return out;
}

/** A data key that sorts by time and never collides: 20261129T140501123Z-1a2b3c (pure apart from the random part). */
export function auditKey(time: Date, random = crypto.randomBytes(3).toString('hex')): string {
  return `${time.toISOString().replace(/[-:.]/g, '')}-${random}`;
}

/** Drop the oldest entries until both bounds hold (pure). */
export function pruneAuditData(data: Record<string, string>, maxEntries = AUDIT_MAX_ENTRIES, maxBytes = AUDIT_MAX_BYTES): Record<string, string> {
  const keys = Object.keys(data).sort();
  let bytes = keys.reduce((n, k) => n + Buffer.byteLength(k) + Buffer.byteLength(data[k]), 0);
  let start = Math.max(0, keys.length - maxEntries);
  for (let i = 0; i < start; i++) bytes -= Buffer.byteLength(keys[i]) + Buffer.byteLength(data[keys[i]]);
  while (bytes > maxBytes && start < keys.length - 1) {
    bytes -= Buffer.byteLength(keys[start]) + Buffer.byteLength(data[keys[start]]);
    start++;
  }
  return Object.fromEntries(keys.slice(start).map((k) => [k, data[k]]));
}

/** Parse the entries of the ConfigMap data, oldest first; unreadable entries are kept as such (pure). */
export function parseAuditData(data: Record<string, string> | undefined): StoredAuditEntry[] {
  return Object.keys(data ?? {})
    .sort()
    .map((key) => {
      try {
        return { key, ...(JSON.parse(data![key]) as AuditEntry) };
      } catch {
        return { key, time: '', actor: '', action: 'unreadable', result: 'failed' as const, namespace: '', summary: 'entry is not valid JSON' };
      }
    });
}

function auditConfigMap(namespace: string, data: Record<string, string>, previous?: ConfigMap): ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: AUDIT_CONFIGMAP,
      namespace,
      labels: { 'app.kubernetes.io/managed-by': 'conduit-deploy', 'app.kubernetes.io/component': 'audit' },
      annotations: { 'conduit.dev/description': 'Audit trail of the conduit deployment toolkit: one JSON entry per key, oldest first.' },
      ...(previous?.metadata.resourceVersion ? { resourceVersion: previous.metadata.resourceVersion } : {}),
    },
    data,
  };
}

/** Append one entry to the namespace's trail; returns the stored entry (as sanitized). */
export async function appendAudit(kube: Kube, entry: AuditEntry): Promise<StoredAuditEntry> {
  const clean = sanitizeAuditEntry(entry);
  const key = auditKey(new Date(clean.time || Date.now()));
  const value = JSON.stringify(clean);
  const ns = clean.namespace;
  for (let attempt = 0; attempt < 8; attempt++) {
    const current = await kube.get<ConfigMap>('configmap', AUDIT_CONFIGMAP, { namespace: ns });
    const data = pruneAuditData({ ...(current?.data ?? {}), [key]: value });
    try {
      if (current) await kube.replace(auditConfigMap(ns, data, current), { namespace: ns });
      else await kube.create(auditConfigMap(ns, data), { namespace: ns });
      return { key, ...clean };
    } catch (e) {
      if (isKubeError(e, 'Conflict') || isKubeError(e, 'AlreadyExists')) {
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 200));
        continue;
      }
      if (isKubeError(e, 'NotFound')) {
        throw new UserError(`cannot write the audit trail: namespace ${ns} does not exist`, { hint: 'Create the namespace first (deploy does).' });
      }
      throw e;
    }
  }
  throw new UserError(`cannot write the audit trail in ${ns}: too many concurrent writers`, { hint: 'Retry the operation.' });
}

/** The namespace's trail, oldest first (the last `limit` entries when given). */
export async function readAudit(kube: Kube, namespace: string, options: { limit?: number } = {}): Promise<StoredAuditEntry[]> {
  const cm = await kube.get<ConfigMap>('configmap', AUDIT_CONFIGMAP, { namespace });
  const entries = parseAuditData(cm?.data);
  return options.limit ? entries.slice(-options.limit) : entries;
}
