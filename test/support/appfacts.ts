// The application facts (schemas/app-facts.yaml): what ConduitLLM reads, serves and needs at the
// commit the chart deploys, each fact with its upstream source. This module loads and validates them,
// turns a rendered chart or the Compose stack into plain data (the environment of each container, the
// probes, the scrapes), and checks that data against the facts in both directions: nothing set that
// the component does not read, nothing it requires left out, every probe and scrape aimed at an
// endpoint the component serves, with the auth it needs. Pure functions only: no process is started.
import fs from 'node:fs';
import type { ErrorObject } from 'ajv';
import YAML from 'yaml';
import { cachedValidator } from '../../scripts/lib/core/ajvcache.ts';
import { UserError } from '../../scripts/lib/core/errors.ts';
import { displayPath, repoPath } from '../../scripts/lib/core/paths.ts';
import { formatPath, formatPos, parseValuesText, pathKey, type PathSegment, type SourcePos } from '../../scripts/lib/domain/values.ts';

export const APP_FACTS_FILE = repoPath('schemas', 'app-facts.yaml');
export const APP_FACTS_SCHEMA_FILE = repoPath('schemas', 'app-facts.schema.json');

export type Component = 'api' | 'admin' | 'webui';
export const COMPONENTS: readonly Component[] = ['api', 'admin', 'webui'];
/** Components running on .NET, whose IConfiguration keys are case-insensitive. */
const DOTNET: readonly Component[] = ['api', 'admin'];

export type Condition = { var: string; set: true } | { var: string; equals: string } | { replicasAbove: number };

export interface Requirement {
  components: Component[];
  when?: Condition[];
  satisfiedBy?: string[];
  /** Under these conditions the value must match this pattern too. */
  value?: string;
  why: string;
  source?: string[];
}

export type Reader = 'app' | 'config' | 'host' | 'unread';

export interface EnvFact {
  name: string;
  match?: 'exact' | 'prefix';
  alsoNames?: string[];
  reader: Reader;
  readBy: Component[];
  via: string;
  source: string[];
  required?: Requirement[];
  value?: { pattern?: string; description: string };
  sameAcross?: Component[];
  neverSet?: true;
  why?: string;
}

export type ProbeKind = 'startup' | 'liveness' | 'readiness';

export interface EndpointFact {
  component: Component;
  path: string;
  port: number;
  checks: string;
  suitableFor: (ProbeKind | 'scrape')[];
  auth: { required: boolean; headers?: string[]; credential?: string; rejected?: string[]; penalty?: string };
  source: string[];
}

export interface MeterFact {
  meter: string;
  components: Component[];
  via: string;
  families: string[];
  produced?: string;
  source: string[];
}

export interface AppFacts {
  factsVersion: number;
  app: {
    name: string;
    repository: string;
    commit: string;
    date: string;
    version: string;
    source: string[];
    images: { tagPattern: string; tagRegex: string; platforms: string[]; repositories: Record<Component, string>; source: string[] };
  };
  components: Record<Component, { project: string; port: number; user: number; source: string[] }>;
  env: EnvFact[];
  endpoints: EndpointFact[];
  services: { name: string; components: Component[]; required: string; needs: string; source: string[] }[];
  metrics: { exporter: string; meters: MeterFact[]; notServed: { what: string; why: string; source: string[] }[] };
  redis: { evictionPolicy: string; why: string; keys: { key: string; component: string; ttl: string; loss: string; source: string[] }[] };
  database: { enums: number; source: string[]; columnTypes: { type: string; source: string[] }[] };
}

// ---- loading ---------------------------------------------------------------------------------------

/** `<path>:<line>` or `<path>:<first>-<last>`, the path relative to the upstream repository root. */
const SOURCE_REF = /^(?!\/)(?!.*\.\.\/)([A-Za-z0-9_.@+-]+(?:\/[A-Za-z0-9_.@+[\]()-]+)*):([1-9][0-9]*)(?:-([1-9][0-9]*))?$/;

export interface SourceRef {
  path: string;
  first: number;
  last: number;
}

/** Parse a `source:` entry; undefined when it is not `<path>:<line>[-<line>]` with first <= last. */
export function parseSourceRef(ref: string): SourceRef | undefined {
  const m = SOURCE_REF.exec(ref);
  if (!m) return undefined;
  const first = Number(m[2]);
  const last = m[3] ? Number(m[3]) : first;
  return last >= first ? { path: m[1], first, last } : undefined;
}

/** Every `source:` value in the facts, with the key path where it sits. */
export function allSourceRefs(facts: unknown): { at: string; path: PathSegment[]; ref: string }[] {
  const out: { at: string; path: PathSegment[]; ref: string }[] = [];
  const walk = (node: unknown, at: PathSegment[]) => {
    if (Array.isArray(node)) node.forEach((v, i) => walk(v, [...at, i]));
    else if (node && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if (k === 'source') (Array.isArray(v) ? v : [v]).forEach((r, i) => out.push({ at: formatPath([...at, k, i]), path: [...at, k, i], ref: String(r) }));
        else walk(v, [...at, k]);
      }
    }
  };
  walk(facts, []);
  return out;
}

