#!/usr/bin/env -S npx zx
// tools.ts: list and install the pinned external tools (helm 3 and 4, kubeconform, ...): official
// release downloads first, source builds as the fallback.
import { runCommand } from './lib/core/cli.ts';
import { usageError } from './lib/core/errors.ts';
import { RELEASE_PLATFORMS } from './lib/adapters/releases.ts';
import { installTool, isReady, originText, overrideEnvVar, releaseUrls, resolveToolStatus, TOOLS, toolNames, toolSpec } from './lib/adapters/tools.ts';
import { run } from './lib/core/exec.ts';
import { collectFacts, evaluate, realProbes, renderChecks, verdict } from './lib/engines/tools.ts';
import { localClusterStatus } from './lib/engines/cluster.ts';
import { formatMs, table } from './lib/core/ui.ts';

const spec = {
  name: 'tools.ts',
  summary: 'List and install the pinned external tools, cached per user outside the repository: the official release binaries (checksum and version verified), else built from source.',
  usage: ['npx zx scripts/tools.ts list [--verify] [--json]', 'npx zx scripts/tools.ts install [NAME...] [--json]', 'npx zx scripts/tools.ts urls', 'npx zx scripts/tools.ts doctor [--json]'],
  verbs: {
    list: 'Print every tool with its pinned version, path, state and where it comes from (cache: downloaded or built, PATH, env override; for a missing one: download or build).',
    install:
      'Install the named tools (all when none is named): download the official release, or build it from source when that fails; a tool already installed, or on the PATH at the pinned version, is left alone.',
    urls: 'Print the official URLs (binaries and checksum files, linux amd64 and arm64) an internal mirror must hold.',
    doctor: 'Check this machine: Node, Go, module proxy, release hosts, disk, tool cache, container engine, local cluster; each problem with its fix. Exit 1 when something required is missing.',
  },
  flags: {
    verify: { type: 'boolean' as const, description: 'With list: run each installed binary and show the version it reports.' },
  },
  examples: [
    'npx zx scripts/tools.ts list',
    'npx zx scripts/tools.ts install helm helm3 kubeconform',
    'CONDUIT_TOOLS_MIRROR=https://mirror.example.com/conduit-tools npx zx scripts/tools.ts install',
    'npx zx scripts/tools.ts urls | (cd /srv/conduit-tools && wget --force-directories -i -)   # fill a mirror: <host>/<path>',
    'npx zx scripts/tools.ts doctor',
  ],
  notes: [
    'Environment:',
    '  CONDUIT_CACHE_DIR          cache root (default: $XDG_CACHE_HOME/conduit-deploy or ~/.cache/conduit-deploy)',
    '  CONDUIT_TOOL_<NAME>        use this binary instead of the pinned build (e.g. CONDUIT_TOOL_HELM3=/usr/local/bin/helm)',
    '  CONDUIT_NO_TOOL_INSTALL=1  never install on demand; fail when a tool is missing',
    '  CONDUIT_TOOLS_SOURCE       auto (default: official release download, source build when it fails), download (never build), build (never download)',
    '  CONDUIT_TOOLS_MIRROR       base URL of an internal mirror laid out as <base>/<host>/<path of the official URL> (http, https or file)',
    '',
    'A download is checked against the checksum its publisher serves and must report the pinned version; any failure is one',
    'line and the tool is built from source instead (Go >= 1.26). With no release host reachable that is said once per run.',
    'A binary on the PATH that reports exactly the pinned version is used as it is. See docs/tools.md.',
  ],
};

await runCommand(spec, async ({ flags, positionals, reporter }) => {
  const [verb, ...names] = positionals;
  if (verb === 'list') {
    if (names.length) throw usageError(`list takes no names (got ${names.join(' ')})`);
    const rows = [];
    for (const t of TOOLS) {
      const st = await resolveToolStatus(t);
      let reported = '';
      if (flags.verify && isReady(st)) {
        const r = await run(st.path, t.versionArgs, { timeoutMs: 20_000 });
        reported = (r.stdout || r.stderr).trim().split('\n')[0] ?? '';
      }
      rows.push({ ...st, from: originText(t, st), override: overrideEnvVar(t.name), reported });
    }
    const human = table(
      ['tool', 'version', 'state', 'from', 'path', ...(flags.verify ? ['reports'] : [])],
      rows.map((r) => [r.name, r.version, r.state, r.from, r.path, ...(flags.verify ? [r.reported] : [])]),
    );
    reporter.result(human, { ok: true, tools: rows });
    return 0;
  }
  if (verb === 'install') {
    const wanted = names.length ? names : toolNames();
    wanted.forEach((n) => toolSpec(n)); // unknown names fail before anything is built
    const results: { name: string; version: string; path: string; state: string; built: boolean; via?: string; ms: number }[] = [];
    for (const name of wanted) {
      const started = performance.now();
      const r = await reporter.step(`${name} ${toolSpec(name).version}`, (progress) => installTool(name, progress));
      results.push({ name, version: r.status.version, path: r.status.path, state: r.status.state, built: r.built, via: r.via, ms: Math.round(performance.now() - started) });
    }
    const list = (via: string) => results.filter((r) => r.via === via).map((b) => `${b.name} ${formatMs(b.ms)}`);
    const [downloaded, built] = [list('download'), list('build')];
    const human =
      `${results.length} tool(s) ready, ${downloaded.length} downloaded${downloaded.length ? ` (${downloaded.join(', ')})` : ''}, ` +
      `${built.length} built from source${built.length ? ` (${built.join(', ')})` : ''}.`;
    reporter.result(human, { ok: true, tools: results });
    return 0;
  }
  if (verb === 'urls') {
    if (names.length) throw usageError(`urls takes no names (got ${names.join(' ')})`);
    const urls = releaseUrls(RELEASE_PLATFORMS);
    reporter.result(urls.join('\n'), { ok: true, urls });
    return 0;
  }
  if (verb === 'doctor') {
    if (names.length) throw usageError(`doctor takes no names (got ${names.join(' ')})`);
    const facts = await reporter.step('probe Node, Go, module proxy, release hosts, disk, tools, container engine, local cluster', () => collectFacts(realProbes(localClusterStatus)));
    const checks = evaluate(facts);
    const v = verdict(checks);
    reporter.result(renderChecks(checks), { ok: v.ok, failed: v.failed, warnings: v.warnings, checks, facts });
    return v.exitCode;
  }
  throw usageError(verb ? `unknown verb "${verb}"` : 'a verb is required', 'Use: tools.ts list | install [NAME...] | urls | doctor  (see --help)');
});
