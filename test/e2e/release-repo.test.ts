// The classic HTTP chart repository, end to end: a previous release (0.0.9) and the current one are
// packaged and GPG-signed with a throwaway key, indexed (the second index keeps the first's entries)
// and published into a directory served over HTTP on 127.0.0.1. Then Helm 3 and Helm 4 users add the
// repository, search it, pull and install with --verify exactly as the install docs say, and a
// tampered package or a foreign key fails verification. Installs go into the built-in local cluster
// (a restricted namespace per install, removed afterwards).
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parse as parseYaml } from 'yaml';
import { readChartMeta } from '../../scripts/lib/engines/release.ts';
import { CHART_DIR } from '../../scripts/lib/core/paths.ts';
import type { HelmMajor } from '../../scripts/lib/adapters/helm.ts';
import { chartAtVersion, helmUser, jsonOf, makeSigningKey, releaseCli, serveDirectory, tamperPackage, tempDir, type Served, type SigningKey } from './release-harness.ts';
import { installChart } from './release-install.ts';

const test = suite('release: HTTP repository');
const current = readChartMeta(CHART_DIR);
const PREVIOUS = '0.0.9';
const PASSPHRASE = 'e2e-only-passphrase-' + process.pid;

let key: SigningKey;
let stranger: SigningKey;
let served: Served;
let root: string;
let work: string;
let repoUrl: string;
let publishDir: string;

test.before(async () => {
  work = tempDir('release-repo');
  root = path.join(work, 'www');
  publishDir = path.join(root, 'charts');
  fs.mkdirSync(publishDir, { recursive: true });
  [key, stranger] = await Promise.all([makeSigningKey('release-signer', PASSPHRASE), makeSigningKey('stranger')]);
  served = await serveDirectory(root);
  repoUrl = `${served.url}/charts`;
});

test.after(async () => {
  await served?.close();
  await key?.cleanup();
  await stranger?.cleanup();
  fs.rmSync(work, { recursive: true, force: true });
});

const signEnv = () => ({ GNUPGHOME: key.home, CONDUIT_SIGN_PASSPHRASE: PASSPHRASE });

async function release(chartDir: string, out: string, merge: boolean, helm: HelmMajor = 4) {
  const pkg = await releaseCli(['package', '--helm', String(helm), '--chart', chartDir, '--out', out, '--sign', '--key', key.email, '--key-url', `${repoUrl}/pubkey.asc`, '--json'], signEnv());
  assert.is(pkg.exitCode, 0, pkg.stderr);
  assert.not.match(pkg.stdout + pkg.stderr, PASSPHRASE, 'the passphrase is never printed');
  const idx = await releaseCli(['index', '--helm', String(helm), '--out', out, '--url', repoUrl, ...(merge ? ['--merge', `${repoUrl}/index.yaml`] : []), '--json']);
  assert.is(idx.exitCode, 0, idx.stderr);
  const pub = await releaseCli(['publish', '--out', out, '--to', publishDir, '--json']);
  assert.is(pub.exitCode, 0, pub.stderr);
  return { pkg: jsonOf(pkg), idx: jsonOf(idx), pub: jsonOf(pub) };
}

test('package --sign, index and publish the previous release (helm 3), then the current one with --merge (helm 4)', async () => {
  const prev = await release(chartAtVersion(PREVIOUS, path.join(work, 'prev-src')), path.join(work, 'out-prev'), false, 3);
  assert.is(prev.pkg.version, PREVIOUS);
  assert.is(prev.pkg.fingerprint, key.fingerprint);
  assert.is(prev.idx.kept, 0);

  const cur = await release(CHART_DIR, path.join(work, 'out-cur'), true);
  const files = cur.pkg.artifacts.map((a: { file: string }) => path.basename(a.file)).sort();
  assert.equal(files, [`conduit-${current.version}.tgz`, `conduit-${current.version}.tgz.prov`, 'pubkey.asc', 'pubkey.gpg']);
  assert.is(cur.idx.kept, 1, 'the published 0.0.9 entry is kept');
  assert.equal(cur.idx.entries.map((e: { version: string }) => e.version).sort(), [PREVIOUS, current.version].sort());
  assert.is(cur.pub.files.at(-1).file, 'index.yaml', 'index.yaml is published last');
  assert.ok(served.requests.includes('GET /charts/index.yaml'), 'index --merge read the published index over HTTP');

  const index = parseYaml(fs.readFileSync(path.join(publishDir, 'index.yaml'), 'utf8'));
  const entry = index.entries.conduit.find((e: { version: string }) => e.version === current.version);
  assert.equal(entry.urls, [`${repoUrl}/conduit-${current.version}.tgz`]);
  assert.match(entry.annotations['artifacthub.io/signKey'], new RegExp(`fingerprint: ${key.fingerprint}`));
  assert.ok(fs.existsSync(path.join(publishDir, 'artifacthub-repo.yml')));
  assert.equal(
    fs.readdirSync(publishDir).filter((n) => n.endsWith('.tmp')),
    [],
  );
});

test('repeating the release of the same commit (helm 4 packages reproducibly) changes no package', async () => {
  const again = await release(CHART_DIR, path.join(work, 'out-repeat'), true);
  const tgz = again.pub.files.find((f: { file: string }) => f.file === `conduit-${current.version}.tgz`);
  assert.is(tgz.state, 'unchanged');
  assert.is(again.idx.kept, 2);
});

