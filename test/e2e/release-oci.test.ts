// The OCI side of a release, against a real registry (the CNCF distribution registry from Debian's
// docker-registry package) on 127.0.0.1: push-oci with Helm 3 and Helm 4 prints the digest the
// registry itself reports, the provenance travels with the chart, and users render, verify and
// install from oci:// (into the built-in local cluster) by version, and render by digest.
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../scripts/lib/core/exec.ts';
import { readChartMeta } from '../../scripts/lib/engines/release.ts';
import { CHART_DIR } from '../../scripts/lib/core/paths.ts';
import type { HelmMajor } from '../../scripts/lib/adapters/helm.ts';
import { helmUser, jsonOf, makeSigningKey, registryManifestDigest, releaseCli, startRegistry, tempDir, type Registry, type SigningKey } from './release-harness.ts';
import { installChart } from './release-install.ts';

const test = suite('release: OCI registry');
const current = readChartMeta(CHART_DIR);
let registry: Registry;
let key: SigningKey;
let work: string;
let out: string;

test.before(async () => {
  work = tempDir('release-oci');
  out = path.join(work, 'out');
  [registry, key] = await Promise.all([startRegistry(), makeSigningKey('oci-signer', 'oci-passphrase')]);
  // This suite signs the way an operator with a legacy secret keyring and a passphrase file does.
  const secring = path.join(work, 'secring.gpg');
  const passFile = path.join(work, 'passphrase');
  fs.writeFileSync(passFile, 'oci-passphrase\n', { mode: 0o600 });
  const exp = await run('gpg', ['--batch', '--pinentry-mode', 'loopback', '--passphrase-file', passFile, '--output', secring, '--export-secret-keys', key.email], { env: { GNUPGHOME: key.home } });
  if (exp.exitCode !== 0) throw new Error(exp.stderr);
  const pkg = await releaseCli(['package', '--out', out, '--sign', '--key', key.email, '--keyring', secring, '--passphrase-file', passFile]);
  if (pkg.exitCode !== 0) throw new Error(`package failed: ${pkg.stderr}`);
  fs.copyFileSync(key.publicKeyring, path.join(out, 'pubkey.gpg'));
});

test.after(async () => {
  await registry?.stop();
  await key?.cleanup();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('push-oci --dry-run prints the helm push it would run and pushes nothing', async () => {
  const r = await releaseCli(['push-oci', '--out', out, '--registry', `oci://${registry.host}/dry`, '--plain-http', '--dry-run', '--json']);
  assert.is(r.exitCode, 0, r.stderr);
  const plan = jsonOf(r).plan;
  assert.equal(plan.steps[0].args, ['push', path.join(out, `conduit-${current.version}.tgz`), `oci://${registry.host}/dry`, '--plain-http']);
  assert.is(await registryManifestDigest(registry.host, 'dry/conduit', current.version), undefined);
});

for (const major of [4, 3] as HelmMajor[]) {
  test(`helm ${major}: push-oci prints the registry's manifest digest; template, pull --verify and install from oci://`, async () => {
    const repo = `charts-helm${major}`;
    const user = await helmUser(major);
    try {
      const push = await releaseCli(['push-oci', '--helm', String(major), '--out', out, '--registry', `oci://${registry.host}/${repo}`, '--plain-http', '--json'], user.env);
      assert.is(push.exitCode, 0, push.stderr);
      const doc = jsonOf(push);
      assert.match(doc.digest, /^sha256:[a-f0-9]{64}$/);
      assert.is(doc.provenance, true);
      const served = await registryManifestDigest(registry.host, `${repo}/conduit`, current.version);
      assert.is(doc.digest, served, 'the printed digest is the one the registry serves');

      const ref = `oci://${registry.host}/${repo}/conduit`;
      const tpl = await user.helm(['template', 'conduit', ref, '--version', current.version, '--plain-http']);
      assert.is(tpl.exitCode, 0, tpl.stderr);
      assert.match(tpl.stdout, /kind: Deployment/);
      const byDigest = await user.helm(['template', 'conduit', `${ref}@${doc.digest}`, '--plain-http']);
      assert.is(byDigest.exitCode, 0, byDigest.stderr);
      // Generated secrets differ per render; the objects rendered must not.
      const sources = (out: string) => out.match(/^# Source: .*$|^kind: .*$/gm) ?? [];
      assert.equal(sources(byDigest.stdout), sources(tpl.stdout), 'by digest and by version render the same chart');

      const dest = fs.mkdtempSync(path.join(work, 'pull-'));
      const pull = await user.helm(['pull', ref, '--version', current.version, '--plain-http', '--verify', '--keyring', path.join(out, 'pubkey.gpg'), '--destination', dest]);
      assert.is(pull.exitCode, 0, pull.stderr);
      assert.match(pull.stdout + pull.stderr, new RegExp(`Using Key With Fingerprint: ${key.fingerprint}`));
      assert.ok(fs.readFileSync(path.join(dest, `conduit-${current.version}.tgz`)).equals(fs.readFileSync(path.join(out, `conduit-${current.version}.tgz`))), 'the registry serves the pushed bytes');

      const installed = await installChart(user, { chart: ref, version: current.version, verifyKeyring: path.join(out, 'pubkey.gpg'), extraArgs: ['--plain-http'] });
      assert.ok(installed.ok, installed.detail);
      assert.is(installed.chartVersion, current.version);
      assert.equal(installed.availableDeployments, ['conduit-admin', 'conduit-api'], installed.detail);
    } finally {
      user.cleanup();
    }
  });
}

test('both Helm majors push the same package to the same digest', async () => {
  const d4 = await registryManifestDigest(registry.host, 'charts-helm4/conduit', current.version);
  const d3 = await registryManifestDigest(registry.host, 'charts-helm3/conduit', current.version);
  assert.ok(d4 && d3);
  assert.is(d3, d4);
});

test('push-oci refuses a registry URL with credentials and a missing package (exit 2 / 1, nothing pushed)', async () => {
  const creds = await releaseCli(['push-oci', '--out', out, '--registry', `oci://user:secret@${registry.host}/x`]);
  assert.is(creds.exitCode, 2);
  assert.match(creds.stderr, /must not contain credentials/);
  assert.not.match(creds.stderr, /secret@/);
  const missing = await releaseCli(['push-oci', '--out', path.join(work, 'empty'), '--registry', `oci://${registry.host}/x`, '--plain-http']);
  assert.is(missing.exitCode, 1);
  assert.match(missing.stderr, /does not exist/);
  assert.is(await registryManifestDigest(registry.host, 'x/conduit', current.version), undefined);
});

test.run();
