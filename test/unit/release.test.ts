// Release logic without running anything: version-bump rules, CHANGELOG vs artifacthub.io/changes,
// image coherence, and the plans (argv arrays, files) of package/index/publish/push-oci.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse as parseYaml } from 'yaml';
import { UserError } from '../../scripts/lib/core/errors.ts';
import { Helm } from '../../scripts/lib/adapters/helm.ts';
import { CHART_DIR } from '../../scripts/lib/core/paths.ts';
import {
  compareSemver,
  conflictingEntries,
  defaultImages,
  evaluateArtifactHubChanges,
  evaluateChangelog,
  evaluateImages,
  evaluateUpgradeNotes,
  evaluateVersionBump,
  executePlan,
  latestReleaseTag,
  parseChangelog,
  parsePushDigest,
  planIndex,
  planPackage,
  planPublish,
  planPushOci,
  publishableFiles,
  readChartMeta,
  summarizeValidation,
  type ChartMeta,
  type PlanStep,
} from '../../scripts/lib/engines/release.ts';

const meta = (over: Partial<ChartMeta> = {}): ChartMeta => ({ dir: '/src/chart', name: 'conduit', version: '0.2.0', appVersion: '1.0.0', annotations: {}, ...over });
const runSteps = (steps: PlanStep[]) => steps.filter((s): s is Extract<PlanStep, { kind: 'run' }> => s.kind === 'run');

test('SemVer order: numeric parts, pre-releases before their release, highest tag wins', () => {
  assert.ok(compareSemver('0.10.0', '0.9.0') > 0);
  assert.ok(compareSemver('1.0.0-rc.1', '1.0.0') < 0);
  assert.ok(compareSemver('1.0.0-rc.2', '1.0.0-rc.10') < 0);
  assert.is(compareSemver('1.2.3', 'v1.2.3'), 0);
  assert.equal(latestReleaseTag(['conduit-chart-0.9.0', 'conduit-chart-0.10.0', 'other-1.0.0', 'conduit-chart-x']), { tag: 'conduit-chart-0.10.0', version: '0.10.0' });
  assert.is(latestReleaseTag(['v1.0.0']), undefined);
});

test('version bump: first release, bumped, changed without bump, backwards, unchanged', () => {
  const first = evaluateVersionBump({ version: '0.1.0', tags: [], changed: [] });
  assert.is(first.status, 'ok');
  assert.match(first.message, /first release/);
  assert.is(evaluateVersionBump({ version: '0.2.0', tags: ['conduit-chart-0.1.0'], changed: ['chart/values.yaml'] }).status, 'ok');
  const stale = evaluateVersionBump({ version: '0.1.0', tags: ['conduit-chart-0.1.0'], changed: ['chart/values.yaml', 'dashboards/api.json'] });
  assert.is(stale.status, 'failed');
  assert.match(stale.message, /2 shipped file\(s\) changed since conduit-chart-0\.1\.0/);
  assert.match(stale.message, /dashboards\/api\.json/);
  assert.match(stale.hint!, /Bump version/);
  assert.is(evaluateVersionBump({ version: '0.1.0', tags: ['conduit-chart-0.2.0'], changed: [] }).status, 'failed');
  assert.is(evaluateVersionBump({ version: '0.1.0', tags: ['conduit-chart-0.1.0'], changed: [] }).status, 'ok');
});

const CHANGELOG = `# Changelog

Prose is ignored.

## 0.2.0 - 2026-12-01

### Added
- New \`api.extraPorts\` value,
  spanning two lines.

### Fixed
- WebUI probe timeout.

## 0.1.0 - 2026-11-29

### Added
- First release.
`;

