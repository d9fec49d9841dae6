// The shipped Prometheus rules: promtool accepts them, their unit tests pass, every alert follows
// the conventions (name, severity, summary, description, runbook that exists) and has both a
// firing and a not-firing unit test.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileAnchors } from '../../scripts/lib/core/markdown.ts';
import { repoPath } from '../../scripts/lib/core/paths.ts';
import { allQueries } from '../../scripts/lib/domain/catalog.ts';
import { checkExpressions, checkRules, testRules } from '../../scripts/lib/adapters/promtool.ts';
import { alertRules, alertTestCoverage, loadRules, ruleFiles, ruleTestFiles } from '../../scripts/lib/domain/rules.ts';

const groups = loadRules();
const alerts = alertRules(groups);
// Alerts that by design cannot have a not-firing case: the Watchdog fires from the first evaluation.
const ALWAYS_FIRING = new Set(['ConduitWatchdog']);

test('rule files and tests exist', () => {
  assert.ok(ruleFiles().length >= 5, 'alerts/*.rules.yaml');
  assert.ok(ruleTestFiles().length >= 5, 'alerts/tests/*.test.yaml');
  assert.ok(alerts.length >= 25, `only ${alerts.length} alerts`);
});

test('promtool check rules accepts every rule file', async () => {
  const r = await checkRules(ruleFiles());
  assert.ok(r.ok, r.output);
  assert.is((r.output.match(/SUCCESS/g) ?? []).length, ruleFiles().length, r.output);
});

test("every dashboard query passes Prometheus' own parser and type checks (promtool)", async () => {
  const queries = allQueries().filter((q) => q.file.startsWith('dashboards/'));
  assert.ok(queries.length > 50);
  const r = await checkExpressions(queries.map((q) => q.promql));
  assert.ok(r.ok, r.output);
  const bad = await checkExpressions(['sum(rate(up[5m]))', 'rate(sum(up)[5m])']);
  assert.not.ok(bad.ok, 'a range function over an instant vector must be rejected');
  assert.match(bad.output, /query_1/);
});

test('promtool test rules passes', async () => {
  const r = await testRules(ruleTestFiles());
  assert.ok(r.ok, r.output);
  assert.not.match(r.output, /FAILED/);
});

test('every alert has a firing and a not-firing unit test; every test group sets interval', () => {
  const { coverage, missingInterval } = alertTestCoverage();
  assert.equal(missingInterval, [], 'test groups without interval:');
  const missing: string[] = [];
  for (const a of alerts) {
    const c = coverage.get(a.name);
    if (!c || c.firing === 0) missing.push(`${a.name}: no firing case`);
    if (!ALWAYS_FIRING.has(a.name) && (!c || c.notFiring === 0)) missing.push(`${a.name}: no not-firing case`);
  }
  assert.equal(missing, []);
  const unknown = [...coverage.keys()].filter((n) => !alerts.some((a) => a.name === n));
  assert.equal(unknown, [], 'tests name alerts that do not exist');
});

test('alert names are unique CamelCase with the Conduit prefix', () => {
  const names = alerts.map((a) => a.name);
  assert.equal(
    names.filter((n, i) => names.indexOf(n) !== i),
    [],
    'duplicate alert names',
  );
  for (const n of names) assert.match(n, /^Conduit(?:[A-Z][a-z0-9]*|[A-Z]+(?=[A-Z][a-z]|$))+$/, n);
});

test('severity, static summary, templated description on every alert; most have for:', () => {
  for (const a of alerts) {
    assert.ok(['critical', 'warning', 'info'].includes(a.labels.severity), `${a.name}: severity ${a.labels.severity}`);
    assert.ok(a.annotations.summary, `${a.name}: summary`);
    assert.not.match(a.annotations.summary, /\{\{/, `${a.name}: summary must be static`);
    assert.match(a.annotations.description ?? '', /\{\{.+\}\}/, `${a.name}: description must be templated`);
  }
  const withoutFor = alerts.filter((a) => !a.for).map((a) => a.name);
  assert.equal(withoutFor, ['ConduitWatchdog'], 'only the Watchdog fires without for:');
  assert.ok(alerts.some((a) => a.labels.severity === 'critical') && alerts.some((a) => a.labels.severity === 'warning'));
});

test('every runbook_url points to an existing page and heading', () => {
  const problems: string[] = [];
  for (const a of alerts) {
    const url = a.annotations.runbook_url ?? '';
    const m = /^docs\/runbooks\/([a-z0-9-]+\.md)#([a-z0-9_-]+)$/.exec(url);
    if (!m) {
      problems.push(`${a.name}: runbook_url "${url}" is not docs/runbooks/<page>.md#<anchor>`);
      continue;
    }
    const page = repoPath('docs', 'runbooks', m[1]);
    if (!fs.existsSync(page)) problems.push(`${a.name}: ${path.relative(repoPath(), page)} does not exist`);
    else if (!fileAnchors(page).has(m[2])) problems.push(`${a.name}: no heading with anchor #${m[2]} in docs/runbooks/${m[1]}`);
  }
  assert.equal(problems, []);
});

test('docs/monitoring.md lists every alert with its severity, for and runbook', () => {
  const doc = fs.readFileSync(repoPath('docs', 'monitoring.md'), 'utf8');
  for (const a of alerts) {
    const row = `| ${a.name} | ${a.labels.severity} | ${a.for ?? '—'} | [`;
    assert.ok(doc.includes(row), `docs/monitoring.md: no row "${row}..."`);
    assert.ok(doc.includes(`](${a.annotations.runbook_url.replace(/^docs\//, '')})`), `${a.name}: runbook link`);
  }
});

test('coverage counting tells firing from not-firing cases and finds a missing interval', () => {
  const dir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'alert-cov-'));
  const f = path.join(dir, 'x.test.yaml');
  fs.writeFileSync(
    f,
    'tests:\n  - name: a\n    alert_rule_test:\n      - {alertname: A, eval_time: 1m, exp_alerts: []}\n      - {alertname: A, eval_time: 9m, exp_alerts: [{exp_labels: {severity: warning}}]}\n      - {alertname: B, eval_time: 1m}\n',
  );
  const { coverage, missingInterval } = alertTestCoverage([f]);
  assert.equal(coverage.get('A'), { firing: 1, notFiring: 1 });
  assert.equal(coverage.get('B'), { firing: 0, notFiring: 1 });
  assert.is(missingInterval.length, 1);
  fs.rmSync(dir, { recursive: true, force: true });
});

test.run();
