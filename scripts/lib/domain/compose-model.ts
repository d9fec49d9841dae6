// The Compose project as data: env files, variable interpolation (the Compose Specification's
// `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `$$`),
// profiles, start order, and the checks `compose.ts up` makes before it starts anything.
// Pure logic: no process is started here, so every rule is unit-tested.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { UserError, usageError } from '../core/errors.ts';
import { displayPath } from '../core/paths.ts';
import { MOVING_TAGS } from '../adapters/registry.ts';

export type Env = Record<string, string>;

export interface EnvEntry {
  key: string;
  value: string;
  line: number;
}

/** Parse a dotenv file (KEY=VALUE, `export` allowed, '#' comments, single/double quotes). */
export function parseEnvText(text: string, file = 'env file'): EnvEntry[] {
  const entries: EnvEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new UserError(`${file}:${i + 1}: not a KEY=VALUE line: ${JSON.stringify(raw.slice(0, 40))}`, { hint: 'Each line is NAME=value; comments start with #.' });
    let value = m[2];
    const q = value[0];
    if ((q === '"' || q === "'") && value.length >= 2) {
      const end = value.indexOf(q, 1);
      if (end < 0) throw new UserError(`${file}:${i + 1}: ${m[1]} has an unterminated ${q} quote`);
      value = value.slice(1, end);
      if (q === '"') value = value.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    } else {
      value = value.replace(/\s+#.*$/, '').trim();
    }
    entries.push({ key: m[1], value, line: i + 1 });
  });
  return entries;
}

export function readEnvFile(file: string): { env: Env; entries: EnvEntry[] } {
  if (!fs.existsSync(file)) {
    throw new UserError(`env file ${displayPath(file)} does not exist`, {
      hint: 'Create it with `npx zx scripts/compose.ts init` (every secret generated), or copy compose/.env.example and fill in every value.',
    });
  }
  const entries = parseEnvText(fs.readFileSync(file, 'utf8'), displayPath(file));
  const env: Env = {};
  for (const e of entries) env[e.key] = e.value;
  return { env, entries };
}

export interface VariableUse {
  name: string;
  /** `:?` / `?`: the file refuses to render without it. */
  required: boolean;
  /** The default after `:-` / `-`, when one is given. */
  fallback?: string;
  message?: string;
}

const VAR = /\$(?:(\$)|([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?+])((?:[^}\\]|\\.)*))?\})/g;

export class InterpolationError extends UserError {}

/** Interpolate one string. `strict`: a `:?` variable that is missing throws; otherwise it renders empty. */
export function interpolate(value: string, env: Env, where: string, strict = true): string {
  return value.replace(VAR, (_m, dollar: string | undefined, bare: string | undefined, name: string | undefined, colon: string, op: string, arg: string) => {
    if (dollar) return '$';
    const key = (bare ?? name) as string;
    const v = env[key];
    const unset = v === undefined;
    const empty = unset || (colon === ':' && v === '');
    if (!op) return v ?? '';
    if (op === '-') return empty ? interpolate(arg ?? '', env, where, strict) : (v as string);
    if (op === '+') return empty ? '' : interpolate(arg ?? '', env, where, strict);
    // op === '?'
    if (empty) {
      if (!strict) return '';
      throw new InterpolationError(`${where}: required variable ${key} is ${unset ? 'not set' : 'empty'}${arg ? `: ${arg}` : ''}`, {
        hint: `Set ${key} in the env file (see compose/.env.example).`,
      });
    }
    return v as string;
  });
}

/** Every variable a string refers to. */
export function variablesIn(value: string): VariableUse[] {
  const out: VariableUse[] = [];
  for (const m of value.matchAll(VAR)) {
    if (m[1]) continue;
    const name = (m[2] ?? m[3]) as string;
    const op = m[5];
    out.push({ name, required: op === '?', ...(op === '-' ? { fallback: m[6] } : {}), ...(op === '?' && m[6] ? { message: m[6] } : {}) });
    if (m[6]) out.push(...variablesIn(m[6]));
  }
  return out;
}

/** Apply fn to every string in a YAML-like tree (keys stay as they are), with a path for messages. */
export function mapStrings(node: unknown, fn: (s: string, at: string) => string, at = ''): unknown {
  if (typeof node === 'string') return fn(node, at);
  if (Array.isArray(node)) return node.map((v, i) => mapStrings(v, fn, `${at}[${i}]`));
  if (node && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) out[k] = mapStrings(v, fn, at ? `${at}.${k}` : k);
    return out;
  }
  return node;
}