function ajvPath(e: ErrorObject): PathSegment[] {
  const segs: PathSegment[] = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s.replace(/~1/g, '/').replace(/~0/g, '~')));
  if (e.keyword === 'additionalProperties') segs.push((e.params as { additionalProperty: string }).additionalProperty);
  return segs;
}

function compiles(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}

/** The problems of a parsed facts document beyond its schema: duplicates, dangling names, bad regexes. */
export function factsProblems(facts: AppFacts): { at: PathSegment[]; message: string }[] {
  const problems: { at: PathSegment[]; message: string }[] = [];
  const seen = new Map<string, number>();
  facts.env.forEach((f, i) => {
    for (const n of [f.name, ...(f.alsoNames ?? [])]) {
      const key = `${f.match ?? 'exact'}:${n.toUpperCase()}`;
      if (seen.has(key)) problems.push({ at: ['env', i, 'name'], message: `${n} is described twice (also env[${seen.get(key)}])` });
      seen.set(key, i);
    }
    if (f.match === 'prefix' && f.alsoNames) problems.push({ at: ['env', i, 'alsoNames'], message: 'alsoNames only goes with exact names' });
    if (f.value?.pattern && !compiles(f.value.pattern)) problems.push({ at: ['env', i, 'value', 'pattern'], message: `not a valid regular expression: ${f.value.pattern}` });
    for (const c of f.sameAcross ?? []) if (!f.readBy.includes(c)) problems.push({ at: ['env', i, 'sameAcross'], message: `${c} is in sameAcross but not in readBy` });
    (f.required ?? []).forEach((r, j) => {
      for (const c of r.components)
        if (!f.readBy.includes(c)) problems.push({ at: ['env', i, 'required', j, 'components'], message: `${c} must have ${f.name} but does not read it (readBy: ${f.readBy.join(', ')})` });
      if (r.value && !compiles(r.value)) problems.push({ at: ['env', i, 'required', j, 'value'], message: `not a valid regular expression: ${r.value}` });
      for (const c of r.components) {
        for (const alt of r.satisfiedBy ?? []) {
          const a = lookupEnvFact(facts, c, alt);
          if (!a || !a.readBy.includes(c)) problems.push({ at: ['env', i, 'required', j, 'satisfiedBy'], message: `${alt} is accepted instead of ${f.name}, but no entry says ${c} reads it` });
        }
        for (const cond of r.when ?? []) {
          if ('var' in cond && !lookupEnvFact(facts, c, cond.var)) problems.push({ at: ['env', i, 'required', j, 'when'], message: `condition on ${cond.var}, which no entry describes` });
        }
      }
    });
  });
  const endpoints = new Map<string, number>();
  facts.endpoints.forEach((e, i) => {
    const key = `${e.component} ${e.path}`;
    if (endpoints.has(key)) problems.push({ at: ['endpoints', i], message: `${key} is described twice (also endpoints[${endpoints.get(key)}])` });
    endpoints.set(key, i);
    if (e.port !== facts.components[e.component].port)
      problems.push({ at: ['endpoints', i, 'port'], message: `${e.port}, but components.${e.component}.port is ${facts.components[e.component].port}` });
  });
  if (!compiles(facts.app.images.tagRegex)) problems.push({ at: ['app', 'images', 'tagRegex'], message: 'not a valid regular expression' });
  for (const { path, ref } of allSourceRefs(facts)) {
    if (!parseSourceRef(ref)) problems.push({ at: path, message: `${ref}: not <path>:<line> or <path>:<first>-<last> with first <= last` });
  }
  return problems;
}

/** Load schemas/app-facts.yaml, validate it against its schema and its own consistency rules. */
export function loadAppFacts(file = APP_FACTS_FILE, schemaFile = APP_FACTS_SCHEMA_FILE): AppFacts {
  const name = displayPath(file);
  if (!fs.existsSync(file)) throw new UserError(`${name} does not exist`, { hint: 'Restore schemas/app-facts.yaml from the repository.' });
  const layer = parseValuesText(fs.readFileSync(file, 'utf8'), name);
  const at = (p: readonly PathSegment[]): SourcePos | undefined => {
    for (let n = p.length; n > 0; n--) {
      const pos = layer.positions.get(pathKey(p.slice(0, n)));
      if (pos) return pos;
    }
    return undefined;
  };
  const where = (p: readonly PathSegment[]) => {
    const pos = at(p);
    return `${pos ? formatPos(pos) : name}: ${formatPath(p)}`;
  };
  const validate = cachedValidator(fs.readFileSync(schemaFile, 'utf8'));
  if (!validate(layer.values)) {
    const errs = (validate.errors ?? []).filter((e) => !['if', 'oneOf'].includes(e.keyword) || (validate.errors ?? []).length === 1);
    const what = (e: ErrorObject) =>
      e.keyword === 'additionalProperties' ? `unknown key (allowed: ${Object.keys((e.parentSchema as { properties?: object })?.properties ?? {}).join(', ')})` : e.message;
    const lines = [...new Set(errs.map((e) => `${where(ajvPath(e))}: ${what(e)}`))];
    throw new UserError(`${name} is invalid:\n  ${lines.join('\n  ')}`, { hint: `Fix the entries above; ${displayPath(schemaFile)} describes every key.`, details: lines });
  }
  const facts = layer.values as unknown as AppFacts;
  const problems = factsProblems(facts).map((p) => `${where(p.at)}: ${p.message}`);
  if (problems.length)
    throw new UserError(`${name} is inconsistent:\n  ${problems.join('\n  ')}`, { hint: 'Fix the entries above (each fact once, names that exist, patterns that compile).', details: problems });
  return facts;
}

