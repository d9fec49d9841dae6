// The shipped dashboards: generated from their definitions, lint-clean, versioned, and built the
// way the issue asks (datasource variable everywhere, stable uids, units and descriptions).
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jsonFiles } from '../../scripts/lib/domain/catalog.ts';
import { allPanels, applyConfig, formatResult, lintDashboard, loadLintConfig } from '../../scripts/lib/domain/dashboardlint.ts';
import { CHANGELOG_FILE, DASHBOARDS, DASHBOARDS_DIR, changelogVersions, contentDigest, loadVersions, renderDashboards, type VersionRegistry } from '../../scripts/lib/domain/dashboards.ts';

const files = jsonFiles(DASHBOARDS_DIR);
const dashboards = files.map((f) => ({ file: f, d: JSON.parse(fs.readFileSync(f, 'utf8')) }));

test('four dashboards with the stable uids', () => {
  assert.equal(dashboards.map((x) => x.d.uid).sort(), ['conduit-data', 'conduit-overview', 'conduit-runtime', 'conduit-upstream']);
  for (const { file, d } of dashboards) assert.is(path.basename(file), `${d.uid}.json`);
});

test('committed JSON equals the generator output (no drift)', () => {
  const reg = loadVersions();
  for (const r of renderDashboards(reg, false)) {
    assert.not.ok(r.changed, `${r.uid}: definition changed without a build`);
    assert.is(fs.readFileSync(path.join(DASHBOARDS_DIR, r.file), 'utf8'), r.json, `${r.file} differs from its definition; run npx zx scripts/monitoring.ts build`);
  }
});

test('dashboards pass the dashboard-linter rules (with the reasoned .lint exclusions)', () => {
  const cfg = loadLintConfig(path.join(DASHBOARDS_DIR, '.lint'));
  for (const rule of Object.values({ ...cfg.exclusions, ...cfg.warnings })) assert.ok(rule?.reason, 'every exclusion has a reason');
  const errors = dashboards
    .flatMap(({ d }) => applyConfig(lintDashboard(d), cfg))
    .filter((r) => r.severity === 'error')
    .map(formatResult);
  assert.equal(errors, []);
});

test('no datasource uid is hard-coded; every panel and target uses ${datasource}', () => {
  for (const { d } of dashboards) {
    const text = JSON.stringify(d);
    const uids = [...text.matchAll(/"uid":"([^"]*)"/g)].map((m) => m[1]).filter((u) => u !== d.uid);
    assert.equal([...new Set(uids)], ['${datasource}'], d.uid);
    for (const p of allPanels<any>(d).filter((p: any) => p.type !== 'row')) {
      assert.is(p.datasource.uid, '${datasource}');
      for (const t of p.targets) assert.is(t.datasource.uid, '${datasource}');
      assert.ok(p.fieldConfig.defaults.unit, `${d.uid} ${p.title}: unit`);
      assert.ok(p.description, `${d.uid} ${p.title}: description`);
    }
  }
});

test('every rate uses $__rate_interval; job/instance/namespace variables exist', () => {
  for (const { d } of dashboards) {
    const names = d.templating.list.map((v: any) => v.name);
    for (const n of ['datasource', 'namespace', 'job', 'instance']) assert.ok(names.includes(n), `${d.uid}: ${n}`);
    for (const p of allPanels<any>(d)) for (const t of p.targets ?? []) for (const m of t.expr.matchAll(/\brate\([^[]*\[([^\]]+)\]/g)) assert.is(m[1], '$__rate_interval', t.expr);
  }
});

test('overview has the required panels', () => {
  const titles = allPanels<any>(dashboards.find((x) => x.d.uid === 'conduit-overview')!.d).map((p: any) => p.title);
  for (const t of ['Requests by status class', 'Error ratio (5xx)', 'Latency percentiles', 'Availability burn rate', 'Availability error budget left', 'Active requests'])
    assert.ok(titles.includes(t), t);
});

test('every dashboard version matches its recorded digest and has a changelog entry', () => {
  const reg = loadVersions();
  const log = changelogVersions(fs.readFileSync(CHANGELOG_FILE, 'utf8'));
  for (const { d } of dashboards) {
    const hist = reg[d.uid].history;
    const latest = hist[hist.length - 1];
    assert.is(d.version, latest.version);
    assert.is(contentDigest(d), latest.sha256, `${d.uid}: content changed without a version bump`);
    hist.forEach((h, i) => i && assert.ok(h.version > hist[i - 1].version));
    for (const h of hist) assert.ok(log.has(`${d.uid} v${h.version}`), `CHANGELOG.md: ## ${d.uid} v${h.version}`);
  }
});

test('a content change is detected, and build bumps the version', () => {
  const reg: VersionRegistry = structuredClone(loadVersions());
  const spec = structuredClone(DASHBOARDS[0]);
  spec.rows[0].panels[0].description = 'changed';
  const [checked] = renderDashboards(structuredClone(reg), false, [spec]);
  assert.ok(checked.changed);
  const [built] = renderDashboards(reg, true, [spec]);
  assert.not.ok(built.changed);
  assert.is(built.version, loadVersions()[spec.uid].history.at(-1)!.version + 1);
  assert.is(reg[spec.uid].history.length, loadVersions()[spec.uid].history.length + 1);
  // the committed file with its content edited by hand no longer matches its version's digest
  const d = structuredClone(dashboards[0].d);
  d.title += ' (edited)';
  assert.is.not(contentDigest(d), loadVersions()[d.uid].history.at(-1)!.sha256);
  // the version number itself is not content
  const v = structuredClone(dashboards[0].d);
  v.version += 1;
  assert.is(contentDigest(v), contentDigest(dashboards[0].d));
});

test.run();
