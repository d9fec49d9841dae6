// What `build.ts` builds: the component table (Dockerfile, image name), the version and revision
// read from the source checkout, the tags and OCI labels, and the lock file of pushed digests
// that `deploy.ts --images-from` reads. The plan is data; build.ts shows it and runs it.
import fs from 'node:fs';
import path from 'node:path';
import { UserError, usageError } from '../core/errors.ts';
import { run } from '../core/exec.ts';
import { displayPath, REPO_ROOT } from '../core/paths.ts';
import { buildCommand, pushCommand, showCommand, type BuildSpec, type Command, type Engine } from '../adapters/container.ts';

export interface ComponentSpec {
  name: string;
  /** Repository name under the registry (the upstream names, ghcr.io/knnlabs/<image>). */
  image: string;
  dockerfile: string;
  /** Named build contexts taken from the Dockerfile directory when present there. */
  namedContexts: string[];
  /** Built from this repository's docker/ directory instead of --source. */
  selfContained?: boolean;
  /** Version when neither --tag nor the source says one. */
  defaultVersion?: string;
  title: string;
}

export const COMPONENTS: readonly ComponentSpec[] = [
  { name: 'api', image: 'conduit-http', dockerfile: 'api.Dockerfile', namedContexts: ['healthprobe'], title: 'Core API (ConduitLLM.Http)' },
  { name: 'admin', image: 'conduit-admin', dockerfile: 'admin.Dockerfile', namedContexts: ['healthprobe'], title: 'Admin API (ConduitLLM.Admin)' },
  { name: 'webui', image: 'conduit-webui', dockerfile: 'webui.Dockerfile', namedContexts: [], title: 'WebUI (Next.js)' },
  {
    name: 'rabbitmq',
    image: 'conduit-rabbitmq',
    dockerfile: 'rabbitmq.Dockerfile',
    namedContexts: [],
    selfContained: true,
    defaultVersion: '4.2-delayed',
    title: 'RabbitMQ + delayed message exchange',
  },
];

/** `all` means the three ConduitLLM images; the RabbitMQ image is built on request. */
export const ALL = ['api', 'admin', 'webui'];

export function componentsFor(choice: string): ComponentSpec[] {
  const names =
    choice === 'all'
      ? ALL
      : choice
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
  return names.map((n) => {
    const c = COMPONENTS.find((x) => x.name === n);
    if (!c) throw usageError(`unknown component "${n}"`, `Use one of: ${COMPONENTS.map((x) => x.name).join(', ')}, all.`);
    return c;
  });
}

// ---- what the source says -------------------------------------------------------------------

export interface SourceInfo {
  dir: string;
  version?: string;
  versionFrom?: string;
  revision: string;
  shortSha: string;
  created: string;
  url: string;
  dirty: boolean;
}

const DEFAULT_SOURCE_URL = 'https://github.com/knnlabs/Conduit';

/** Turn a git remote into a browsable https URL with no credentials in it. */
export function publicSourceUrl(remote: string): string {
  const r = remote.trim();
  const scp = /^[\w.-]+@([\w.-]+):(.+?)(\.git)?$/.exec(r);
  if (scp) return `https://${scp[1]}/${scp[2]}`;
  try {
    const u = new URL(r);
    if (u.protocol !== 'https:' && u.protocol !== 'http:' && u.protocol !== 'ssh:') return DEFAULT_SOURCE_URL;
    return `https://${u.host}${u.pathname.replace(/\.git$/, '')}`;
  } catch {
    return DEFAULT_SOURCE_URL;
  }
}

/** The version a ConduitLLM checkout declares: <Version> in Directory.Build.props. */
export function versionFromSource(dir: string): { version: string; from: string } | undefined {
  const props = path.join(dir, 'Directory.Build.props');
  if (fs.existsSync(props)) {
    const m = /<Version>\s*([^<\s]+)\s*<\/Version>/.exec(fs.readFileSync(props, 'utf8'));
    if (m) return { version: m[1], from: 'Directory.Build.props' };
  }
  return undefined;
}

async function git(dir: string, args: string[]): Promise<string | undefined> {
  const r = await run('git', ['-C', dir, ...args], { timeoutMs: 30_000 });
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

export async function readSource(dir: string): Promise<SourceInfo> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw usageError(`--source ${dir} is not a directory`, 'Point --source at a ConduitLLM checkout.');
  const revision = await git(dir, ['rev-parse', 'HEAD']);
  if (!revision) throw new UserError(`${displayPath(dir)} is not a git checkout (no HEAD commit)`, { hint: 'Build from a git clone: the image tags and labels carry the commit.' });
  const shortSha = (await git(dir, ['rev-parse', '--short=7', 'HEAD'])) as string;
  const iso = (await git(dir, ['log', '-1', '--format=%cI', 'HEAD'])) as string;
  const remote = await git(dir, ['remote', 'get-url', 'origin']);
  const status = await git(dir, ['status', '--porcelain', '--untracked-files=no']);
  const found = versionFromSource(dir);
  return {
    dir,
    version: found?.version,
    versionFrom: found?.from,
    revision,
    shortSha,
    created: new Date(iso).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    url: remote ? publicSourceUrl(remote) : DEFAULT_SOURCE_URL,
    dirty: Boolean(status),
  };
}

// ---- tags and the plan ----------------------------------------------------------------------

const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const REGISTRY = /^[a-z0-9.-]+(:\d+)?(\/[a-z0-9._-]+)*$/;

