// Runs the real scripts/validate.ts (real helm, kubeconform, kube-score) on the fixture chart and,
// once they exist, on the repository's chart and every cluster of values/clusters.yaml.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../scripts/lib/core/exec.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';
import { loadRegistry, selectClusters } from '../../scripts/lib/domain/clusters.ts';
import { resolveKubeVersion } from '../../scripts/lib/adapters/kubeschemas.ts';
import { kubeconformMessages, splitRendered, startValidation, validateClusters } from '../../scripts/lib/engines/validate.ts';
import { satisfiesConstraint } from '../../scripts/lib/engines/validate-range.ts';
import { loadChartDefaults, parseSetFlags, prepareValues } from '../../scripts/lib/domain/values.ts';

const test = suite('validate.ts');
const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures');
const FIXTURE_ARGS = ['--registry', path.join(FIXTURES, 'values', 'clusters.yaml'), '--chart', path.join(FIXTURES, 'chart')];

async function validate(args: string[]) {
  const r = await run(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'scripts', 'validate.ts'), ...args], { cwd: REPO_ROOT, env: { NO_COLOR: '1', FORCE_COLOR: '0' }, timeoutMs: 300_000 });
  return { ...r, out: (r.stdout + r.stderr).replace(/\x1b\[[0-9;]*m/g, '') };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'validate-test-'));
function overlay(name: string, text: string): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text);
  return f;
}

const ALL_VERSIONS = ['1.30.14', '1.31.14', '1.32.13', '1.33.13', '1.34.4', '1.35.4', '1.36.3', '1.37.2'];

test('every fixture cluster passes on every Kubernetes version from the chart floor to the newest (exit 0, JSON report)', async () => {
  const r = await validate([...FIXTURE_ARGS, '--all', '--json']);
  assert.is(r.exitCode, 0, r.out);
  const report = JSON.parse(r.stdout);
  assert.is(report.ok, true);
  assert.equal(report.kubeVersions, ALL_VERSIONS);
  assert.equal(report.kubeMinors, ['1.30', '1.31', '1.32', '1.33', '1.34', '1.35', '1.36', '1.37']);
  assert.is(report.chartKubeVersion, '>=1.30.0-0');
  assert.is(report.floorMinor, '1.30');
  assert.equal(
    report.clusters.map((c: { cluster: string; kubeMinor: string; kubeMinorFrom: string; kubeVersion: string }) => [c.cluster, c.kubeMinor, c.kubeMinorFrom, c.kubeVersion]),
    [
      ['local', '1.37', 'newest', '1.37.2'],
      ['prod-eu', '1.36', 'registry', '1.36.3'],
    ],
  );
  for (const c of report.clusters) {
    const schemaSteps = c.steps.filter((s: { step: string }) => s.step === 'schema');
    assert.equal(
      schemaSteps.map((s: { kubeVersion: string }) => s.kubeVersion),
      ALL_VERSIONS,
    );
    // helm lint runs for the cluster's own minor.
    assert.is(c.steps.find((s: { step: string }) => s.step === 'lint').kubeVersion, c.kubeVersion);
    assert.ok(c.steps.some((s: { step: string; status: string }) => s.step === 'kube-score' && s.status === 'ok'));
    assert.ok(c.steps.some((s: { step: string; status: string }) => s.step === 'lint' && s.status === 'ok'));
  }
});

test('helm 3 renders and lints the same fixture (--helm 3)', async () => {
  const r = await validate([...FIXTURE_ARGS, '--cluster', 'prod-eu', '--helm', '3', '--kube-version', '1.35', '--json']);
  assert.is(r.exitCode, 0, r.out);
  const report = JSON.parse(r.stdout);
  assert.is(report.helm, 3);
  assert.equal(report.kubeVersions, ['1.35.4']);
});

test('malformed overlays: wrong type, unknown key, bad URL, Redis /0, impossible combination -> exit 1 at file:line', async () => {
  const f = overlay(
    'bad.yaml',
    ['replicas: "3"', 'image:', '  tagg: "2.0"', 'redis:', '  url: redis://cache:6379/0', 'config:', '  publicUrl: ftp//nowhere', 'messaging:', '  host: ""', ''].join('\n'),
  );
  const r = await validate([...FIXTURE_ARGS, '--cluster', 'prod-eu', '--values', f, '--kube-version', '1.36']);
  assert.is(r.exitCode, 1, r.out);
  const at = (line: number, col: number, key: string) => assert.match(r.out, `${f}:${line}:${col}: ${key}:`, `expected ${key} at line ${line}\n${r.out}`);
  at(1, 1, 'replicas'); // wrong type
  at(3, 3, 'image.tagg'); // unknown key
  assert.match(r.out, 'Did you mean "tag"?');
  at(5, 3, 'redis.url'); // /0 suffix
  at(7, 3, 'config.publicUrl'); // bad URL
  at(9, 3, 'messaging.host'); // replicas > 1 without a message bus
  assert.match(r.out, 'More than one replica needs messaging.host');
});