test('changelog: versions, kinds, continuation lines; missing or empty sections fail', () => {
  const versions = parseChangelog(CHANGELOG);
  assert.equal(
    versions.map((v) => v.version),
    ['0.2.0', '0.1.0'],
  );
  assert.equal(versions[0].changes, [
    { kind: 'added', description: 'New `api.extraPorts` value, spanning two lines.' },
    { kind: 'fixed', description: 'WebUI probe timeout.' },
  ]);
  assert.is(versions[0].date, '2026-12-01');
  assert.is(evaluateChangelog({ version: '0.2.0', changelog: CHANGELOG, changelogFile: 'c.md' }).result.status, 'ok');
  const missing = evaluateChangelog({ version: '0.3.0', changelog: CHANGELOG, changelogFile: 'c.md' }).result;
  assert.is(missing.status, 'failed');
  assert.match(missing.message, /no section for 0\.3\.0/);
  assert.is(evaluateChangelog({ version: '0.1.0', changelog: CHANGELOG, changelogFile: 'c.md' }).result.status, 'failed', 'an older version is not the newest section');
  assert.is(evaluateChangelog({ version: '0.2.0', changelog: undefined, changelogFile: 'c.md' }).result.status, 'failed');
  assert.throws(
    () => parseChangelog('## 0.1.0\n### Improved\n- x\n'),
    (e: unknown) => e instanceof UserError && /unknown change section "Improved"/.test(e.message),
  );
});

test('artifacthub.io/changes must equal the changelog entry (Markdown stripped), and the hint gives the text', () => {
  const entry = parseChangelog(CHANGELOG)[0];
  const good = '- kind: added\n  description: New api.extraPorts value, spanning two lines.\n- kind: fixed\n  description: WebUI probe timeout.\n';
  assert.is(evaluateArtifactHubChanges({ entry, annotation: good }).status, 'ok');
  const bad = evaluateArtifactHubChanges({ entry, annotation: '- kind: added\n  description: New api.extraPorts value, spanning two lines.\n- kind: changed\n  description: Something else.\n' });
  assert.is(bad.status, 'failed');
  assert.match(bad.message, /missing: fixed: WebUI probe timeout/);
  assert.match(bad.message, /not in the changelog: changed: Something else/);
  assert.match(bad.hint!, /artifacthub\.io\/changes: \|\n {4}- kind: added/);
  assert.is(evaluateArtifactHubChanges({ entry, annotation: undefined }).status, 'failed');
  const invalid = evaluateArtifactHubChanges({ entry, annotation: '- kind: added\n  description: Backups (off): a CronJob\n' });
  assert.is(invalid.status, 'failed');
  assert.match(invalid.message, /artifacthub\.io\/changes is not valid YAML/);
  const swapped = '- kind: fixed\n  description: WebUI probe timeout.\n- kind: added\n  description: New api.extraPorts value, spanning two lines.\n';
  assert.match(evaluateArtifactHubChanges({ entry, annotation: swapped }).message, /another order/);
});

test('the repository chart: CHANGELOG entry, annotation, images and upgrade notes agree', () => {
  const m = readChartMeta(CHART_DIR);
  const { result, entry } = evaluateChangelog({ version: m.version, changelog: fs.readFileSync(path.join(CHART_DIR, 'CHANGELOG.md'), 'utf8'), changelogFile: 'chart/CHANGELOG.md' });
  assert.is(result.status, 'ok', result.message);
  const changes = evaluateArtifactHubChanges({ entry, annotation: m.annotations['artifacthub.io/changes'] });
  assert.is(changes.status, 'ok', changes.message);
  const values = parseYaml(fs.readFileSync(path.join(CHART_DIR, 'values.yaml'), 'utf8'));
  const images = evaluateImages({ meta: m, values });
  assert.is(images.status, 'ok', images.message);
  const notes = evaluateUpgradeNotes({ version: m.version, text: fs.readFileSync(path.join(CHART_DIR, '..', 'docs', 'upgrading.md'), 'utf8'), file: 'docs/upgrading.md' });
  assert.is(notes.status, 'ok', notes.message);
});