// ---- looking a name up -------------------------------------------------------------------------------

/** .NET configuration keys: case-insensitive, `:` and `__` are the same separator. */
function configKey(name: string): string {
  return name.replace(/:/g, '__').toUpperCase();
}

function namesOf(f: EnvFact): string[] {
  return [f.name, ...(f.alsoNames ?? [])];
}

/**
 * The fact about variable `name` as seen by `component`: an exact entry first, else the longest
 * matching prefix. On .NET components, entries read through IConfiguration (and host or unread ones)
 * match case-insensitively; names the app's own code reads must match exactly.
 */
export function lookupEnvFact(facts: AppFacts, component: Component, name: string): EnvFact | undefined {
  const loose = (f: EnvFact) => DOTNET.includes(component) && f.reader !== 'app';
  const exact = facts.env.find((f) => f.match !== 'prefix' && namesOf(f).some((n) => (loose(f) ? configKey(n) === configKey(name) : n === name)));
  if (exact) return exact;
  return facts.env.filter((f) => f.match === 'prefix' && (loose(f) ? configKey(name).startsWith(configKey(f.name)) : name.startsWith(f.name))).sort((a, b) => b.name.length - a.name.length)[0];
}

// ---- what a deployment sets --------------------------------------------------------------------------

/** One environment variable of a container: a literal value, or a reference (Secret, field, ...) whose value is not known. */
export interface EnvSetting {
  value?: string;
  ref?: string;
}

/** The environment of one running component (a Deployment's container, a Compose service). */
export interface Workload {
  /** Where it comes from, for messages: e.g. `chart defaults: Deployment conduit-api`. */
  origin: string;
  component: Component;
  env: Map<string, EnvSetting>;
  /** The most replicas it may run (the HPA's maxReplicas, else replicas). */
  maxReplicas: number;
}

export type FindingKind =
  'unknown' | 'unread' | 'not-read-here' | 'never-set' | 'missing' | 'bad-value' | 'differs' | 'unresolved' | 'no-endpoint' | 'wrong-port' | 'unsuitable' | 'needs-auth' | 'rejected-auth' | 'image';

export interface Finding {
  origin: string;
  component: Component | '-';
  subject: string;
  kind: FindingKind;
  message: string;
}

/** A finding about one probe or scrape of a component. */
function findingAt(u: { origin: string; component: Finding['component'] }, subject: string, kind: FindingKind, message: string): Finding {
  return { origin: u.origin, component: u.component, subject, kind, message };
}

/** Names referenced as Kubernetes dependent variables, `$(NAME)`, by other variables of the same container. */
export function expansionRefs(env: Map<string, EnvSetting>): Set<string> {
  const out = new Set<string>();
  for (const [, s] of env) for (const m of (s.value ?? '').matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) out.add(m[1]);
  return out;
}

/** A literal value with `$(NAME)` references replaced by an opaque token, for pattern checks. */
function literal(s: EnvSetting): string | undefined {
  return s.value === undefined ? undefined : s.value.replace(/\$\([A-Za-z_][A-Za-z0-9_]*\)/g, 'xREFx');
}

function describe(s: EnvSetting): string {
  return s.value !== undefined ? s.value : `<${s.ref}>`;
}

/** The setting of the variable a fact describes (any of its names, matched like lookupEnvFact). */
function settingOf(facts: AppFacts, w: Workload, fact: EnvFact): [string, EnvSetting] | undefined {
  for (const [n, s] of w.env) if (lookupEnvFact(facts, w.component, n) === fact) return [n, s];
  return undefined;
}

function isSet(facts: AppFacts, w: Workload, name: string): EnvSetting | undefined {
  const fact = lookupEnvFact(facts, w.component, name);
  if (fact && fact.match !== 'prefix') return settingOf(facts, w, fact)?.[1];
  return w.env.get(name);
}

function holds(facts: AppFacts, w: Workload, cond: Condition): boolean {
  if ('replicasAbove' in cond) return w.maxReplicas > cond.replicasAbove;
  const s = isSet(facts, w, cond.var);
  if (!s || s.value === '') return false;
  if ('set' in cond) return true;
  // A value from a Secret is unknown: assume the condition holds (ask for more, never less).
  return s.value === undefined || s.value.toLowerCase() === cond.equals.toLowerCase();
}

function srcHint(f: EnvFact): string {
  return f.source.slice(0, 2).join(', ');
}

