// `release.ts check` against real git history: a scratch repository holding a copy of the chart,
// released as conduit-chart-X.Y.Z, then changed in the ways that must (and must not) block a release.
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseDocument } from 'yaml';
import { run } from '../../scripts/lib/core/exec.ts';
import { CHART_DIR } from '../../scripts/lib/core/paths.ts';
import { readChartMeta } from '../../scripts/lib/engines/release.ts';
import { jsonOf, releaseCli, tempDir } from './release-harness.ts';

const test = suite('release: check');
const current = readChartMeta(CHART_DIR);
let repo: string;
let chart: string;

async function git(...args: string[]) {
  const r = await run('git', ['-c', 'user.name=Release Test', '-c', 'user.email=release@example.test', '-c', 'commit.gpgsign=false', '-c', 'tag.gpgsign=false', ...args], { cwd: repo });
  if (r.exitCode !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function check(...extra: string[]) {
  const skip = extra.includes('--validate') ? [] : ['--skip-validate'];
  const r = await releaseCli(['check', '--chart', chart, ...skip, '--json', ...extra.filter((e) => e !== '--validate')]);
  const doc = jsonOf(r);
  const byName = Object.fromEntries((doc.checks as { name: string; status: string; message: string }[]).map((c) => [c.name, c]));
  return { exitCode: r.exitCode, doc, byName };
}

function setChartVersion(version: string) {
  const file = path.join(chart, 'Chart.yaml');
  const doc = parseDocument(fs.readFileSync(file, 'utf8'));
  doc.set('version', version);
  fs.writeFileSync(file, doc.toString({ lineWidth: 0 }));
}

test.before(async () => {
  repo = tempDir('release-check');
  chart = path.join(repo, 'chart');
  fs.cpSync(CHART_DIR, chart, { recursive: true });
  // validate.ts reads the kube-score configuration that sits beside the chart directory.
  const kubeScore = path.join(CHART_DIR, '..', '.kube-score.yaml');
  if (fs.existsSync(kubeScore)) fs.copyFileSync(kubeScore, path.join(repo, '.kube-score.yaml'));
  await git('init', '-q', '-b', 'main');
  await git('add', '-A');
  await git('commit', '-q', '-m', 'chart');
});

test.after(() => {
  if (repo) fs.rmSync(repo, { recursive: true, force: true });
});

test('before any release tag the check says it is the first release and passes, validate.ts --all included', async () => {
  const r = await check('--validate');
  assert.is(r.exitCode, 0, JSON.stringify(r.doc.checks, null, 1));
  assert.is(r.byName['version bump'].status, 'ok');
  assert.match(r.byName['version bump'].message, /first release/);
  assert.is(r.byName['changelog entry'].status, 'ok');
  assert.is(r.byName['artifacthub.io/changes'].status, 'ok');
  assert.is(r.byName['images'].status, 'ok');
  assert.is(r.byName['helm lint'].status, 'ok');
  assert.is(r.byName['validate --all'].status, 'ok');
  assert.match(r.byName['validate --all'].message, /4 cluster\(s\)/);
  assert.is(r.doc.tag, `conduit-chart-${current.version}`);
});

test('after tagging: unchanged passes; a changed value or dashboard without a version bump fails and names the files', async () => {
  await git('tag', `conduit-chart-${current.version}`);
  assert.is((await check()).byName['version bump'].status, 'ok');

  fs.appendFileSync(path.join(chart, 'values.yaml'), '\n# a later change\n');
  fs.mkdirSync(path.join(repo, 'dashboards'));
  fs.writeFileSync(path.join(repo, 'dashboards', 'new.json'), '{}\n');
  fs.writeFileSync(path.join(repo, 'NOTES.md'), 'not shipped\n');
  const r = await check();
  assert.is(r.exitCode, 1);
  const bump = r.byName['version bump'];
  assert.is(bump.status, 'failed');
  assert.match(bump.message, /2 shipped file\(s\) changed/);
  assert.match(bump.message, /chart\/values\.yaml/);
  assert.match(bump.message, /dashboards\/new\.json/);
  assert.not.match(bump.message, /NOTES\.md/);
});

test('bumping the version without a changelog entry fails on the changelog, then a matching entry passes', async () => {
  setChartVersion('9.9.9');
  let r = await check();
  assert.is(r.byName['version bump'].status, 'ok');
  assert.is(r.byName['changelog entry'].status, 'failed');
  assert.match(r.byName['changelog entry'].message, /no section for 9\.9\.9/);
  assert.is(r.exitCode, 1);

  const log = path.join(chart, 'CHANGELOG.md');
  const text = fs.readFileSync(log, 'utf8');
  const at = text.indexOf('\n## ');
  fs.writeFileSync(log, `${text.slice(0, at)}\n## 9.9.9 - 2027-01-01\n\n### Fixed\n- A later change.\n${text.slice(at)}`);
  r = await check();
  assert.is(r.byName['changelog entry'].status, 'ok');
  assert.is(r.byName['artifacthub.io/changes'].status, 'failed', 'the annotation still describes the old version');
  assert.match(r.doc.checks.find((c: { name: string }) => c.name === 'artifacthub.io/changes').hint, /- kind: fixed\n\s+description: A later change\./);
});

test('an app image tag that differs from appVersion fails the images check (helm 3 too)', async () => {
  const file = path.join(chart, 'values.yaml');
  const doc = parseDocument(fs.readFileSync(file, 'utf8'));
  doc.setIn(['admin', 'image', 'tag'], '0.0.1');
  fs.writeFileSync(file, doc.toString({ lineWidth: 0 }));
  const r = await check('--helm', '3');
  assert.is(r.byName['images'].status, 'failed');
  assert.match(r.byName['images'].message, new RegExp(`admin\\.image\\.tag is "0\\.0\\.1" but appVersion is "${current.appVersion.replace(/\./g, '\\.')}"`));
  assert.match(r.byName['helm lint'].message, /helm 3 lint/);
});

test('validate.ts --all runs against the chart being released and fails the check when a cluster breaks', async () => {
  assert.is((await check('--validate')).byName['validate --all'].status, 'ok', 'valid before the change');
  const file = path.join(chart, 'values.yaml');
  const doc = parseDocument(fs.readFileSync(file, 'utf8'));
  doc.setIn(['api', 'replicaCount'], 'three');
  fs.writeFileSync(file, doc.toString({ lineWidth: 0 }));
  const r = await check('--validate');
  assert.is(r.exitCode, 1);
  assert.is(r.byName['validate --all'].status, 'failed');
  assert.match(r.byName['validate --all'].message, /invalid: /);
});

test.run();