test('images: app tags follow appVersion, third-party tags are pinned, the annotation lists exactly the defaults', () => {
  const values = {
    api: { image: { registry: 'ghcr.io', repository: 'knnlabs/conduit-http', tag: '', digest: '' } },
    admin: { image: { registry: 'ghcr.io', repository: 'knnlabs/conduit-admin', tag: '1.0.0', digest: '' } },
    webui: { image: { registry: 'ghcr.io', repository: 'knnlabs/conduit-webui', tag: '0.9.0', digest: 'sha256:' + 'a'.repeat(64) } },
    redis: { image: { registry: 'docker.io', repository: 'library/redis', tag: 'latest' } },
    database: { cnpg: { imageName: 'ghcr.io/cloudnative-pg/postgresql:17.6' } },
  };
  const imgs = defaultImages(values, '1.0.0');
  assert.equal(
    imgs.map((i) => i.image),
    [
      'ghcr.io/knnlabs/conduit-http:1.0.0',
      'ghcr.io/knnlabs/conduit-admin:1.0.0',
      `ghcr.io/knnlabs/conduit-webui@sha256:${'a'.repeat(64)}`,
      'docker.io/library/redis:latest',
      'ghcr.io/cloudnative-pg/postgresql:17.6',
    ],
  );
  const annotation = imgs.map((i) => `- name: x\n  image: ${i.image}\n`).join('');
  const r = evaluateImages({ meta: meta({ annotations: { 'artifacthub.io/images': annotation } }), values });
  assert.is(r.status, 'failed');
  assert.match(r.message, /redis\.image is not pinned \(tag "latest"\)/);
  const fixed = { ...values, redis: { image: { registry: 'docker.io', repository: 'library/redis', tag: '7.4.6-alpine' } } };
  const ann2 = defaultImages(fixed, '1.0.0')
    .map((i) => `- name: x\n  image: ${i.image}\n`)
    .join('');
  assert.is(evaluateImages({ meta: meta({ annotations: { 'artifacthub.io/images': ann2 } }), values: fixed }).status, 'ok');
  const wrongTag = evaluateImages({ meta: meta({ appVersion: '1.1.0', annotations: { 'artifacthub.io/images': ann2 } }), values: fixed });
  assert.match(wrongTag.message, /admin\.image\.tag is "1\.0\.0" but appVersion is "1\.1\.0"/);
  assert.match(wrongTag.message, /lacks ghcr\.io\/knnlabs\/conduit-http:1\.1\.0/);
  // An appVersion of the moving master tag would make every default app image move.
  const fixedMaster = { ...fixed, admin: { image: { ...fixed.admin.image, tag: '' } } };
  const annMaster = defaultImages(fixedMaster, 'master')
    .map((i) => `- name: x\n  image: ${i.image}\n`)
    .join('');
  assert.match(evaluateImages({ meta: meta({ appVersion: 'master', annotations: { 'artifacthub.io/images': annMaster } }), values: fixedMaster }).message, /api\.image is not pinned \(tag "master"\)/);
  const rendered = evaluateImages({ meta: meta({ annotations: { 'artifacthub.io/images': ann2 } }), values: fixed, rendered: ['docker.io/library/busybox:1.37.0'] });
  assert.match(rendered.message, /default render runs docker\.io\/library\/busybox:1\.37\.0/);
});

test('package plan: signing exports a legacy keyring, passphrase only in a private file, secrets removed', () => {
  const plan = planPackage({
    meta: meta(),
    helm: new Helm('helm', 4),
    outDir: '/o',
    workDir: '/w',
    sign: { key: 'rel@example.com', fingerprint: 'ABCD', keyUrl: 'https://c.example/pubkey.asc', hasPassphrase: true },
  });
  const runs = runSteps(plan.steps);
  assert.equal(plan.steps[1], { kind: 'write-passphrase', file: '/w/passphrase', why: plan.steps[1].why });
  assert.equal(runs[0].args, ['--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase-file', '/w/passphrase', '--output', '/w/secring.gpg', '--export-secret-keys', 'rel@example.com']);
  const pkg = runs.find((s) => s.tool === 'helm' && s.args[0] === 'package')!;
  assert.equal(pkg.args, ['package', '/w/conduit', '--destination', '/o', '--sign', '--key', 'rel@example.com', '--keyring', '/w/secring.gpg', '--passphrase-file', '/w/passphrase']);
  assert.equal(plan.steps[0], {
    kind: 'stage-chart',
    from: '/src/chart',
    to: '/w/conduit',
    setAnnotations: { 'artifacthub.io/signKey': 'fingerprint: ABCD\nurl: https://c.example/pubkey.asc\n' },
    why: plan.steps[0].why,
  });
  assert.equal(runs.at(-1)!.args, ['verify', '/o/conduit-0.2.0.tgz', '--keyring', '/o/pubkey.gpg']);
  assert.equal(
    plan.steps.filter((s) => s.kind === 'remove').map((s) => (s as { path: string }).path),
    ['/w/passphrase', '/w/secring.gpg'],
  );
  const own = planPackage({ meta: meta(), helm: new Helm('helm', 4), outDir: '/o', workDir: '/w', sign: { key: 'k', hasPassphrase: true, passphraseFile: '/secure/pass' } });
  assert.not.ok(
    own.steps.some((s) => s.kind === 'write-passphrase'),
    "the operator's own passphrase file is used as is",
  );
  assert.ok(runSteps(own.steps).every((s) => s.args.includes('/secure/pass') || s.args[0] !== 'package'));
  assert.equal(plan.outputs, ['/o/conduit-0.2.0.tgz', '/o/pubkey.gpg', '/o/pubkey.asc', '/o/conduit-0.2.0.tgz.prov']);
});