/** Check the environment of the workloads of one deployment against the facts, both ways. */
export function checkEnv(facts: AppFacts, workloads: readonly Workload[]): Finding[] {
  const out: Finding[] = [];
  const add = (w: Workload, subject: string, kind: FindingKind, message: string) => out.push({ origin: w.origin, component: w.component, subject, kind, message: `${w.origin}: ${message}` });
  for (const w of workloads) {
    const expandedOnly = expansionRefs(w.env);
    for (const [name, s] of w.env) {
      const fact = lookupEnvFact(facts, w.component, name);
      if (!fact) {
        if (!expandedOnly.has(name)) add(w, name, 'unknown', `${w.component} sets ${name}, which no entry of app-facts says ${w.component} reads (set but not read?)`);
        continue;
      }
      if (fact.reader === 'unread' || !fact.readBy.includes(w.component)) {
        if (expandedOnly.has(name)) continue; // only there for Kubernetes' $(VAR) expansion into another variable
        if (fact.reader === 'unread') add(w, name, 'unread', `${w.component} sets ${name}, which nothing reads at this app version: ${fact.via} (${srcHint(fact)})`);
        else add(w, name, 'not-read-here', `${w.component} sets ${name}, which only ${fact.readBy.join(', ')} read(s) (${srcHint(fact)})`);
        continue;
      }
      if (fact.neverSet) add(w, name, 'never-set', `${w.component} sets ${name}, which must never be set: ${fact.why ?? fact.via}`);
      const v = literal(s);
      if (v !== undefined && fact.value?.pattern && !new RegExp(fact.value.pattern).test(v)) {
        add(w, name, 'bad-value', `${w.component}: ${name}=${JSON.stringify(describe(s))} does not match ${fact.value.pattern}: ${fact.value.description}`);
      }
    }
    for (const fact of facts.env) {
      for (const r of fact.required ?? []) {
        if (!r.components.includes(w.component) || !(r.when ?? []).every((c) => holds(facts, w, c))) continue;
        const own = settingOf(facts, w, fact);
        const alt = (r.satisfiedBy ?? []).some((n) => isSet(facts, w, n));
        const conds = (r.when ?? []).map((c) => ('replicasAbove' in c ? `more than ${c.replicasAbove} replica(s)` : 'set' in c ? `${c.var} is set` : `${c.var}=${c.equals}`));
        if (!own && !alt) {
          add(
            w,
            fact.name,
            'missing',
            `${w.component} requires ${fact.name}${conds.length ? ` (when ${conds.join(' and ')})` : ''} but it is not set${r.satisfiedBy ? ` (nor ${r.satisfiedBy.join(', ')})` : ''}: ${r.why}`,
          );
        } else if (own && r.value) {
          const v = literal(own[1]);
          if (v !== undefined && !new RegExp(r.value).test(v))
            add(w, fact.name, 'bad-value', `${w.component}: ${fact.name}=${JSON.stringify(describe(own[1]))} must match ${r.value} (when ${conds.join(' and ')}): ${r.why}`);
        }
      }
    }
  }
  // Values that must agree between components.
  for (const fact of facts.env.filter((f) => f.sameAcross)) {
    const present = workloads.filter((w) => fact.sameAcross!.includes(w.component));
    if (present.length < 2) continue;
    const seen = present.map((w) => ({ w, s: settingOf(facts, w, fact)?.[1] }));
    const key = (s: EnvSetting | undefined) => (s ? (s.value !== undefined ? `=${s.value}` : `<${s.ref}>`) : '(unset)');
    if (new Set(seen.map((x) => key(x.s))).size > 1) {
      const w = seen[0].w;
      out.push({
        origin: w.origin,
        component: '-',
        subject: fact.name,
        kind: 'differs',
        message: `${w.origin}: ${fact.name} must be the same on ${fact.sameAcross!.join(', ')} but is ${seen.map((x) => `${x.w.component} ${key(x.s)}`).join(', ')}`,
      });
    }
  }
  return out;
}

// ---- probes and scrapes ----------------------------------------------------------------------------

export interface ProbeUse {
  origin: string;
  component: Component;
  /** A Kubernetes probe, a container HEALTHCHECK (treated as readiness: it gates dependants) or a helm test. */
  kind: ProbeKind | 'healthcheck' | 'test';
  path: string;
  /** The container port it reaches. */
  port: number;
  /** Header names it sends. */
  headers?: string[];
}

export interface ScrapeUse {
  origin: string;
  component: Component;
  path: string;
  /** The container port it reaches. */
  port: number;
  /** Header names it sends (`Authorization` for bearer or basic auth). */
  headers: string[];
}

function endpointOf(facts: AppFacts, component: Component, path: string): EndpointFact | undefined {
  return facts.endpoints.find((e) => e.component === component && e.path === path);
}

function authProblems(use: { origin: string; component: Component; path: string; headers?: string[] }, e: EndpointFact): Finding[] {
  const out: Finding[] = [];
  const sent = (use.headers ?? []).map((h) => h.toLowerCase());
  const subject = `${use.component} ${use.path}`;
  if (e.auth.required && !(e.auth.headers ?? []).some((h) => sent.includes(h.toLowerCase()))) {
    out.push({
      origin: use.origin,
      component: use.component,
      subject,
      kind: 'needs-auth',
      message: `${use.origin}: ${subject} needs ${e.auth.credential} in ${e.auth.headers!.join(' or ')}, but the request sends ${sent.length ? sent.join(', ') : 'no credential'}${e.auth.penalty ? `. ${e.auth.penalty}` : ''}`,
    });
  }
  const bad = (e.auth.rejected ?? []).filter((h) => sent.includes(h.toLowerCase()));
  if (bad.length)
    out.push({
      origin: use.origin,
      component: use.component,
      subject,
      kind: 'rejected-auth',
      message: `${use.origin}: ${subject} is sent ${bad.join(', ')}, which ${use.component} does not accept and counts as a failed attempt${e.auth.penalty ? `: ${e.auth.penalty}` : ''}`,
    });
  return out;
}

