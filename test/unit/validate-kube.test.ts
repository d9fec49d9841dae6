// Which Kubernetes versions validate.ts checks: every minor from the chart's floor to the newest,
// each registered cluster's own minor among them, and clear errors when either is not so.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { KUBE_VERSIONS, minorOf } from '../../scripts/lib/adapters/kubeschemas.ts';
import { isUserError, UserError } from '../../scripts/lib/core/errors.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';
import { loadRegistry, type ClusterConfig } from '../../scripts/lib/domain/clusters.ts';
import { admittedKubeVersions, checkClusterMinors, defaultKubeVersions, planKubeVersions } from '../../scripts/lib/engines/validate-kube.ts';
import { chartKubeRange, compareMinors, floorMinorOf, type ChartKubeRange } from '../../scripts/lib/engines/validate-range.ts';

const test = suite('validate-kube');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'validate-kube-'));
const CHART = path.join(REPO_ROOT, 'chart');
const REGISTRY = path.join(REPO_ROOT, 'values', 'clusters.yaml');
const realChart = fs.existsSync(path.join(CHART, 'Chart.yaml')) && fs.existsSync(REGISTRY);

function userError(fn: () => unknown): UserError {
  try {
    fn();
  } catch (e) {
    if (isUserError(e)) return e;
    throw e;
  }
  throw new Error('expected a UserError');
}

const range = (constraint: string | null): ChartKubeRange => ({ file: path.join(CHART, 'Chart.yaml'), constraint, floorMinor: constraint === null ? null : (floorMinorOf(constraint) ?? null) });

test('KUBE_VERSIONS: one entry per minor, no gap, oldest first, each a full patch version of its minor', () => {
  const minors = Object.keys(KUBE_VERSIONS);
  assert.equal([...minors].sort(compareMinors), minors);
  for (let i = 1; i < minors.length; i++) assert.is(compareMinors(minors[i], minors[i - 1]), 1, `gap between ${minors[i - 1]} and ${minors[i]}`);
  for (const [minor, full] of Object.entries(KUBE_VERSIONS)) {
    assert.match(full, /^\d+\.\d+\.\d+$/);
    assert.is(minorOf(full), minor);
  }
  assert.equal(minors, ['1.30', '1.31', '1.32', '1.33', '1.34', '1.35', '1.36', '1.37']);
});

test('the floor of a kubeVersion constraint is the oldest minor it admits', () => {
  assert.is(floorMinorOf('>=1.30.0-0'), '1.30');
  assert.is(floorMinorOf('>= 1.31.0, <1.38.0'), '1.31');
  assert.is(floorMinorOf('^1.32'), '1.32');
  assert.is(floorMinorOf('~1.33.2'), '1.33');
  assert.is(floorMinorOf('>1.29.0'), '1.29'); // 1.29.1 is admitted
  assert.is(floorMinorOf('*'), undefined);
  assert.is(floorMinorOf('nonsense'), undefined);
});

if (realChart) {
  test("the repository: the chart's floor minor and every registered cluster's minor are validated by default", () => {
    const r = chartKubeRange(CHART);
    assert.is(r.constraint, '>=1.30.0-0');
    assert.is(r.floorMinor, '1.30');
    const versions = defaultKubeVersions(r);
    const minors = versions.map(minorOf);
    assert.is(minors[0], r.floorMinor);
    assert.is(minors[minors.length - 1], Object.keys(KUBE_VERSIONS).at(-1));
    const clusters = loadRegistry(REGISTRY).clusters;
    const declared = Object.fromEntries(clusters.map((c) => [c.name, c.kubeVersion]));
    assert.is(declared['prod-eu'], '1.33');
    assert.is(declared['prod-us'], '1.33');
    for (const c of clusters) assert.ok(c.kubeVersion === undefined || minors.includes(c.kubeVersion), `${c.name} declares ${c.kubeVersion}, not in ${minors.join(', ')}`);
    assert.equal(planKubeVersions({ chartDir: CHART, clusters, registryFile: REGISTRY }), versions);
  });
}