export interface ComposeService {
  image?: string;
  build?: unknown;
  profiles?: string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  environment?: Record<string, string | number | boolean | null> | string[];
  env_file?: string | string[];
  volumes?: (string | Record<string, unknown>)[];
  healthcheck?: Record<string, unknown>;
  logging?: { driver?: string; options?: Record<string, string | number> };
  'x-conduit-required'?: string[];
  [key: string]: unknown;
}

export interface ComposeDocument {
  name?: string;
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
  networks?: Record<string, unknown>;
  [key: string]: unknown;
}

export function loadComposeFile(file: string): ComposeDocument {
  if (!fs.existsSync(file)) throw usageError(`compose file ${displayPath(file)} does not exist`, 'Pass the stack file with --file (default: compose/compose.yaml).');
  let doc: unknown;
  try {
    doc = YAML.parse(fs.readFileSync(file, 'utf8'), { merge: true, maxAliasCount: 1000 });
  } catch (e) {
    throw new UserError(`${displayPath(file)} is not valid YAML: ${(e as Error).message}`);
  }
  if (!doc || typeof doc !== 'object' || !('services' in doc) || typeof (doc as ComposeDocument).services !== 'object') {
    throw new UserError(`${displayPath(file)} has no services: mapping`, { hint: 'A Compose file lists its containers under services:.' });
  }
  return doc as ComposeDocument;
}

/** Services that run for the given profiles: those without profiles, plus those in a named profile. */
export function activeServices(doc: ComposeDocument, profiles: readonly string[]): string[] {
  const known = new Set(Object.values(doc.services).flatMap((s) => s.profiles ?? []));
  for (const p of profiles) {
    if (!known.has(p)) throw usageError(`unknown profile "${p}"`, `Profiles in this file: ${[...known].sort().join(', ') || '(none)'}.`);
  }
  return Object.entries(doc.services)
    .filter(([, s]) => !s.profiles?.length || s.profiles.some((p) => profiles.includes(p)))
    .map(([n]) => n);
}

export function dependenciesOf(service: ComposeService): Record<string, string> {
  const d = service.depends_on;
  if (!d) return {};
  if (Array.isArray(d)) return Object.fromEntries(d.map((n) => [n, 'service_started']));
  return Object.fromEntries(Object.entries(d).map(([n, v]) => [n, v?.condition ?? 'service_started']));
}

/** Start order in layers: every service comes after all it depends on. A cycle or missing dependency is an error. */
export function startLayers(doc: ComposeDocument, services: readonly string[]): string[][] {
  const active = new Set(services);
  const pending = new Map(services.map((s) => [s, Object.keys(dependenciesOf(doc.services[s]))]));
  for (const [s, deps] of pending) {
    for (const d of deps) {
      if (!doc.services[d]) throw new UserError(`service ${s} depends on ${d}, which the file does not define`);
      if (!active.has(d)) throw new UserError(`service ${s} depends on ${d}, which is not active with the chosen profiles`, { hint: `Add --profile for ${d}'s profile.` });
    }
  }
  const layers: string[][] = [];
  const done = new Set<string>();
  while (pending.size) {
    const ready = [...pending]
      .filter(([, deps]) => deps.every((d) => done.has(d)))
      .map(([s]) => s)
      .sort();
    if (!ready.length) throw new UserError(`depends_on has a cycle among: ${[...pending.keys()].join(', ')}`);
    for (const s of ready) {
      pending.delete(s);
      done.add(s);
    }
    layers.push(ready);
  }
  return layers;
}

/** Interpolate the active services (and the top-level volumes/networks) with the env. */
export function resolveDocument(doc: ComposeDocument, env: Env, services: readonly string[], strict = true): ComposeDocument {
  const out: ComposeDocument = { services: {} };
  if (doc.name) out.name = doc.name;
  for (const s of services) out.services[s] = mapStrings(doc.services[s], (v, at) => interpolate(v, env, `services.${s}.${at}`, strict)) as ComposeService;
  for (const key of ['volumes', 'networks', 'configs', 'secrets'] as const) {
    if (doc[key]) (out as Record<string, unknown>)[key] = mapStrings(doc[key], (v, at) => interpolate(v, env, `${key}.${at}`, strict));
  }
  return out;
}

