#!/usr/bin/env -S npx zx
// tools.ts: list and install the pinned external tools (helm 3 and 4, kubeconform, ...).
import { runCommand } from './lib/cli.ts';
import { usageError } from './lib/errors.ts';
import { installTool, overrideEnvVar, TOOLS, toolNames, toolSpec, toolStatus } from './lib/tools.ts';
import { run } from './lib/exec.ts';
import { formatMs, table } from './lib/ui.ts';

const spec = {
  name: 'tools.ts',
  summary: 'List and install the pinned external tools, cached per user outside the repository.',
  usage: ['npx zx scripts/tools.ts list [--verify] [--json]', 'npx zx scripts/tools.ts install [NAME...] [--json]'],
  verbs: {
    list: 'Print every tool with its pinned version, path and state (installed, missing, override).',
    install: 'Install the named tools (all when none is named); a tool already installed is left alone.',
  },
  flags: {
    verify: { type: 'boolean' as const, description: 'With list: run each installed binary and show the version it reports.' },
  },
  examples: ['npx zx scripts/tools.ts list', 'npx zx scripts/tools.ts install helm helm3 kubeconform'],
  notes: [
    'Environment:',
    '  CONDUIT_CACHE_DIR          cache root (default: $XDG_CACHE_HOME/conduit-deploy or ~/.cache/conduit-deploy)',
    '  CONDUIT_TOOL_<NAME>        use this binary instead of the pinned build (e.g. CONDUIT_TOOL_HELM3=/usr/local/bin/helm)',
    '  CONDUIT_NO_TOOL_INSTALL=1  never build on demand; fail when a tool is missing',
  ],
};

await runCommand(spec, async ({ flags, positionals, reporter }) => {
  const [verb, ...names] = positionals;
  if (verb === 'list') {
    if (names.length) throw usageError(`list takes no names (got ${names.join(' ')})`);
    const rows = [];
    for (const t of TOOLS) {
      const st = toolStatus(t);
      let reported = '';
      if (flags.verify && ['installed', 'override', 'system'].includes(st.state)) {
        const r = await run(st.path, t.versionArgs, { timeoutMs: 20_000 });
        reported = (r.stdout || r.stderr).trim().split('\n')[0] ?? '';
      }
      rows.push({ ...st, override: overrideEnvVar(t.name), reported });
    }
    const human = table(
      ['tool', 'version', 'state', 'path', ...(flags.verify ? ['reports'] : [])],
      rows.map((r) => [r.name, r.version, r.state, r.path, ...(flags.verify ? [r.reported] : [])]),
    );
    reporter.result(human, { ok: true, tools: rows });
    return 0;
  }
  if (verb === 'install') {
    const wanted = names.length ? names : toolNames();
    wanted.forEach((n) => toolSpec(n)); // unknown names fail before anything is built
    const results = [];
    for (const name of wanted) {
      const started = performance.now();
      const r = await reporter.step(`${name} ${toolSpec(name).version}`, (progress) => installTool(name, progress));
      results.push({ name, version: r.status.version, path: r.status.path, built: r.built, ms: Math.round(performance.now() - started) });
    }
    const built = results.filter((r) => r.built);
    const human = `${results.length} tool(s) ready, ${built.length} built${built.length ? ` (${built.map((b) => `${b.name} ${formatMs(b.ms)}`).join(', ')})` : ''}.`;
    reporter.result(human, { ok: true, tools: results });
    return 0;
  }
  throw usageError(verb ? `unknown verb "${verb}"` : 'a verb is required', 'Use: tools.ts list | install [NAME...]  (see --help)');
});