test('a released version is immutable: re-packaging it is refused by index and by publish', async () => {
  const out = path.join(work, 'out-again');
  const pkg = await releaseCli(['package', '--out', out]);
  assert.is(pkg.exitCode, 0, pkg.stderr);
  const idx = await releaseCli(['index', '--out', out, '--url', repoUrl, '--merge', `${repoUrl}/index.yaml`]);
  assert.is(idx.exitCode, 1);
  assert.match(idx.stderr, new RegExp(`released versions cannot change: conduit ${current.version.replace(/\./g, '\\.')}`));
  fs.copyFileSync(path.join(publishDir, 'index.yaml'), path.join(out, 'index.yaml'));
  const before = fs.readFileSync(path.join(publishDir, `conduit-${current.version}.tgz`));
  const pub = await releaseCli(['publish', '--out', out, '--to', publishDir]);
  assert.is(pub.exitCode, 1);
  assert.match(pub.stderr, /already published with different content/);
  assert.ok(before.equals(fs.readFileSync(path.join(publishDir, `conduit-${current.version}.tgz`))));
});

for (const major of [3, 4] as HelmMajor[]) {
  test(`helm ${major}: repo add, search, pull --verify, install --verify from the HTTP repository`, async () => {
    const user = await helmUser(major);
    try {
      const add = await user.helm(['repo', 'add', 'conduit', repoUrl]);
      assert.is(add.exitCode, 0, add.stderr);
      const search = await user.helm(['search', 'repo', 'conduit/conduit', '--versions', '-o', 'json']);
      assert.is(search.exitCode, 0, search.stderr);
      const found = JSON.parse(search.stdout) as { name: string; version: string; app_version: string }[];
      assert.equal(
        found.map((f) => f.version),
        [current.version, PREVIOUS],
      );
      assert.is(found[0].app_version, current.appVersion);

      const dest = fs.mkdtempSync(path.join(work, 'pull-'));
      const pull = await user.helm(['pull', 'conduit/conduit', '--version', current.version, '--verify', '--keyring', path.join(publishDir, 'pubkey.gpg'), '--destination', dest]);
      assert.is(pull.exitCode, 0, pull.stderr);
      assert.match(pull.stdout + pull.stderr, new RegExp(`Using Key With Fingerprint: ${key.fingerprint}`));
      assert.ok(fs.existsSync(path.join(dest, `conduit-${current.version}.tgz`)));
      fs.rmSync(dest, { recursive: true, force: true });

      const installed = await installChart(user, { chart: 'conduit/conduit', version: current.version, verifyKeyring: path.join(publishDir, 'pubkey.gpg') });
      assert.ok(installed.ok, installed.detail);
      assert.is(installed.chartVersion, current.version);
      assert.equal(installed.availableDeployments, ['conduit-admin', 'conduit-api'], installed.detail);

      const foreign = await user.helm([
        'pull',
        'conduit/conduit',
        '--version',
        current.version,
        '--verify',
        '--keyring',
        stranger.publicKeyring,
        '--destination',
        fs.mkdtempSync(path.join(work, 'pull-')),
      ]);
      assert.is.not(foreign.exitCode, 0, 'a package signed by another key must not verify');
      assert.match(foreign.stderr, /unknown entity|no signature|not signed|openpgp/i);
    } finally {
      user.cleanup();
    }
  });
}

test('a tampered package fails --verify for helm 3 and helm 4 (pull, template and install)', async () => {
  const tamperedDir = path.join(root, 'tampered');
  fs.cpSync(publishDir, tamperedDir, { recursive: true });
  const pkgName = `conduit-${current.version}.tgz`;
  await tamperPackage(path.join(publishDir, pkgName), path.join(tamperedDir, pkgName));
  const index = fs.readFileSync(path.join(tamperedDir, 'index.yaml'), 'utf8').split(`${repoUrl}/`).join(`${served.url}/tampered/`);
  fs.writeFileSync(path.join(tamperedDir, 'index.yaml'), index);
  for (const major of [3, 4] as HelmMajor[]) {
    const user = await helmUser(major);
    try {
      assert.is((await user.helm(['repo', 'add', 'mirror', `${served.url}/tampered`])).exitCode, 0);
      const keyring = path.join(publishDir, 'pubkey.gpg');
      const pull = await user.helm(['pull', 'mirror/conduit', '--version', current.version, '--verify', '--keyring', keyring, '--destination', fs.mkdtempSync(path.join(work, 'pull-'))]);
      assert.is.not(pull.exitCode, 0, `helm ${major} pull --verify accepted a tampered package`);
      assert.match(pull.stderr, /sha256 sum does not match/);
      const tpl = await user.helm(['template', 'conduit', 'mirror/conduit', '--version', current.version, '--verify', '--keyring', keyring]);
      assert.is.not(tpl.exitCode, 0, `helm ${major} template --verify accepted a tampered package`);
      const inst = await installChart(user, { chart: 'mirror/conduit', version: current.version, verifyKeyring: keyring });
      assert.not.ok(inst.ok, `helm ${major} install --verify accepted a tampered package`);
      assert.match(inst.detail, /sha256 sum does not match/);
      // Without --verify the same package is accepted: the check is what protects the user.
      const plain = await user.helm(['template', 'conduit', 'mirror/conduit', '--version', current.version]);
      assert.is(plain.exitCode, 0, plain.stderr);
    } finally {
      user.cleanup();
    }
  }
});

test.run();