/** Every variable the active services use, with whether the file requires it. */
export function variablesUsed(doc: ComposeDocument, services: readonly string[]): Map<string, VariableUse> {
  const uses = new Map<string, VariableUse>();
  const add = (u: VariableUse) => {
    const prev = uses.get(u.name);
    uses.set(u.name, { ...u, required: u.required || Boolean(prev?.required), fallback: u.fallback ?? prev?.fallback, message: u.message ?? prev?.message });
  };
  const scan = (node: unknown) => mapStrings(node, (v) => (variablesIn(v).forEach(add), v));
  for (const s of services) {
    scan(doc.services[s]);
    for (const n of doc.services[s]['x-conduit-required'] ?? []) add({ name: n, required: true, message: `service ${s} needs it` });
  }
  for (const key of ['volumes', 'networks'] as const) if (doc[key]) scan(doc[key]);
  return uses;
}

// ---- env checks -----------------------------------------------------------------------------

export interface EnvProblem {
  variable: string;
  problem: string;
  hint: string;
}

/** Variable names that hold credentials: they get the password rules and are redacted everywhere. */
export function isSecretName(name: string): boolean {
  return /(PASSWORD|SECRET|TOKEN|AUTH_KEY|ACCESS_KEY|API_KEY|MASTER_KEY)/.test(name) && !/^NEXT_PUBLIC_/.test(name);
}

/** Values that must never guard a real deployment. */
const KNOWN_DEFAULTS = new Set([
  'password',
  'passw0rd',
  'secret',
  'changeme',
  'change-me',
  'admin',
  'guest',
  'root',
  'postgres',
  'conduit',
  'redis',
  'rabbitmq',
  'grafana',
  'test',
  'example',
  '123456',
  '12345678',
  'default',
  'letmein',
  'alongrandomstring',
]);
/** Text that marks a stand-in for a real value, in any variable (not only credentials). */
export const PLACEHOLDER = /(change[_-]?me|replace[_-]?me|your[_-]|<[^>]*>|^x{4,}$|example|placeholder|todo|fixme)/i;

/** A value that only stands in for a real one (CHANGE_ME, <...>, example, ...) or is a well-known default. */
export function isPlaceholderValue(v: string): boolean {
  return KNOWN_DEFAULTS.has(v.toLowerCase()) || PLACEHOLDER.test(v);
}

/** Variables that end up inside a URL the app does not url-decode (DATABASE_URL, REDIS_URL). */
export const URL_EMBEDDED_SECRETS = ['POSTGRES_PASSWORD', 'REDIS_PASSWORD'];

export function checkEnv(env: Env, uses: Map<string, VariableUse>, options: { placeholders?: Env; minSecretLength?: number } = {}): EnvProblem[] {
  const problems: EnvProblem[] = [];
  const min = options.minSecretLength ?? 16;
  for (const [name, use] of [...uses].sort(([a], [b]) => a.localeCompare(b))) {
    const v = env[name];
    if (use.required && (v === undefined || v === '')) {
      problems.push({ variable: name, problem: v === undefined ? 'is not set' : 'is empty', hint: use.message ?? 'required by the compose file' });
      continue;
    }
    if (v === undefined || v === '' || !isSecretName(name)) continue;
    if (options.placeholders && options.placeholders[name] !== undefined && options.placeholders[name] === v) {
      problems.push({ variable: name, problem: 'still has the value from .env.example', hint: 'Generate a real secret, e.g. `openssl rand -hex 24`.' });
    } else if (isPlaceholderValue(v)) {
      problems.push({ variable: name, problem: 'is a placeholder or a well-known default', hint: 'Generate a real secret, e.g. `openssl rand -hex 24`.' });
    } else if (v.length < min && !/^(sk|pk)_(live|test)_/.test(v)) {
      problems.push({ variable: name, problem: `is shorter than ${min} characters`, hint: 'Use a long random value, e.g. `openssl rand -hex 24`.' });
    }
    if (URL_EMBEDDED_SECRETS.includes(name) && !/^[A-Za-z0-9]+$/.test(v)) {
      problems.push({
        variable: name,
        problem: 'contains characters other than letters and digits',
        hint: 'ConduitLLM puts it into a URL without decoding it: use letters and digits only (`openssl rand -hex 24`).',
      });
    }
  }
  return problems;
}