test('package plan: unsigned is one helm call on the chart itself; a given keyring skips gpg', () => {
  const plain = planPackage({ meta: meta(), helm: new Helm('helm', 3), outDir: '/o', workDir: '/w' });
  assert.equal(plain.steps, [{ kind: 'run', tool: 'helm', args: ['package', '/src/chart', '--destination', '/o'], why: 'package' }]);
  const dated = planPackage({ meta: meta(), helm: new Helm('helm', 4), outDir: '/o', workDir: '/w', sourceDateEpoch: 1_700_000_000 });
  assert.equal(runSteps(dated.steps)[0].env, { SOURCE_DATE_EPOCH: '1700000000' }, 'archive times come from the commit, so packages are reproducible');
  const keyring = planPackage({ meta: meta(), helm: new Helm('helm', 4), outDir: '/o', workDir: '/w', sign: { key: 'k', keyring: '/keys/secring.gpg', hasPassphrase: false } });
  assert.equal(
    runSteps(keyring.steps).map((s) => s.tool),
    ['helm'],
  );
  assert.equal(runSteps(keyring.steps)[0].args, ['package', '/src/chart', '--destination', '/o', '--sign', '--key', 'k', '--keyring', '/keys/secring.gpg']);
});

test('index plan: URL rules, --merge passed on, artifacthub-repo.yml written', () => {
  const plan = planIndex({
    dir: '/o',
    url: 'https://charts.example.com/conduit',
    helm: new Helm('helm', 4),
    merge: '/tmp/published.yaml',
    artifactHub: { owners: [{ name: 'Ops', email: 'ops@example.com' }] },
  });
  assert.equal(runSteps(plan.steps)[0].args, ['repo', 'index', '/o', '--url', 'https://charts.example.com/conduit', '--merge', '/tmp/published.yaml']);
  const write = plan.steps.find((s) => s.kind === 'write') as Extract<PlanStep, { kind: 'write' }>;
  assert.is(write.file, '/o/artifacthub-repo.yml');
  assert.equal(parseYaml(write.content), { owners: [{ name: 'Ops', email: 'ops@example.com' }] });
  for (const bad of ['charts.example.com', 'oci://r.example/c', 'https://user:pw@charts.example.com']) {
    assert.throws(
      () => planIndex({ dir: '/o', url: bad, helm: new Helm('helm', 4) }),
      (e: unknown) => e instanceof UserError && e.exitCode === 2,
      bad,
    );
  }
});

test('released versions are immutable: same version with another digest is a conflict', () => {
  const existing = [{ name: 'conduit', version: '0.1.0', digest: 'aaa', urls: [] }];
  assert.equal(
    conflictingEntries(existing, [
      { name: 'conduit', version: '0.1.0', digest: 'aaa' },
      { name: 'conduit', version: '0.2.0', digest: 'ccc' },
    ]),
    [],
  );
  assert.equal(conflictingEntries(existing, [{ name: 'conduit', version: '0.1.0', digest: 'bbb' }]), ['conduit 0.1.0: published digest aaa, local package bbb']);
});