export interface PlanOptions {
  components: ComponentSpec[];
  source?: SourceInfo;
  /** This repository's own checkout, for self-contained components. */
  toolkit?: SourceInfo;
  tag?: string;
  registry?: string;
  push: boolean;
  allowLatest: boolean;
  insecure: boolean;
  platform?: string;
  dockerfileDir: string;
  /** Extra --build-arg values (e.g. a mirrored base image); they cannot replace the label arguments. */
  buildArgs?: Record<string, string>;
}

const RESERVED_ARGS = ['VERSION', 'REVISION', 'CREATED', 'SOURCE'];

/** Parse repeated `--build-arg KEY=VALUE` flags. */
export function parseBuildArgs(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(v);
    if (!m) throw usageError(`--build-arg "${v}" is not KEY=VALUE`);
    if (RESERVED_ARGS.includes(m[1])) throw usageError(`--build-arg ${m[1]} is set by build.ts from the source (use --tag for the version)`);
    out[m[1]] = m[2];
  }
  return out;
}

export interface ComponentPlan {
  component: string;
  repository: string;
  version: string;
  tags: string[];
  refs: string[];
  labels: Record<string, string>;
  build: Command;
  push: Command[];
  spec: BuildSpec;
}

export function checkTag(tag: string, allowLatest: boolean, push: boolean): void {
  if (!TAG.test(tag)) throw usageError(`"${tag}" is not a valid image tag`, 'Tags use letters, digits, "_", "." and "-" (at most 128), e.g. 1.4.2.');
  if (tag === 'latest' && push && !allowLatest) {
    throw usageError('refusing to push the moving tag "latest"', 'Push a version (--tag X.Y.Z); pass --allow-latest if you really want latest.');
  }
}

export function planBuild(engine: Engine, o: PlanOptions): ComponentPlan[] {
  if (o.push && !o.registry) throw usageError('--push needs --registry', 'e.g. --registry ghcr.io/your-org');
  if (o.registry && !REGISTRY.test(o.registry)) throw usageError(`--registry "${o.registry}" is not a registry/namespace`, 'e.g. ghcr.io/your-org or 127.0.0.1:5000/conduit (lowercase, no scheme).');
  return o.components.map((c) => {
    const src = c.selfContained ? o.toolkit : o.source;
    if (!src) throw usageError(`component ${c.name} needs --source DIR (a ConduitLLM checkout)`);
    const version = o.tag ?? (c.selfContained ? c.defaultVersion : src.version);
    if (!version) {
      throw new UserError(`cannot tell the version of ${displayPath(src.dir)}: no <Version> in Directory.Build.props`, { hint: 'Pass --tag X.Y.Z.', exitCode: 2 });
    }
    checkTag(version, o.allowLatest, o.push);
    const tags = [version, `${version}-${src.shortSha}`];
    const repository = o.registry ? `${o.registry.replace(/\/$/, '')}/${c.image}` : c.image;
    const refs = tags.map((t) => `${repository}:${t}`);
    const labels = {
      'org.opencontainers.image.source': src.url,
      'org.opencontainers.image.revision': src.revision,
      'org.opencontainers.image.version': version,
      'org.opencontainers.image.created': src.created,
    };
    const dockerfile = path.join(o.dockerfileDir, c.dockerfile);
    if (!fs.existsSync(dockerfile)) throw usageError(`${displayPath(dockerfile)} does not exist`, 'Check --dockerfile-dir.');
    const ignore = `${dockerfile}.dockerignore`;
    const contexts: Record<string, string> = {};
    for (const n of c.namedContexts) {
      const d = path.join(o.dockerfileDir, n);
      if (fs.existsSync(d)) contexts[n] = d;
    }
    const spec: BuildSpec = {
      dockerfile,
      context: c.selfContained ? o.dockerfileDir : src.dir,
      ignorefile: fs.existsSync(ignore) ? ignore : undefined,
      contexts,
      buildArgs: { ...(o.buildArgs ?? {}), VERSION: version, REVISION: src.revision, CREATED: src.created, SOURCE: src.url },
      labels,
      tags: refs,
      platform: o.platform,
    };
    return {
      component: c.name,
      repository,
      version,
      tags,
      refs,
      labels,
      spec,
      build: buildCommand(engine, spec),
      push: o.push ? refs.map((r) => pushCommand(engine, r, { insecure: o.insecure })) : [],
    };
  });
}

export function planText(plans: ComponentPlan[]): string {
  return plans.map((p) => [`# ${p.component}: ${p.refs.join(', ')}`, showCommand(p.build), ...p.push.map(showCommand)].join('\n')).join('\n\n');
}

// ---- the lock file ----------------------------------------------------------------------------

export interface LockEntry {
  repository: string;
  tag: string;
  digest: string;
  /** repository@digest: what a deployment should pull. */
  image: string;
  revision: string;
  pushedAt: string;
}

export type ImageLock = Record<string, LockEntry>;

export function readLock(file: string): ImageLock {
  if (!fs.existsSync(file)) return {};
  try {
    const data = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    if (!data || typeof data !== 'object' || Array.isArray(data)) throw new Error('not an object');
    return data as ImageLock;
  } catch (e) {
    throw new UserError(`${displayPath(file)} is not a valid image lock file: ${(e as Error).message}`, { hint: 'Delete it or fix it; build.ts --push rewrites the entries it pushes.' });
  }
}

/** Merge new entries into the lock file (other components keep their entries); written atomically. */
export function writeLock(file: string, entries: ImageLock): ImageLock {
  const merged = { ...readLock(file), ...entries };
  const sorted = Object.fromEntries(Object.entries(merged).sort(([a], [b]) => a.localeCompare(b)));
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(sorted, null, 2) + '\n');
  fs.renameSync(tmp, file);
  return sorted;
}

export const DEFAULT_DOCKERFILE_DIR = path.join(REPO_ROOT, 'docker');