/** Every probe must hit an endpoint of its component, on its port, suitable for that kind of probe, without auth. */
export function checkProbes(facts: AppFacts, uses: readonly ProbeUse[]): Finding[] {
  const out: Finding[] = [];
  for (const u of uses) {
    const subject = `${u.component} ${u.kind} ${u.path}`;
    const e = endpointOf(facts, u.component, u.path);
    if (!e) {
      const known = facts.endpoints.filter((x) => x.component === u.component && x.suitableFor.some((s) => s !== 'scrape')).map((x) => x.path);
      out.push(findingAt(u, subject, 'no-endpoint', `${u.origin}: the ${u.kind} probe of ${u.component} asks ${u.path}, which ${u.component} does not serve (health endpoints: ${known.join(', ')})`));
      continue;
    }
    if (u.port !== e.port) out.push(findingAt(u, subject, 'wrong-port', `${u.origin}: the ${u.kind} probe of ${u.component} reaches port ${u.port}, but ${u.path} is served on ${e.port}`));
    const kind: ProbeKind = u.kind === 'healthcheck' || u.kind === 'test' ? 'readiness' : u.kind;
    if (!e.suitableFor.includes(kind))
      out.push(findingAt(u, subject, 'unsuitable', `${u.origin}: ${u.component} ${u.path} is not fit for a ${u.kind} probe (fit for ${e.suitableFor.join(', ')}): it checks ${e.checks}`));
    if (e.auth.required) out.push(...authProblems(u, e));
  }
  return out;
}

/** Every scrape must hit a metrics endpoint of its component, on its port, with the auth it needs and nothing it punishes. */
export function checkScrapes(facts: AppFacts, uses: readonly ScrapeUse[]): Finding[] {
  const out: Finding[] = [];
  for (const u of uses) {
    const subject = `${u.component} ${u.path}`;
    const e = endpointOf(facts, u.component, u.path);
    if (!e || !e.suitableFor.includes('scrape')) {
      const known = facts.endpoints.filter((x) => x.component === u.component && x.suitableFor.includes('scrape')).map((x) => x.path);
      out.push(findingAt(u, subject, 'no-endpoint', `${u.origin}: a scrape of ${u.component} asks ${u.path}, which is not a metrics endpoint of ${u.component} (${known.join(', ') || 'none'})`));
      continue;
    }
    if (u.port !== e.port) out.push(findingAt(u, subject, 'wrong-port', `${u.origin}: a scrape of ${u.component} ${u.path} reaches port ${u.port}, but it is served on ${e.port}`));
    out.push(...authProblems(u, e));
  }
  return out;
}

/** An image reference must name the component's upstream repository (or be a digest) and an immutable tag of the facts' commit. */
export function checkImage(facts: AppFacts, origin: string, component: Component, ref: string): Finding[] {
  const repo = facts.app.images.repositories[component];
  const tag = `master-${facts.app.commit.slice(0, 7)}`;
  const m = /^(.*?)(?::([^:/@]+))?(?:@(sha256:[0-9a-f]{64}))?$/.exec(ref);
  const name = m?.[1] ?? ref;
  const problems: string[] = [];
  if (name !== repo && !m?.[3]) problems.push(`is not ${repo}`);
  if (!m?.[3] && m?.[2] !== tag) problems.push(`has tag ${m?.[2] ?? '(none)'}, not ${tag} (${facts.app.images.tagPattern} of commit ${facts.app.commit.slice(0, 7)}, which app-facts describes)`);
  return problems.length ? [{ origin, component, subject: ref, kind: 'image', message: `${origin}: ${component} image ${ref} ${problems.join(' and ')}` }] : [];
}

// ---- the rendered chart as data ------------------------------------------------------------------------

// Rendered objects are free-form; only the fields read below are assumed.
type Obj = { kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

const COMPONENT_LABEL = 'app.kubernetes.io/component';

function componentOf(labels: Record<string, string> | undefined): Component | undefined {
  const c = labels?.[COMPONENT_LABEL];
  return COMPONENTS.includes(c as Component) ? (c as Component) : undefined;
}

function mainContainer(d: Obj, component: Component): any {
  // eslint-disable-line @typescript-eslint/no-explicit-any
  const cs = d.spec?.template?.spec?.containers ?? [];
  return cs.find((c: { name: string }) => c.name === component) ?? cs[0];
}

function dataKeys(o: Obj | undefined): Record<string, string> | undefined {
  if (!o) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.data ?? {})) out[k] = o.kind === 'Secret' ? Buffer.from(String(v), 'base64').toString() : String(v);
  for (const [k, v] of Object.entries(o.stringData ?? {})) out[k] = String(v);
  return out;
}