test('publish plan: index.yaml last, packages immutable (provenance may be re-signed), only repository files', () => {
  const names = ['index.yaml', 'conduit-0.1.0.tgz.prov', 'notes.txt', 'conduit-0.1.0.tgz', 'pubkey.gpg', 'artifacthub-repo.yml'];
  assert.equal(publishableFiles(names), ['artifacthub-repo.yml', 'conduit-0.1.0.tgz', 'conduit-0.1.0.tgz.prov', 'pubkey.gpg', 'index.yaml']);
  assert.throws(() => publishableFiles(['conduit-0.1.0.tgz']), /no index\.yaml/);
  const plan = planPublish({ dir: '/o', to: 's3://bucket/charts/', names, helm: new Helm('helm', 4) });
  assert.equal(plan.outputs.at(-1), 's3://bucket/charts/index.yaml');
  assert.equal(
    plan.steps.map((s) => (s as { immutable: boolean }).immutable),
    [false, true, false, false, false],
  );
});

test('publish executes atomically: identical files skipped, a changed package refused, the index replaced', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'release-unit-'));
  try {
    const src = path.join(tmp, 'src');
    const dst = path.join(tmp, 'dst');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'conduit-0.1.0.tgz'), 'package-v1');
    fs.writeFileSync(path.join(src, 'index.yaml'), 'index-v1');
    const plan = () => planPublish({ dir: src, to: dst, names: fs.readdirSync(src), helm: new Helm('helm', 4) });
    await executePlan(plan(), { gpgPath: '' });
    assert.is(fs.readFileSync(path.join(dst, 'index.yaml'), 'utf8'), 'index-v1');
    fs.writeFileSync(path.join(src, 'index.yaml'), 'index-v2');
    const again = await executePlan(plan(), { gpgPath: '' });
    assert.equal(
      again.map((o) => o.skipped ?? 'written'),
      ['identical file already published', 'written'],
    );
    fs.writeFileSync(path.join(src, 'conduit-0.1.0.tgz'), 'package-v2');
    fs.writeFileSync(path.join(src, 'index.yaml'), 'index-v3');
    try {
      await executePlan(plan(), { gpgPath: '' });
      assert.unreachable('a changed package must be refused');
    } catch (e) {
      assert.instance(e, UserError);
      assert.match((e as Error).message, /already published with different content/);
    }
    assert.is(fs.readFileSync(path.join(dst, 'conduit-0.1.0.tgz'), 'utf8'), 'package-v1');
    assert.is(fs.readFileSync(path.join(dst, 'index.yaml'), 'utf8'), 'index-v2', 'the index is not touched when a package is refused');
    assert.equal(
      fs.readdirSync(dst).filter((n) => n.endsWith('.tmp')),
      [],
      'no temporary files left',
    );
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('push-oci plan and digest parsing', () => {
  const plan = planPushOci({ pkg: '/o/conduit-0.1.0.tgz', registry: 'oci://127.0.0.1:5000/charts/', plainHttp: true, helm: new Helm('helm', 3), meta: { name: 'conduit', version: '0.1.0' } });
  assert.equal(runSteps(plan.steps)[0].args, ['push', '/o/conduit-0.1.0.tgz', 'oci://127.0.0.1:5000/charts', '--plain-http']);
  assert.equal(plan.outputs, ['oci://127.0.0.1:5000/charts/conduit:0.1.0']);
  for (const bad of ['https://r.example/charts', 'oci://', 'oci://user:pw@r.example/c'])
    assert.throws(() => planPushOci({ pkg: 'p', registry: bad, plainHttp: false, helm: new Helm('helm', 4), meta: meta() }), /registry/);
  const d = 'sha256:' + 'b'.repeat(64);
  assert.is(parsePushDigest(`Pushed: 127.0.0.1:5000/charts/conduit:0.1.0\nDigest: ${d}\n`), d);
  assert.is(parsePushDigest('Pushed: x\n'), undefined);
});

test('validate.ts --json is summarised per cluster and Kubernetes version', () => {
  const doc = {
    ok: false,
    kubeVersions: ['1.34.0', '1.36.3'],
    clusters: [
      { cluster: 'local', ok: true },
      { cluster: 'prod-eu', ok: false },
    ],
  };
  assert.is(summarizeValidation(JSON.stringify(doc)), '2 cluster(s) × Kubernetes 1.34.0, 1.36.3; invalid: prod-eu');
  assert.is(summarizeValidation(JSON.stringify({ ok: false, error: 'no such cluster' })), 'no such cluster');
  assert.is(summarizeValidation('not json'), '');
});

test.run();