test('a key the chart needs, removed by a layer, is reported at the file that should have it', async () => {
  const f = overlay('norepo.yaml', 'image:\n  repository: null\n');
  const r = await validate([...FIXTURE_ARGS, '--cluster', 'local', '--values', f, '--kube-version', '1.36', '--json']);
  assert.is(r.exitCode, 1, r.out);
  const findings = JSON.parse(r.stdout).clusters[0].steps[0].findings;
  assert.equal(
    findings.map((x: { key: string; file: string }) => [x.key, x.file]),
    [['image.repository', f]],
  );
});

test("the chart's own render-time failure is reported with the key it names, at the layer that set it", async () => {
  const f = overlay('latest.yaml', '# pinned? no\nimage:\n  tag: latest\n');
  const r = await validate([...FIXTURE_ARGS, '--cluster', 'prod-eu', '--values', f, '--kube-version', '1.36']);
  assert.is(r.exitCode, 1, r.out);
  assert.match(r.out, `[render 1.36.3] ${f}:3:3: image.tag: image.tag latest cannot roll out consistently`);
});

test('rendered objects are checked strictly for every version; a kind without a schema is an error', async () => {
  const f = overlay(
    'objects.yaml',
    ['resources:', '  requests: {cpu: 100m, memory: 64Mi}', '  limitz: {memory: 64Mi}', 'extraObjects:', '  - apiVersion: example.com/v1', '    kind: Widget', '    metadata: {name: w}', ''].join(
      '\n',
    ),
  );
  const r = await validate([...FIXTURE_ARGS, '--cluster', 'local', '--values', f, '--json']);
  assert.is(r.exitCode, 1, r.out);
  const steps = JSON.parse(r.stdout).clusters[0].steps.filter((s: { step: string }) => s.step === 'schema');
  assert.is(steps.length, ALL_VERSIONS.length);
  for (const s of steps) {
    // Unchanged schemas are validated once but reported for every version.
    assert.is(s.status, 'failed', JSON.stringify(s));
    assert.ok(
      s.findings.some((x: { object: string; message: string }) => x.object === 'Deployment/conduit' && /limitz/.test(x.message)),
      JSON.stringify(s.findings),
    );
    assert.ok(
      s.findings.some((x: { object: string; message: string }) => x.object === 'Widget/w' && /no schema for example.com\/v1 Widget/.test(x.message)),
      JSON.stringify(s.findings),
    );
  }
});

test('a values file with a YAML syntax error is reported at its line (exit 1)', async () => {
  const f = overlay('syntax.yaml', 'config:\n  logLevel: [info\n');
  const r = await validate([...FIXTURE_ARGS, '--cluster', 'local', '--values', f, '--kube-version', '1.36']);
  assert.is(r.exitCode, 1, r.out);
  assert.match(r.out, new RegExp(`${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: invalid YAML`));
});

test('YAML 1.1 booleans used as strings are warned about with their position', async () => {
  const f = overlay('bool.yaml', 'config:\n  logLevel: on\n');
  const r = await validate([...FIXTURE_ARGS, '--cluster', 'local', '--values', f, '--kube-version', '1.36']);
  assert.is(r.exitCode, 1, r.out);
  assert.match(r.out, `warning: ${f}:2:13: config.logLevel: \`on\` is read by Helm as the boolean true`);
});

