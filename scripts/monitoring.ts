#!/usr/bin/env -S npx zx
// monitoring.ts: build the dashboards from their definitions, copy dashboards and rules into the
// chart, and run every static check of the monitoring sources (catalog, dashboard lint, versions,
// chart copies, promtool).
import fs from 'node:fs';
import path from 'node:path';
import { allQueries, checkAllQueries, jsonFiles } from './lib/domain/catalog.ts';
import { syncChartFiles } from './lib/domain/chartfiles.ts';
import { runCommand } from './lib/core/cli.ts';
import { applyConfig, formatResult, lintDashboard, loadLintConfig } from './lib/domain/dashboardlint.ts';
import { CHANGELOG_FILE, DASHBOARDS_DIR, VERSIONS_FILE, changelogVersions, contentDigest, loadVersions, renderDashboards, renderVersions } from './lib/domain/dashboards.ts';
import { UserError, usageError } from './lib/core/errors.ts';
import { displayPath, repoPath } from './lib/core/paths.ts';
import { checkExpressions, checkRules, promtoolVersion, testRules } from './lib/adapters/promtool.ts';
import { ruleFiles, ruleTestFiles } from './lib/domain/rules.ts';

const spec = {
  name: 'monitoring.ts',
  summary: 'Build, ship and check the Grafana dashboards and Prometheus rules of the Conduit release.',
  usage: ['npx zx scripts/monitoring.ts build [--dry-run] [--json]', 'npx zx scripts/monitoring.ts sync [--dry-run] [--json]', 'npx zx scripts/monitoring.ts check [--no-promtool] [--json]'],
  verbs: {
    build:
      'Render dashboards/*.json from their definitions; a dashboard whose content changed gets the next version in dashboards/versions.yaml (add its CHANGELOG.md entry), then sync the chart copies.',
    sync: 'Copy alerts/*.rules.yaml and dashboards/*.json into chart/files/ and delete stale copies there.',
    check: 'Check queries against the metric catalog, lint dashboards, verify versions, changelog and chart copies, run promtool check/test rules and check every dashboard query with promtool.',
  },
  flags: {
    'dry-run': { type: 'boolean' as const, description: 'build/sync: show what would change, change nothing.' },
    'no-promtool': { type: 'boolean' as const, description: 'check: skip promtool (it is built on first use).' },
  },
  examples: ['npx zx scripts/monitoring.ts build', 'npx zx scripts/monitoring.ts check --json'],
  notes: ['Exit codes: 0 ok, 1 a check failed or the sources are out of date, 2 usage error or promtool missing.'],
};

/** Problems of the committed dashboards against versions.yaml and the changelog. */
function versionProblems(): string[] {
  const problems: string[] = [];
  const reg = loadVersions();
  const changelog = fs.existsSync(CHANGELOG_FILE) ? changelogVersions(fs.readFileSync(CHANGELOG_FILE, 'utf8')) : new Set<string>();
  const files = jsonFiles(DASHBOARDS_DIR);
  for (const file of files) {
    const d = JSON.parse(fs.readFileSync(file, 'utf8'));
    const entry = reg[d.uid];
    const where = displayPath(file);
    if (!entry) {
      problems.push(`${where}: uid ${d.uid} has no entry in ${displayPath(VERSIONS_FILE)}`);
      continue;
    }
    if (entry.file !== path.basename(file)) problems.push(`${where}: versions.yaml maps uid ${d.uid} to ${entry.file}`);
    const latest = entry.history[entry.history.length - 1];
    entry.history.forEach((h, i) => {
      if (i > 0 && h.version <= entry.history[i - 1].version) problems.push(`${where}: version ${h.version} does not increase in versions.yaml`);
      if (!changelog.has(`${d.uid} v${h.version}`)) problems.push(`${where}: ${displayPath(CHANGELOG_FILE)} has no "## ${d.uid} v${h.version}" entry`);
    });
    if (contentDigest(d) !== latest?.sha256)
      problems.push(`${where}: content changed but version ${d.version} is recorded with other content: bump the version (npx zx scripts/monitoring.ts build) and add a changelog entry`);
    if (d.version !== latest?.version) problems.push(`${where}: version ${d.version} differs from the newest recorded version ${latest?.version}`);
  }
  for (const uid of Object.keys(reg)) if (!files.some((f) => path.basename(f) === reg[uid].file)) problems.push(`${displayPath(VERSIONS_FILE)}: ${uid} names ${reg[uid].file}, which does not exist`);
  return problems;
}