/** The environment of every api/admin/webui Deployment of a render; envFrom sources that the render does not contain are reported. */
export function chartWorkloads(objects: readonly Obj[], origin: string): { workloads: Workload[]; findings: Finding[] } {
  const workloads: Workload[] = [];
  const findings: Finding[] = [];
  const find = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);
  for (const d of objects.filter((o) => o.kind === 'Deployment')) {
    const component = componentOf(d.metadata.labels);
    if (!component) continue;
    const where = `${origin}: Deployment ${d.metadata.name}`;
    const c = mainContainer(d, component);
    const env = new Map<string, EnvSetting>();
    for (const src of c.envFrom ?? []) {
      const ref = src.configMapRef ?? src.secretRef;
      const kind = src.configMapRef ? 'ConfigMap' : 'Secret';
      const data = dataKeys(find(kind, ref.name));
      if (!data) {
        findings.push({
          origin: where,
          component,
          subject: ref.name,
          kind: 'unresolved',
          message: `${where}: envFrom ${kind} ${ref.name} is not part of the render, so its variables cannot be checked`,
        });
        continue;
      }
      for (const [k, v] of Object.entries(data)) env.set(`${src.prefix ?? ''}${k}`, kind === 'Secret' ? { ref: `secret ${ref.name}/${k}` } : { value: v });
    }
    for (const e of c.env ?? []) {
      const vf = e.valueFrom;
      if (!vf) env.set(e.name, { value: e.value ?? '' });
      else if (vf.secretKeyRef) env.set(e.name, { ref: `secret ${vf.secretKeyRef.name}/${vf.secretKeyRef.key}` });
      else if (vf.configMapKeyRef) {
        const v = dataKeys(find('ConfigMap', vf.configMapKeyRef.name))?.[vf.configMapKeyRef.key];
        env.set(e.name, v === undefined ? { ref: `configmap ${vf.configMapKeyRef.name}/${vf.configMapKeyRef.key}` } : { value: v });
      } else env.set(e.name, { ref: JSON.stringify(vf) });
    }
    const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler' && o.spec?.scaleTargetRef?.kind === 'Deployment' && o.spec.scaleTargetRef.name === d.metadata.name);
    workloads.push({ origin: where, component, env, maxReplicas: Number(hpa?.spec?.maxReplicas ?? d.spec?.replicas ?? 1) });
  }
  return { workloads, findings };
}

/** The container port a Service port (by name or number) leads to, and the component behind it. */
function serviceTarget(objects: readonly Obj[], service: Obj, port: string | number): { component: Component; port: number } | undefined {
  const sp = (service.spec?.ports ?? []).find((p: { name?: string; port: number }) => p.name === port || p.port === Number(port));
  if (!sp) return undefined;
  const selector: Record<string, string> = service.spec?.selector ?? {};
  const d = objects.find((o) => o.kind === 'Deployment' && Object.entries(selector).every(([k, v]) => o.spec?.template?.metadata?.labels?.[k] === v));
  const component = d && componentOf(d.spec.template.metadata.labels);
  if (!d || !component) return undefined;
  const target = sp.targetPort ?? sp.port;
  const containerPort = typeof target === 'number' ? target : containerPortNamed(mainContainer(d, component), target);
  return containerPort === undefined ? undefined : { component, port: containerPort };
}

function containerPortNamed(c: { ports?: { name?: string; containerPort: number }[] }, port: string | number): number | undefined {
  if (typeof port === 'number' || /^\d+$/.test(String(port))) return Number(port);
  return c.ports?.find((p) => p.name === port)?.containerPort;
}

/** Every httpGet probe of the api/admin/webui containers, and every helm test pod's URL. */
export function chartProbes(objects: readonly Obj[], origin: string): ProbeUse[] {
  const out: ProbeUse[] = [];
  for (const d of objects.filter((o) => o.kind === 'Deployment')) {
    const component = componentOf(d.metadata.labels);
    if (!component) continue;
    const c = mainContainer(d, component);
    for (const kind of ['startup', 'liveness', 'readiness'] as const) {
      const g = c[`${kind}Probe`]?.httpGet;
      if (!g) continue;
      out.push({
        origin: `${origin}: Deployment ${d.metadata.name}`,
        component,
        kind,
        path: g.path,
        port: containerPortNamed(c, g.port) ?? -1,
        headers: (g.httpHeaders ?? []).map((h: { name: string }) => h.name),
      });
    }
  }
  for (const pod of objects.filter((o) => o.kind === 'Pod' && o.metadata.annotations?.['helm.sh/hook'] === 'test')) {
    for (const c of pod.spec?.containers ?? []) {
      for (const word of [...(c.command ?? []), ...(c.args ?? [])]) {
        const m = /^https?:\/\/([^/:]+)(?::(\d+))?(\/[^?#]*)?/.exec(String(word));
        if (!m) continue;
        const svc = objects.find((o) => o.kind === 'Service' && o.metadata.name === m[1].split('.')[0]);
        const t = svc && serviceTarget(objects, svc, Number(m[2] ?? 80));
        if (t) out.push({ origin: `${origin}: test Pod ${pod.metadata.name}`, component: t.component, kind: 'test', path: m[3] ?? '/', port: t.port });
      }
    }
  }
  return out;
}

/** Header names an auth setting sends. */
function authHeaders(cfg: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const k of ['authorization', 'basicAuth', 'basic_auth', 'bearerTokenSecret', 'bearerTokenFile', 'bearer_token', 'bearer_token_file', 'oauth2']) if (cfg[k]) out.push('Authorization');
  for (const h of Object.keys((cfg.http_headers as Record<string, unknown>) ?? {})) out.push(h);
  return out;
}

function matchesLabels(labels: Record<string, string> | undefined, selector: Record<string, string> | undefined): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
}