test('a chart that reads .Capabilities is rendered once per Kubernetes version', async () => {
  const chart = path.join(tmp, 'caps-chart');
  fs.cpSync(path.join(FIXTURES, 'chart'), chart, { recursive: true });
  fs.writeFileSync(path.join(chart, 'templates', 'caps.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: caps\ndata:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n');
  fs.copyFileSync(path.join(FIXTURES, '.kube-score.yaml'), path.join(tmp, '.kube-score.yaml'));
  const r = await validate(['--registry', path.join(FIXTURES, 'values', 'clusters.yaml'), '--chart', chart, '--cluster', 'local', '--json']);
  assert.is(r.exitCode, 0, r.out);
  const report = JSON.parse(r.stdout);
  assert.is(report.sharedRender, false);
  const renders = report.clusters[0].steps.filter((s: { step: string }) => s.step === 'render');
  assert.equal(
    renders.map((s: { kubeVersion: string }) => s.kubeVersion),
    ALL_VERSIONS,
  );
});

test('usage errors exit 2: unknown flag, unknown cluster, unsupported Kubernetes version, bad --set', async () => {
  for (const args of [
    ['--bogus'],
    [...FIXTURE_ARGS, '--cluster', 'nowhere'],
    [...FIXTURE_ARGS, '--kube-version', '1.20'],
    [...FIXTURE_ARGS, '--set', 'novalue'],
    [...FIXTURE_ARGS, '--all', '--cluster', 'local'],
  ]) {
    const r = await validate(args);
    assert.is(r.exitCode, 2, `${args.join(' ')}\n${r.out}`);
  }
});

test('a registered cluster on a Kubernetes minor that is not validated: exit 1 naming the registry, its line, the key and the fix; nothing runs', async () => {
  const dir = path.join(tmp, 'reg-1.29');
  fs.cpSync(path.join(FIXTURES, 'values'), dir, { recursive: true });
  const file = path.join(dir, 'clusters.yaml');
  const text = fs.readFileSync(file, 'utf8');
  fs.writeFileSync(file, text.replace('kubeVersion: "1.36"', 'kubeVersion: "1.29"'));
  const line = text.split('\n').findIndex((l) => l.includes('kubeVersion: "1.36"')) + 1;
  const r = await validate(['--registry', file, '--chart', path.join(FIXTURES, 'chart'), '--all']);
  assert.is(r.exitCode, 1, r.out);
  assert.match(r.out, `${file}:${line}:5: clusters.prod-eu.kubeVersion: Kubernetes 1.29 is not validated here (validated: 1.30, 1.31,`);
  assert.match(r.out, `set clusters.prod-eu.kubeVersion in ${file}`);
  assert.not.match(r.out, 'cluster(s) valid');
});

test('values handed over merged (deploy.ts merges once) are what is checked and rendered; the render comes back before the report', async () => {
  const chartDir = path.join(FIXTURES, 'chart');
  const [local] = selectClusters(loadRegistry(path.join(FIXTURES, 'values', 'clusters.yaml')), { cluster: 'local' });
  const defaults = loadChartDefaults(chartDir);
  const options = { clusters: [local], chartDir, kubeVersions: [resolveKubeVersion('1.36')], skip: ['lint' as const, 'kube-score' as const] };
  const bad = await validateClusters({ ...options, prepared: { local: prepareValues(defaults, local.layers, parseSetFlags(['replicas=many'])) } });
  assert.is(bad.ok, false);
  assert.equal(
    bad.clusters[0].steps.map((s) => [s.step, s.status]),
    [['values', 'failed']],
  );
  const found = bad.clusters[0].steps[0].findings.map((f) => `${f.key} at ${f.location}`);
  assert.ok(found.includes('replicas at --set replicas=many'), found.join('\n'));
  const good = prepareValues(defaults, local.layers, parseSetFlags(['image.tag=9.9.9']));
  const staged = await startValidation({ ...options, prepared: { local: good } });
  assert.is(staged.renders.length, 1);
  assert.match(staged.renders[0].manifest, 'ghcr.io/example/app:9.9.9');
  assert.equal(staged.renders[0].values, good.merged.values);
  const report = await staged.report;
  assert.ok(report.ok, JSON.stringify(report.clusters[0].steps));
  assert.equal(
    report.clusters[0].steps.map((s) => s.step),
    ['values', 'render', 'schema'],
  );
});

test('Chart.yaml kubeVersion constraints are evaluated like Helm does', () => {
  assert.is(satisfiesConstraint('1.36.3', '>=1.30.0-0'), true);
  assert.is(satisfiesConstraint('1.29.9', '>=1.30.0-0'), false);
  assert.is(satisfiesConstraint('1.36.3', '>=1.30.0 <1.36.0'), false);
  assert.is(satisfiesConstraint('1.35.0', '~1.35'), true);
  assert.is(satisfiesConstraint('1.36.0', '^1.30 || >=2'), true);
  assert.is(satisfiesConstraint('1.36.0', 'nonsense'), undefined);
});

test('rendered documents are split with kind and metadata.name (nested name keys ignored)', () => {
  const docs = splitRendered(
    '---\n# Source: x\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  annotations:\n    name: decoy\n  name: "real"\ndata: {}\n---\napiVersion: v1\nkind: Service\nmetadata: {namespace: x, name: flow}\n---\n# only a comment\n',
  );
  assert.equal(
    docs.map((d) => [d.key, d.name]),
    [
      ['v1/ConfigMap', 'real'],
      ['v1/Service', 'flow'],
    ],
  );
});

test('kubeconform messages are split into one line per error', () => {
  const msgs = kubeconformMessages({
    filename: 'f',
    kind: 'Deployment',
    name: 'a',
    version: 'apps/v1',
    status: 'statusInvalid',
    msg: "problem validating schema. Check JSON formatting: jsonschema validation failed with 'file:///x.json#' - at '': validation failed   - at '/metadata/labels/x': got boolean, want string   - at '/spec/foo': additional properties 'foo' not allowed",
  });
  assert.equal(msgs, ['/metadata/labels/x: got boolean, want string', "/spec/foo: additional properties 'foo' not allowed"]);
});

const realChart = fs.existsSync(path.join(REPO_ROOT, 'chart', 'Chart.yaml')) && fs.existsSync(path.join(REPO_ROOT, 'values', 'clusters.yaml'));
if (realChart) {
  test("the repository chart: every cluster of values/clusters.yaml passes, for its own minor and the chart's floor to the newest", async () => {
    const r = await validate(['--all', '--json']);
    assert.is(r.exitCode, 0, r.out);
    const report = JSON.parse(r.stdout);
    assert.equal(report.kubeVersions, ALL_VERSIONS);
    assert.is(report.floorMinor, '1.30');
    assert.is(report.chartKubeVersion, '>=1.30.0-0');
    const minors = Object.fromEntries(report.clusters.map((c: { cluster: string; kubeMinor: string; kubeVersion: string }) => [c.cluster, [c.kubeMinor, c.kubeVersion]]));
    assert.equal(minors, { local: ['1.36', '1.36.3'], staging: ['1.34', '1.34.4'], 'prod-eu': ['1.33', '1.33.13'], 'prod-us': ['1.33', '1.33.13'] });
    for (const c of report.clusters) {
      const schema = c.steps.filter((s: { step: string }) => s.step === 'schema');
      assert.equal(
        schema.map((s: { kubeVersion: string; status: string }) => [s.kubeVersion, s.status]),
        ALL_VERSIONS.map((v) => [v, 'ok']),
      );
    }
  });

  test("the repository chart: the human report names each cluster's minor, the chart floor and the versions", async () => {
    const r = await validate(['--all']);
    assert.is(r.exitCode, 0, r.out);
    assert.match(r.out, 'cluster prod-eu (Kubernetes 1.33;');
    assert.match(r.out, 'Kubernetes 1.30 to 1.37 validated; chart floor 1.30 (kubeVersion ">=1.30.0-0"); clusters: local 1.36, staging 1.34, prod-eu 1.33, prod-us 1.33');
    assert.match(r.out, '4 cluster(s) valid for Kubernetes 1.30, 1.31, 1.32, 1.33, 1.34, 1.35, 1.36, 1.37');
  });

  test('the repository chart: malformed overlays are pinned to file:line and key', async () => {
    const f = overlay(
      'real-bad.yaml',
      [
        'api:',
        '  replicaCount: "2"',
        '  replicas: 2',
        'mediaStorage:',
        '  s3:',
        '    endpoint: s3.example.com',
        'redis:',
        '  mode: external',
        '  external:',
        '    host: cache.internal:6379/0',
        '',
      ].join('\n'),
    );
    const r = await validate(['--cluster', 'staging', '--values', f, '--kube-version', '1.36']);
    assert.is(r.exitCode, 1, r.out);
    for (const [line, col, key] of [
      [2, 3, 'api.replicaCount'],
      [3, 3, 'api.replicas'],
      [6, 5, 'mediaStorage.s3.endpoint'],
      [10, 5, 'redis.external.host'],
    ] as const) {
      assert.match(r.out, `${f}:${line}:${col}: ${key}:`, `${key}\n${r.out}`);
    }
    assert.match(r.out, 'Did you mean "replicaCount"?');
  });

  test('the repository chart: a Redis URL with a /db suffix is refused at its file:line', async () => {
    const f = overlay('real-redis-url.yaml', ['redis:', '  mode: external', '  external:', '    url: redis://cache.internal:6379/0', ''].join('\n'));
    const r = await validate(['--cluster', 'prod-eu', '--values', f, '--kube-version', '1.36']);
    assert.is(r.exitCode, 1, r.out);
    assert.match(r.out, `${f}:4:5: redis.external.url:`);
    assert.match(r.out, 'No `/db` suffix');
  });

  test('the repository chart: an impossible combination fails at render time, pointing at the key', async () => {
    const f = overlay('real-combo.yaml', 'api:\n  replicaCount: 3\nmediaStorage:\n  type: inmemory\n');
    const r = await validate(['--cluster', 'local', '--values', f, '--kube-version', '1.36']);
    assert.is(r.exitCode, 1, r.out);
    assert.match(r.out, new RegExp(`\\[render 1\\.36\\.3\\] ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:3: api\\.replicaCount: .*in-memory media store`));
  });
}

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test.run();
