// The first run on a new machine: a fresh clone of this repository with an empty tool cache runs
// `npx zx scripts/deploy.ts` until the release is deployed, on a local cluster of its own (its own
// cache directory, so a shared local cluster is not touched). The release hosts are stood in for by
// a mirror on 127.0.0.1 built from the binaries cached here (test/helpers/release-mirror.ts): the
// download path with local transfers. Target: at most 3 minutes.
// `--with-build` also measures the source-build path (CONDUIT_TOOLS_SOURCE=build, and an empty Go build
// cache so every tool compiles cold; the Go module cache stays warm): 10+ minutes on 2 cores.
// Not timed: the clone and its `npm ci` (reported). Go's module cache serves the Kubernetes OpenAPI
// document and the CRDs in both paths.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run, type RunResult } from '../scripts/lib/core/exec.ts';
import { LOCAL_BINARIES } from '../scripts/lib/engines/cluster.ts';
import { REPO_ROOT } from '../scripts/lib/core/paths.ts';
import { tool } from '../scripts/lib/adapters/tools.ts';
import { formatMs } from '../scripts/lib/core/ui.ts';
import { buildReleaseMirror, serveMirror, type MirrorServer } from '../test/helpers/release-mirror.ts';
import type { BenchCase, BenchModule } from './run.ts';

const withBuild = process.argv.includes('--with-build');
/** What `deploy.ts` to the local cluster installs: helm, kubeconform (its validation skips kube-score), the cluster's binaries. */
const DEPLOY_TOOLS = ['helm', 'kubeconform', ...LOCAL_BINARIES];
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-bench-first-run-'));
const clone = path.join(work, 'clone');
let server: MirrorServer | undefined;
let runs = 0;
const setup: string[] = [];
const log = (m: string) => process.stderr.write(`  ${m}\n`);

// As from a user's shell: `npm run bench` hands its children this repository's tsx loader through
// NODE_OPTIONS (from .npmrc), which a fresh clone cannot load before its `npm ci`.
const SHELL_ENV = { NODE_OPTIONS: undefined };

async function checked(cmd: string, args: string[], cwd: string, timeoutMs = 15 * 60_000): Promise<RunResult> {
  const r = await run(cmd, args, { cwd, timeoutMs, env: SHELL_ENV });
  if (r.exitCode !== 0) throw new Error(`${r.command} failed:\n${(r.stderr || r.stdout).slice(-3000)}`);
  return r;
}

/**
 * `git clone` of this repository; uncommitted changes of the working tree (modified, added, deleted,
 * untracked files) are carried over, so the bench measures the code as it is here.
 */
async function freshClone(): Promise<string> {
  await checked('git', ['clone', '--quiet', '--no-hardlinks', REPO_ROOT, clone], work);
  const status = (await checked('git', ['status', '--porcelain=v1', '-z', '--untracked-files=all'], REPO_ROOT)).stdout.split('\0');
  let carried = 0;
  for (let i = 0; i < status.length; i++) {
    const entry = status[i];
    if (entry.length < 4) continue;
    const file = entry.slice(3);
    if (entry[0] === 'R' || entry[0] === 'C') i++; // the next field is the old name
    const from = path.join(REPO_ROOT, file);
    const to = path.join(clone, file);
    if (fs.existsSync(from)) {
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.copyFileSync(from, to);
    } else fs.rmSync(to, { force: true });
    carried++;
  }
  return carried ? `HEAD + ${carried} uncommitted file(s) of the working tree` : 'HEAD';
}

/** How the tools of a cache got there, e.g. "10 tools downloaded, 0 built from source". */
function installedVia(cache: string): string {
  const dir = path.join(cache, 'tools');
  const via = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((d) => fs.readdirSync(path.join(dir, d.name)).map((v) => path.join(dir, d.name, v, '.installed.json')))
    .filter((f) => fs.existsSync(f))
    .map((f) => (JSON.parse(fs.readFileSync(f, 'utf8')) as { via: string }).via);
  return `${via.filter((v) => v === 'download').length} tools downloaded, ${via.filter((v) => v === 'build').length} built from source`;
}