/** Scrapes of api/admin/webui in a render: ServiceMonitors, PodMonitors, and plain Prometheus scrape configs shipped in Secrets or ConfigMaps. */
export function chartScrapes(objects: readonly Obj[], origin: string): { scrapes: ScrapeUse[]; findings: Finding[] } {
  const scrapes: ScrapeUse[] = [];
  const findings: Finding[] = [];
  const services = objects.filter((o) => o.kind === 'Service');
  for (const sm of objects.filter((o) => o.kind === 'ServiceMonitor')) {
    for (const svc of services.filter((s) => matchesLabels(s.metadata.labels, sm.spec?.selector?.matchLabels))) {
      for (const ep of sm.spec?.endpoints ?? []) {
        const t = serviceTarget(objects, svc, ep.port ?? ep.targetPort);
        if (!t) continue;
        scrapes.push({ origin: `${origin}: ServiceMonitor ${sm.metadata.name}`, component: t.component, path: ep.path ?? '/metrics', port: t.port, headers: authHeaders(ep) });
      }
    }
  }
  for (const pm of objects.filter((o) => o.kind === 'PodMonitor')) {
    for (const d of objects.filter((o) => o.kind === 'Deployment' && componentOf(o.metadata.labels) && matchesLabels(o.spec?.template?.metadata?.labels, pm.spec?.selector?.matchLabels))) {
      const component = componentOf(d.metadata.labels)!;
      for (const ep of pm.spec?.podMetricsEndpoints ?? []) {
        scrapes.push({
          origin: `${origin}: PodMonitor ${pm.metadata.name}`,
          component,
          path: ep.path ?? '/metrics',
          port: containerPortNamed(mainContainer(d, component), ep.port ?? ep.targetPort) ?? -1,
          headers: authHeaders(ep),
        });
      }
    }
  }
  for (const o of objects.filter((x) => x.kind === 'Secret' || x.kind === 'ConfigMap')) {
    for (const [key, text] of Object.entries(dataKeys(o) ?? {})) {
      if (!/\.ya?ml$/.test(key)) continue;
      let doc: unknown;
      try {
        doc = YAML.parse(text);
      } catch {
        continue;
      }
      const list = Array.isArray(doc) ? doc : (doc as { scrape_configs?: unknown[] } | null)?.scrape_configs;
      if (!Array.isArray(list)) continue;
      for (const sc of list as Record<string, any>[]) {
        // eslint-disable-line @typescript-eslint/no-explicit-any
        if (!sc || typeof sc !== 'object' || !sc.job_name) continue;
        const where = `${origin}: ${o.kind} ${o.metadata.name} (${key}) job ${sc.job_name}`;
        const keeps = (label: string) => (sc.relabel_configs ?? []).filter((r: any) => r.action === 'keep' && (r.source_labels ?? []).includes(label)).map((r: any) => new RegExp(`^(?:${r.regex})$`)); // eslint-disable-line @typescript-eslint/no-explicit-any
        const svcKeep = keeps('__meta_kubernetes_service_name');
        const portKeep = [...keeps('__meta_kubernetes_endpointslice_port_name'), ...keeps('__meta_kubernetes_endpoint_port_name'), ...keeps('__meta_kubernetes_service_port_name')];
        if (!svcKeep.length) continue;
        for (const svc of services.filter((s) => svcKeep.every((re: RegExp) => re.test(s.metadata.name)))) {
          for (const p of (svc.spec?.ports ?? []).filter((x: { name?: string }) => portKeep.every((re: RegExp) => re.test(x.name ?? '')))) {
            const t = serviceTarget(objects, svc, p.name ?? p.port);
            if (t) scrapes.push({ origin: where, component: t.component, path: sc.metrics_path ?? '/metrics', port: t.port, headers: authHeaders(sc) });
            else
              findings.push({
                origin: where,
                component: '-',
                subject: svc.metadata.name,
                kind: 'unresolved',
                message: `${where}: cannot follow Service ${svc.metadata.name} port ${p.name ?? p.port} to a container`,
              });
          }
        }
      }
    }
  }
  return { scrapes, findings };
}

/** The `maxmemory-policy` a rendered Redis config sets, when the chart runs Redis. */
export function chartRedisPolicy(objects: readonly Obj[]): string | undefined {
  for (const o of objects.filter((x) => x.kind === 'ConfigMap')) {
    for (const text of Object.values(dataKeys(o) ?? {})) {
      const m = /^maxmemory-policy\s+(\S+)\s*$/m.exec(text);
      if (m) return m[1];
    }
  }
  return undefined;
}

// ---- the Compose stack as data ------------------------------------------------------------------------

// Compose services are plain objects after interpolation.
type ComposeService = {
  environment?: Record<string, unknown> | string[];
  env_file?: unknown;
  deploy?: { replicas?: number };
  healthcheck?: { test?: unknown; disable?: boolean };
  [k: string]: unknown;
};

function composeEnv(s: ComposeService): Map<string, EnvSetting> {
  const env = new Map<string, EnvSetting>();
  if (Array.isArray(s.environment)) {
    for (const e of s.environment) {
      const i = e.indexOf('=');
      if (i > 0) env.set(e.slice(0, i), { value: e.slice(i + 1) });
      else env.set(e, { ref: 'host environment' });
    }
  } else for (const [k, v] of Object.entries(s.environment ?? {})) env.set(k, v === null || v === undefined ? { ref: 'host environment' } : { value: String(v) });
  return env;
}