/** Image references that move (`latest`, `master` or no tag at all) are refused: the stack must be reproducible. */
export function checkImages(doc: ComposeDocument): EnvProblem[] {
  const problems: EnvProblem[] = [];
  for (const [name, s] of Object.entries(doc.services)) {
    if (!s.image || s.build) continue;
    const ref = s.image;
    if (ref.includes('@sha256:')) continue;
    const lastPart = ref.split('/').pop() as string;
    const tag = lastPart.includes(':') ? lastPart.split(':').pop() : undefined;
    if (!tag || MOVING_TAGS.includes(tag)) {
      problems.push({
        variable: `services.${name}.image`,
        problem: `${ref} ${tag ? `uses the moving tag ${tag}` : 'has no tag'}`,
        hint: 'Pin an immutable tag (e.g. master-<7-char commit sha>, as upstream publishes them) or a digest (@sha256:...).',
      });
    }
  }
  return problems;
}

// ---- durations --------------------------------------------------------------------------------

/** "90s", "5m", "1h30m", "250ms" or plain seconds -> milliseconds. */
export function parseDuration(text: string, flag = '--timeout'): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let consumed = '';
  for (const m of t.matchAll(re)) {
    total += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
    consumed += m[0];
  }
  if (!consumed || consumed !== t) throw usageError(`${flag} ${JSON.stringify(text)} is not a duration`, 'Use e.g. 90s, 5m or 1h30m.');
  return Math.round(total);
}

// ---- the resolved file handed to podman-compose --------------------------------------------

export interface PodmanRendering {
  /** The compose document podman-compose reads: no variables left, `$` escaped, paths absolute. */
  document: ComposeDocument;
  /** Per-service env files (the secrets travel in these, never as `-e KEY=VALUE` arguments). */
  envFiles: Record<string, string>;
}

function envLines(env: ComposeService['environment']): string[] {
  if (!env) return [];
  const pairs = Array.isArray(env)
    ? env.map((e) => [e.split('=')[0], e.includes('=') ? e.slice(e.indexOf('=') + 1) : undefined] as const)
    : Object.entries(env).map(([k, v]) => [k, v === null || v === undefined ? undefined : String(v)] as const);
  return pairs
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => {
      if (/[\r\n]/.test(v as string)) throw new UserError(`environment ${k} contains a line break, which an env file cannot carry`);
      return `${k}=${v}`;
    });
}

/**
 * podman-compose 1.0.3 (Debian's) knows no profiles, passes `environment:` as `-e KEY=VALUE`
 * arguments (visible in the process list), does not understand `max-file` log options and
 * re-interpolates `$`. So the toolkit hands it a rendered file: active services only, environment
 * moved into private env files, relative paths made absolute, `$` escaped, and json-file logging
 * mapped to podman's k8s-file with max-size.
 */
export function renderForPodman(resolved: ComposeDocument, composeDir: string, envDir: string): PodmanRendering {
  const envFiles: Record<string, string> = {};
  const services: Record<string, ComposeService> = {};
  const abs = (p: string) => (p.startsWith('.') ? path.resolve(composeDir, p) : p);
  for (const [name, svc] of Object.entries(resolved.services)) {
    const s: ComposeService = {};
    for (const [k, v] of Object.entries(svc)) if (!k.startsWith('x-') && k !== 'profiles') s[k] = v;
    const lines = envLines(svc.environment);
    delete s.environment;
    const extra = svc.env_file ? (Array.isArray(svc.env_file) ? svc.env_file : [svc.env_file]).map(abs) : [];
    if (lines.length) {
      const f = path.join(envDir, `${name}.env`);
      envFiles[f] = lines.join('\n') + '\n';
      s.env_file = [...extra, f];
    } else if (extra.length) s.env_file = extra;
    if (svc.volumes) {
      s.volumes = svc.volumes.map((v) => {
        if (typeof v !== 'string') return v.type === 'bind' && typeof v.source === 'string' ? { ...v, source: abs(v.source) } : v;
        const [src, ...rest] = v.split(':');
        return [abs(src), ...rest].join(':');
      });
    }
    if (svc.build && typeof svc.build === 'object') {
      const b = svc.build as Record<string, unknown>;
      s.build = { ...b, ...(typeof b.context === 'string' ? { context: abs(b.context) } : {}) };
    } else if (typeof svc.build === 'string') s.build = abs(svc.build);
    if (svc.logging) {
      const opts = { ...(svc.logging.options ?? {}) };
      delete opts['max-file'];
      const driver = !svc.logging.driver || svc.logging.driver === 'json-file' || svc.logging.driver === 'local' ? 'k8s-file' : svc.logging.driver;
      s.logging = { driver, ...(Object.keys(opts).length ? { options: opts } : {}) };
    }
    services[name] = s;
  }
  const document = mapStrings({ ...resolved, services }, (v) => v.replace(/\$/g, '$$$$')) as ComposeDocument;
  return { document, envFiles };
}