test('a floor below the oldest validated minor is an error naming Chart.yaml, the minors left out and both fixes', () => {
  const e = userError(() => defaultKubeVersions(range('>=1.28.0-0')));
  assert.is(e.exitCode, 1);
  assert.match(e.message, 'chart/Chart.yaml: kubeVersion ">=1.28.0-0" admits Kubernetes 1.28, 1.29, which no validation covers');
  assert.match(e.hint ?? '', 'Raise the floor in chart/Chart.yaml to ">=1.30.0-0"');
  assert.match(e.hint ?? '', 'KUBE_VERSIONS in scripts/lib/adapters/kubeschemas.ts');
});

test("the chart's constraint limits the default versions; one that admits none is an error", () => {
  assert.equal(defaultKubeVersions(range('>=1.32.0-0 <1.35.0-0')).map(minorOf), ['1.32', '1.33', '1.34']);
  assert.equal(defaultKubeVersions(range(null)), Object.values(KUBE_VERSIONS));
  assert.match(userError(() => admittedKubeVersions(range('>=1.90.0'))).message, 'admits none of the Kubernetes versions validated here');
});

/** A registry of two clusters, the second declaring `minor`, written to a file so positions are real. */
function registryWith(minor: string): { file: string; clusters: ClusterConfig[] } {
  const dir = path.join(tmp, `reg-${minor}`);
  fs.mkdirSync(path.join(dir, 'clusters'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'clusters', 'a.yaml'), '{}\n');
  const entry = (name: string, v: string) =>
    `  ${name}:\n    description: x\n    context: c\n    namespace: conduit\n    release: conduit\n    environment: staging\n    layers:\n      - clusters/a.yaml\n    protected: false\n    kubeVersion: "${v}"\n`;
  const file = path.join(dir, 'clusters.yaml');
  fs.writeFileSync(file, `clusters:\n${entry('edge', '1.36')}${entry('legacy', minor)}`);
  return { file, clusters: loadRegistry(file).clusters };
}

test("a cluster on a minor below the chart's floor: error at the registry's kubeVersion line, the key, and the fix", () => {
  const reg = registryWith('1.29');
  const e = userError(() => planKubeVersions({ chartDir: CHART, clusters: reg.clusters, registryFile: reg.file }));
  assert.is(e.exitCode, 1);
  assert.match(e.message, `${reg.file}:21:5: clusters.legacy.kubeVersion: Kubernetes 1.29 is not validated here`);
  assert.match(e.hint ?? '', 'upgrade the cluster first');
  assert.match(e.hint ?? '', `set clusters.legacy.kubeVersion in ${reg.file}`);
  assert.equal(e.details, [{ cluster: 'legacy', key: 'clusters.legacy.kubeVersion', kubeVersion: '1.29', file: reg.file }]);
});

test('a cluster on a minor newer than any validated: the error says how to add it; --kube-version does not excuse it', () => {
  const reg = registryWith('1.38');
  for (const requested of [undefined, '1.36']) {
    const e = userError(() => planKubeVersions({ chartDir: CHART, clusters: reg.clusters, registryFile: reg.file, requested }));
    assert.match(e.message, 'clusters.legacy.kubeVersion: Kubernetes 1.38 is not validated here (validated: 1.30, 1.31, 1.32, 1.33, 1.34, 1.35, 1.36, 1.37)');
    assert.match(e.hint ?? '', 'add it to KUBE_VERSIONS in scripts/lib/adapters/kubeschemas.ts');
  }
  // Only the selected clusters are checked.
  assert.equal(planKubeVersions({ chartDir: CHART, clusters: reg.clusters.slice(0, 1), registryFile: reg.file, requested: '1.36' }), [KUBE_VERSIONS['1.36']]);
});

test('a cluster without a declared minor is accepted; a minor excluded by the constraint is refused', () => {
  const reg = registryWith('1.31');
  const undeclared = reg.clusters.map((c) => ({ ...c, kubeVersion: undefined }));
  checkClusterMinors(undeclared, Object.values(KUBE_VERSIONS), range('>=1.30.0-0'), reg.file);
  const validated = defaultKubeVersions(range('>=1.32.0-0'));
  assert.match(userError(() => checkClusterMinors(reg.clusters, validated, range('>=1.32.0-0'), reg.file)).message, 'clusters.legacy.kubeVersion: Kubernetes 1.31 is not validated');
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test.run();