/** The environment of the api/admin/webui services of an interpolated Compose document. */
export function composeWorkloads(services: Record<string, ComposeService>, origin: string): { workloads: Workload[]; findings: Finding[] } {
  const workloads: Workload[] = [];
  const findings: Finding[] = [];
  for (const component of COMPONENTS) {
    const s = services[component];
    if (!s) continue;
    const where = `${origin}: service ${component}`;
    if (s.env_file) findings.push({ origin: where, component, subject: 'env_file', kind: 'unresolved', message: `${where}: env_file variables cannot be checked; list them under environment:` });
    workloads.push({ origin: where, component, env: composeEnv(s), maxReplicas: Number(s.deploy?.replicas ?? 1) });
  }
  return { workloads, findings };
}

/** The first http URL in a healthcheck command, split into port and path (the container's own port). */
export function healthcheckUrl(test: unknown): { port: number; path: string } | undefined {
  const words = Array.isArray(test) ? test.map(String) : typeof test === 'string' ? [test] : [];
  for (const w of words) {
    const m = /https?:\/\/(?:localhost|127\.0\.0\.1|\[::1\])(?::(\d+))?(\/[^\s'"?#)]*)?/.exec(w);
    if (m) return { port: Number(m[1] ?? 80), path: m[2] ?? '/' };
  }
  return undefined;
}

/** Healthchecks of the api/admin/webui services of a Compose document. */
export function composeProbes(services: Record<string, ComposeService>, origin: string): ProbeUse[] {
  const out: ProbeUse[] = [];
  for (const component of COMPONENTS) {
    const hc = services[component]?.healthcheck;
    if (!hc || hc.disable) continue;
    const u = healthcheckUrl(hc.test);
    if (u) out.push({ origin: `${origin}: service ${component} healthcheck`, component, kind: 'healthcheck', ...u });
  }
  return out;
}

/** The HEALTHCHECK of a Dockerfile (the last one wins), as a probe of `component`. */
export function dockerfileProbe(text: string, component: Component, origin: string): ProbeUse | undefined {
  const joined = text.replace(/\\\r?\n/g, ' ');
  const lines = joined.split(/\r?\n/).filter((l) => /^\s*HEALTHCHECK\s/i.test(l));
  const last = lines[lines.length - 1];
  if (!last || /HEALTHCHECK\s+NONE/i.test(last)) return undefined;
  const u = healthcheckUrl(last.split(/\s+/));
  return u && { origin, component, kind: 'healthcheck', ...u };
}

/** Scrapes of api/admin/webui in a Prometheus configuration whose static targets name Compose services. */
export function prometheusScrapes(config: { scrape_configs?: Record<string, any>[] }, origin: string): ScrapeUse[] {
  // eslint-disable-line @typescript-eslint/no-explicit-any
  const out: ScrapeUse[] = [];
  for (const sc of config.scrape_configs ?? []) {
    for (const sg of sc.static_configs ?? []) {
      for (const t of sg.targets ?? []) {
        const [host, port] = String(t).split(':');
        if (!COMPONENTS.includes(host as Component)) continue;
        out.push({ origin: `${origin}: job ${sc.job_name}`, component: host as Component, path: sc.metrics_path ?? '/metrics', port: Number(port ?? 80), headers: authHeaders(sc) });
      }
    }
  }
  return out;
}

// ---- the metric catalog ----------------------------------------------------------------------------------

/** Components that export a metric family, per the facts. */
export function familyExporters(facts: AppFacts): Map<string, Set<Component>> {
  const out = new Map<string, Set<Component>>();
  for (const m of facts.metrics.meters) for (const f of m.families) for (const c of m.components) (out.get(f) ?? out.set(f, new Set()).get(f)!).add(c);
  return out;
}

export interface CatalogDisagreement {
  metric: string;
  /** wrong: the catalog names a component that does not export it; partial: a component exports it that the catalog leaves out; unknown: no meter of the facts produces it. */
  kind: 'wrong' | 'partial' | 'unknown';
  message: string;
}

/** Compare the app metrics of the metric catalog (name -> components it says export them) with the facts. */
export function compareCatalog(facts: AppFacts, catalogApp: { name: string; components: Component[] }[]): CatalogDisagreement[] {
  const exporters = familyExporters(facts);
  const out: CatalogDisagreement[] = [];
  for (const m of catalogApp) {
    const truth = exporters.get(m.name);
    if (!truth) {
      out.push({ metric: m.name, kind: 'unknown', message: `${m.name}: no meter in app-facts produces it (catalog says ${m.components.join(', ')})` });
      continue;
    }
    const wrong = m.components.filter((c) => !truth.has(c));
    if (wrong.length) out.push({ metric: m.name, kind: 'wrong', message: `${m.name}: the catalog says ${wrong.join(', ')} export(s) it; app-facts says only ${[...truth].join(', ')}` });
    const left = [...truth].filter((c) => !m.components.includes(c));
    if (left.length) out.push({ metric: m.name, kind: 'partial', message: `${m.name}: ${left.join(', ')} export(s) it too, the catalog names only ${m.components.join(', ')}` });
  }
  return out;
}