/** `npx zx scripts/deploy.ts --yes --json` in the clone with an empty cache of its own; the cluster is removed afterwards. */
async function firstDeploy(env: Record<string, string | undefined>): Promise<void> {
  const cache = path.join(work, `cache-${++runs}`);
  const overrides = Object.fromEntries(
    Object.keys(process.env)
      .filter((k) => k.startsWith('CONDUIT_TOOL_'))
      .map((k) => [k, undefined]),
  );
  const fullEnv = { ...SHELL_ENV, ...overrides, CONDUIT_CACHE_DIR: cache, CONDUIT_NO_TOOL_INSTALL: undefined, CONDUIT_TOOLS_SOURCE: undefined, CONDUIT_TOOLS_MIRROR: undefined, ...env };
  try {
    const r = await run('npx', ['zx', 'scripts/deploy.ts', '--yes', '--json'], { cwd: clone, env: fullEnv, timeoutMs: 45 * 60_000 });
    fs.writeFileSync(path.join(work, `deploy-${runs}.log`), r.stderr);
    if (r.exitCode !== 0) throw new Error(`deploy.ts exited ${r.exitCode}:\n${r.stderr.slice(-4000)}`);
    const result = JSON.parse(r.stdout) as { ok?: boolean };
    if (!result.ok) throw new Error(`deploy.ts did not report ok:\n${r.stdout.slice(0, 2000)}`);
    if (!/create the control plane/.test(r.stderr)) throw new Error('deploy.ts did not create a local cluster of its own');
    const said = r.stderr.split('\n').filter((l) => /download failed|No release (host|mirror) is reachable/.test(l));
    if (said.length) log(`run ${runs}: ${said.join(' | ')}`);
    log(`run ${runs}: ${installedVia(cache)}`);
  } finally {
    await run('npx', ['zx', 'scripts/cluster.ts', 'down'], { cwd: clone, env: fullEnv, timeoutMs: 5 * 60_000 });
    fs.rmSync(cache, { recursive: true, force: true });
  }
}

const bench: BenchModule = {
  title: 'first-run',
  description: [
    'ours: fresh clone, empty tool cache, `npx zx scripts/deploy.ts` to the release deployed on its own local cluster;',
    '      tools downloaded from a mirror on 127.0.0.1 laid out like the release hosts (archives + checksum files made from the cached binaries)',
    withBuild
      ? 'baseline: the same with CONDUIT_TOOLS_SOURCE=build and an empty Go build cache (every tool compiled from source)'
      : 'baseline: none (add --with-build to also measure the source-build path: 10+ minutes)',
  ],
  async cases(): Promise<BenchCase[]> {
    for (const name of DEPLOY_TOOLS) await tool(name);
    let t = performance.now();
    const mirror = await buildReleaseMirror(path.join(work, 'mirror'), DEPLOY_TOOLS);
    server = await serveMirror(mirror.root);
    const mib = mirror.entries.reduce((n, e) => n + fs.statSync(e.file).size, 0) / 1024 / 1024;
    setup.push(`mirror of ${mirror.entries.length} tools (${mib.toFixed(0)} MiB to download) ${formatMs(performance.now() - t)}`);
    t = performance.now();
    const what = await freshClone();
    setup.push(`clone (${what}) ${formatMs(performance.now() - t)}`);
    t = performance.now();
    await checked('npm', ['ci', '--no-audit', '--no-fund', '--prefer-offline'], clone);
    setup.push(`npm ci ${formatMs(performance.now() - t)}`);
    log(`set-up, not timed: ${setup.join(', ')}`);
    const mirrorUrl = server.url;
    return [
      {
        name: 'fresh clone + empty tool cache: deploy.ts to a deployed release',
        reps: 1,
        maxMs: 3 * 60_000,
        ours: () => firstDeploy({ CONDUIT_TOOLS_MIRROR: mirrorUrl }),
        baseline: withBuild
          ? async () => {
              const gocache = path.join(work, `gocache-${runs + 1}`);
              try {
                await firstDeploy({ CONDUIT_TOOLS_SOURCE: 'build', GOCACHE: gocache });
              } finally {
                fs.rmSync(gocache, { recursive: true, force: true });
              }
            }
          : undefined,
        note: () => `not timed: ${setup.join(', ')}`,
      },
    ];
  },
  async teardown() {
    await server?.close();
    fs.rmSync(work, { recursive: true, force: true });
  },
};

export default bench;
