// The Go toolchain as source builds see it: which `go` (CONDUIT_GO, else the PATH), its version and
// the settings a build depends on (module proxy, caches), and the oldest Go that builds the wrapper
// modules under tools/go/ (their `go` directives).
import fs from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { run } from '../core/exec.ts';
import { REPO_ROOT, isExecutable } from '../core/paths.ts';

export const DEFAULT_GOPROXY = 'https://proxy.golang.org,direct';

export function goBinary(): string | undefined {
  if (process.env.CONDUIT_GO) return process.env.CONDUIT_GO;
  return (process.env.PATH ?? '')
    .split(path.delimiter)
    .filter(Boolean)
    .map((d) => path.join(d, 'go'))
    .find(isExecutable);
}

export interface GoInfo {
  path?: string;
  /** e.g. 1.26.8 (GOVERSION without its `go` prefix). */
  version?: string;
  /** GOPROXY as `go env` resolves it (environment, then `go env -w` settings, then Go's default). */
  proxy?: string;
  cache?: string;
  modCache?: string;
  /** Why nothing else is known. */
  error?: string;
}

export async function goInfo(): Promise<GoInfo> {
  const bin = goBinary();
  if (!bin) return { error: process.env.CONDUIT_GO === undefined ? 'go is not on the PATH' : 'CONDUIT_GO is empty' };
  const r = await run(bin, ['env', '-json', 'GOVERSION', 'GOPROXY', 'GOCACHE', 'GOMODCACHE'], { timeoutMs: 20_000 });
  if (r.exitCode !== 0) return { path: bin, error: `${bin} env failed: ${(r.stderr || r.stdout).trim().split('\n')[0] ?? ''}` };
  const e = JSON.parse(r.stdout) as Record<string, string>;
  return { path: bin, version: e.GOVERSION?.replace(/^go/, ''), proxy: e.GOPROXY, cache: e.GOCACHE, modCache: e.GOMODCACHE };
}

/** The newest `go` directive among tools/go/<module>/go.mod, e.g. 1.26.0. */
export function requiredGoVersion(dir = path.join(REPO_ROOT, 'tools', 'go')): string {
  const versions = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && fs.existsSync(path.join(dir, e.name, 'go.mod')))
    .map((e) => /^go\s+(\d+\.\d+(?:\.\d+)?)\s*$/m.exec(fs.readFileSync(path.join(dir, e.name, 'go.mod'), 'utf8'))?.[1])
    .filter((v): v is string => Boolean(v));
  return versions.sort((a, b) => semver.compare(semver.coerce(a)!, semver.coerce(b)!)).pop() ?? '1.21';
}

/** Whether a Go version (1.26.8, 1.26rc1, 1.26) is at least `min`; undefined when it cannot tell. */
export function goVersionAtLeast(version: string, min: string): boolean | undefined {
  const v = semver.coerce(version);
  const m = semver.coerce(min);
  return v && m ? semver.gte(v, m) : undefined;
}

/** The first proxy of a GOPROXY list (`,` and `|` separate entries), or why there is none. */
export function firstProxy(goproxy: string): { url?: string; why?: string } {
  for (const entry of goproxy
    .split(/[,|]/)
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (entry === 'off') return { why: 'GOPROXY=off: no module can be downloaded' };
    if (entry === 'direct') return { why: 'GOPROXY goes direct to version control, which this check does not probe' };
    return { url: entry.replace(/\/+$/, '') };
  }
  return { url: DEFAULT_GOPROXY.split(',')[0] };
}