await runCommand(spec, async ({ flags, positionals, reporter }) => {
  const [verb, ...rest] = positionals;
  if (rest.length) throw usageError(`unexpected arguments: ${rest.join(' ')}`);
  const dryRun = Boolean(flags['dry-run']);

  if (verb === 'build') {
    const reg = loadVersions();
    const rendered = renderDashboards(reg, true);
    const written: string[] = [];
    for (const d of rendered) {
      const file = path.join(DASHBOARDS_DIR, d.file);
      if (fs.existsSync(file) && fs.readFileSync(file, 'utf8') === d.json) continue;
      written.push(displayPath(file));
      if (!dryRun) fs.writeFileSync(file, d.json);
    }
    const versions = renderVersions(reg);
    const versionsChanged = !fs.existsSync(VERSIONS_FILE) || fs.readFileSync(VERSIONS_FILE, 'utf8') !== versions;
    if (versionsChanged && !dryRun) fs.writeFileSync(VERSIONS_FILE, versions);
    const sync = dryRun ? syncChartFiles({ check: true }) : reporter.step('sync chart copies', async () => syncChartFiles({ check: false }));
    const missingChangelog = versionsChanged && !dryRun ? versionProblems().filter((p) => p.includes('CHANGELOG')) : [];
    const lines = [
      ...rendered.map((d) => `${d.uid} v${d.version}${written.includes(displayPath(path.join(DASHBOARDS_DIR, d.file))) ? (dryRun ? ' (would write)' : ' (written)') : ''}`),
      `chart copies ${dryRun ? 'to update' : 'updated'}: ${(await sync).stale.length}`,
      ...missingChangelog.map((p) => `todo: ${p}`),
    ];
    reporter.result(lines.join('\n'), { ok: true, dryRun, dashboards: rendered.map(({ json: _j, ...d }) => d), written, chartStale: (await sync).stale, todo: missingChangelog });
    return 0;
  }

  if (verb === 'sync') {
    const r = syncChartFiles({ check: dryRun });
    const verb = (s: string) => (r.removed.includes(s) ? (dryRun ? 'would remove' : 'removed') : dryRun ? 'would update' : 'updated');
    reporter.result(`${r.stale.length ? r.stale.map((s) => `${verb(s)} ${s}`).join('\n') : 'chart copies are up to date'}`, { ok: true, dryRun, ...r });
    return 0;
  }

  if (verb === 'check') {
    const problems: Record<string, string[]> = {};
    const catalog = await reporter.step('queries against the metric catalog', async () => checkAllQueries());
    problems.catalog = catalog.problems;
    problems.lint = await reporter.step('dashboard lint', async () => {
      const cfg = loadLintConfig(path.join(DASHBOARDS_DIR, '.lint'));
      return jsonFiles(DASHBOARDS_DIR).flatMap((f) =>
        applyConfig(lintDashboard(JSON.parse(fs.readFileSync(f, 'utf8'))), cfg)
          .filter((r) => r.severity === 'error')
          .map(formatResult),
      );
    });
    problems.drift = await reporter.step('dashboards match their definitions', async () =>
      renderDashboards(loadVersions(), false).flatMap((d) => {
        const file = path.join(DASHBOARDS_DIR, d.file);
        if (d.changed) return [`${d.uid}: the definition changed; run npx zx scripts/monitoring.ts build`];
        return fs.existsSync(file) && fs.readFileSync(file, 'utf8') === d.json ? [] : [`${displayPath(file)} differs from its definition; run npx zx scripts/monitoring.ts build`];
      }),
    );
    problems.versions = await reporter.step('dashboard versions and changelog', async () => versionProblems());
    problems.chart = await reporter.step('chart copies', async () => syncChartFiles({ check: true }).stale.map((s) => `${s} is out of date; run npx zx scripts/monitoring.ts sync`));
    let promtool = 'skipped';
    if (!flags['no-promtool']) {
      promtool = await promtoolVersion();
      const check = await reporter.step(`promtool ${promtool} check rules`, () => checkRules(ruleFiles()));
      const tests = await reporter.step(`promtool ${promtool} test rules`, () => testRules(ruleTestFiles()));
      const dashQueries = allQueries().filter((q) => q.file.startsWith('dashboards/'));
      const exprs = await reporter.step(`promtool ${promtool}: ${dashQueries.length} dashboard queries`, () => checkExpressions(dashQueries.map((q) => q.promql)));
      const failing = exprs.ok
        ? []
        : [...new Set([...exprs.output.matchAll(/query_(\d+)/g)].map((m) => Number(m[1])))].map((i) => `${dashQueries[i].file}: ${dashQueries[i].where}: rejected by promtool`);
      problems.promtool = [...(check.ok ? [] : [check.output]), ...(tests.ok ? [] : [tests.output]), ...(exprs.ok ? [] : failing.length ? failing : [exprs.output])];
    }
    const all = Object.entries(problems).flatMap(([k, v]) => v.map((p) => `${k}: ${p}`));
    const summary = `${catalog.queries} queries, ${jsonFiles(DASHBOARDS_DIR).length} dashboards, ${ruleFiles().length} rule files, promtool ${promtool}: ${all.length ? `${all.length} problem(s)` : 'all checks passed'}`;
    if (all.length) throw new UserError(`${all.join('\n')}\n${summary}`, { details: problems });
    reporter.result(summary, { ok: true, queries: catalog.queries, promtool, problems });
    return 0;
  }
  throw usageError(verb ? `unknown verb "${verb}"` : 'a verb is required', 'Use: monitoring.ts build | sync | check  (see --help)');
});
