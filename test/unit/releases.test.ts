// The pieces of a release download that need no network: the checksum formats the publishers serve,
// the version check, the mirror layout and its settings, and taking one binary out of a .tar.gz (made
// by GNU tar) or a .zip. test/e2e/tools-download.test.ts runs whole downloads against a local mirror.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { digestFromGithubRelease, digestFromSingleFile, digestFromSumsFile, DownloadError, extractFromTarGz, extractFromZip } from '../../scripts/lib/adapters/download.ts';
import { UserError } from '../../scripts/lib/core/errors.ts';
import { mirroredUrl, RELEASE_PLATFORMS, reportsVersion, toolsMirror, toolsSource } from '../../scripts/lib/adapters/releases.ts';
import { releaseHosts, releaseUrls, TOOLS } from '../../scripts/lib/adapters/tools.ts';
import { writeTarGz, writeZip } from '../helpers/release-mirror.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-releases-test-'));
test.after(() => fs.rmSync(work, { recursive: true, force: true }));

function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars))
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  }
}

async function rejection(p: Promise<unknown>): Promise<DownloadError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, DownloadError);
    return e as DownloadError;
  }
  throw new Error('expected a rejection');
}

test('dl.k8s.io .sha256: the bare digest (a trailing name is tolerated); anything else gives none', () => {
  assert.is(digestFromSingleFile(A), A);
  assert.is(digestFromSingleFile(`${A.toUpperCase()}  kubectl\n`), A);
  assert.is(digestFromSingleFile('<html>not found</html>'), undefined);
  assert.is(digestFromSingleFile(''), undefined);
});

test('sha256sum listings: the line naming the file, with binary-mode and ./ prefixes; other files and other text are not taken', () => {
  const sums = `${B}  kubeconform-linux-arm64.tar.gz\n${A}  kubeconform-linux-amd64.tar.gz\n`;
  assert.is(digestFromSumsFile(sums, 'kubeconform-linux-amd64.tar.gz'), A);
  assert.is(digestFromSumsFile(`${A} *helm-v4.3.2-linux-amd64.tar.gz`, 'helm-v4.3.2-linux-amd64.tar.gz'), A);
  assert.is(digestFromSumsFile(`${A}  ./promtool.tar.gz`, 'promtool.tar.gz'), A);
  assert.is(digestFromSumsFile(sums, 'kubeconform-linux-amd64.tar'), undefined, 'a name that is only a prefix does not match');
  assert.is(digestFromSumsFile(`${A.slice(1)}  x.zip`, 'x.zip'), undefined, 'a short digest is not a sha256');
});

test('a PGP clear-signed SHA256SUMS (rclone) reads like a plain one', () => {
  const signed = [
    '-----BEGIN PGP SIGNED MESSAGE-----',
    'Hash: SHA512',
    '',
    `${B}  rclone-v1.76.0-linux-arm64.zip`,
    `${A}  rclone-v1.76.0-linux-amd64.zip`,
    '-----BEGIN PGP SIGNATURE-----',
    '',
    'iHUEARYKAB0WIQ',
    '=abcd',
    '-----END PGP SIGNATURE-----',
    '',
  ].join('\n');
  assert.is(digestFromSumsFile(signed, 'rclone-v1.76.0-linux-amd64.zip'), A);
});

test("GitHub's release document: the asset's sha256 digest; none when the asset has no digest or the document is not JSON", () => {
  const doc = {
    tag_name: 'v0.8.0',
    assets: [
      { name: 'kwok-linux-amd64', digest: `sha256:${A}` },
      { name: 'kwokctl-linux-amd64', digest: null },
    ],
  };
  assert.is(digestFromGithubRelease(JSON.stringify(doc), 'kwok-linux-amd64'), A);
  assert.is(digestFromGithubRelease(JSON.stringify(doc), 'kwokctl-linux-amd64'), undefined);
  assert.is(digestFromGithubRelease(JSON.stringify(doc), 'kwok-linux-arm64'), undefined);
  assert.is(digestFromGithubRelease('rate limit exceeded', 'kwok-linux-amd64'), undefined);
});

test('the version check: what each tool prints for its pinned version passes; other versions, pre-releases and prefixes do not', () => {
  const pass: [string, string][] = [
    ['v4.3.2+g1a2b3c4', '4.3.2'],
    ['Client Version: v1.36.3\nKustomize Version: v5.8.1', '1.36.3'],
    ['Kubernetes v1.36.3', '1.36.3'],
    ['etcd Version: 3.6.16\nGit SHA: 8a3c9e1\nGo Version: go1.24.5', '3.6.16'],
    ['kwok version v0.8.0 go1.24.4 (linux/amd64)', '0.8.0'],
    ['promtool, version 3.16.0 (branch: HEAD, revision: 1234)', '3.16.0'],
    ['kube-score version: 1.20.0, commit: 0123, built: 2025', '1.20.0'],
    ['helm-docs version 1.14.2', '1.14.2'],
    ['rclone v1.76.0\n- os/version: debian 12', '1.76.0'],
  ];
  for (const [out, v] of pass) assert.ok(reportsVersion(out, v), `${JSON.stringify(out)} reports ${v}`);
  const fail: [string, string][] = [
    ['Client Version: v1.32.4-dispatcher', '1.32.4'],
    ['v4.3.20', '4.3.2'],
    ['v14.3.2', '4.3.2'],
    ['v4.3.2.1', '4.3.2'],
    ['v4.3.2-rc.1', '4.3.2'],
    ['Kubernetes v1.36.2', '1.36.3'],
    ['', '1.36.3'],
  ];
  for (const [out, v] of fail) assert.not.ok(reportsVersion(out, v), `${JSON.stringify(out)} does not report ${v}`);
});

test('the mirror layout: <base>/<host>/<path of the official URL>; a base with a path and a trailing slash works', () => {
  withEnv({ CONDUIT_TOOLS_MIRROR: 'https://mirror.example.com/conduit-tools/' }, () => {
    assert.is(toolsMirror(), 'https://mirror.example.com/conduit-tools');
    assert.is(mirroredUrl('https://get.helm.sh/helm-v4.3.2-linux-amd64.tar.gz'), 'https://mirror.example.com/conduit-tools/get.helm.sh/helm-v4.3.2-linux-amd64.tar.gz');
    assert.is(
      mirroredUrl('https://api.github.com/repos/kubernetes-sigs/kwok/releases/tags/v0.8.0'),
      'https://mirror.example.com/conduit-tools/api.github.com/repos/kubernetes-sigs/kwok/releases/tags/v0.8.0',
    );
  });
  withEnv({ CONDUIT_TOOLS_MIRROR: undefined }, () => assert.is(mirroredUrl('https://dl.k8s.io/release/v1.36.3/bin/linux/amd64/kubectl'), 'https://dl.k8s.io/release/v1.36.3/bin/linux/amd64/kubectl'));
  withEnv({ CONDUIT_TOOLS_MIRROR: 'file:///srv/tools' }, () => assert.is(mirroredUrl('https://get.helm.sh/x.tar.gz'), 'file:///srv/tools/get.helm.sh/x.tar.gz'));
});

test('a bad CONDUIT_TOOLS_SOURCE or CONDUIT_TOOLS_MIRROR is a usage error (exit 2) naming the variable and its values', () => {
  for (const [vars, call, words] of [
    [{ CONDUIT_TOOLS_SOURCE: 'fast' }, toolsSource, ['CONDUIT_TOOLS_SOURCE="fast"', 'auto, download, build']],
    [{ CONDUIT_TOOLS_MIRROR: 'ftp://mirror.example.com' }, toolsMirror, ['CONDUIT_TOOLS_MIRROR="ftp://mirror.example.com"', 'http://']],
    [{ CONDUIT_TOOLS_MIRROR: 'mirror.example.com' }, toolsMirror, ['CONDUIT_TOOLS_MIRROR']],
  ] as const) {
    try {
      withEnv(vars, call);
      assert.unreachable(`${JSON.stringify(vars)} was accepted`);
    } catch (e) {
      assert.instance(e, UserError);
      assert.is((e as UserError).exitCode, 2);
      for (const w of words) assert.ok((e as UserError).message.includes(w), `"${(e as UserError).message}" names ${w}`);
      assert.ok((e as UserError).hint);
    }
  }
  withEnv({ CONDUIT_TOOLS_SOURCE: undefined }, () => assert.is(toolsSource(), 'auto'));
  withEnv({ CONDUIT_TOOLS_SOURCE: 'build' }, () => assert.is(toolsSource(), 'build'));
});

test("every tool but our own collector build has an official release for linux amd64 and arm64; the hosts are the publishers'", () => {
  for (const t of TOOLS) {
    for (const p of RELEASE_PLATFORMS) {
      const a = t.release?.(p);
      if (t.name === 'otelcol') assert.is(a, undefined);
      else {
        assert.ok(a, `${t.name} ${p.arch}`);
        assert.ok(a!.url.startsWith('https://') && a!.checksum.url.startsWith('https://'), `${t.name}: https URLs`);
        if (a!.archive.kind !== 'binary') assert.ok(a!.url.endsWith(`.${a!.archive.kind}`), `${t.name}: ${a!.url} is a ${a!.archive.kind}`);
      }
    }
  }
  assert.equal(releaseHosts().sort(), ['api.github.com', 'dl.k8s.io', 'downloads.rclone.org', 'get.helm.sh', 'github.com']);
  const urls = releaseUrls(RELEASE_PLATFORMS);
  assert.is(new Set(urls).size, urls.length, 'no URL twice');
  assert.ok(urls.includes('https://get.helm.sh/helm-v4.3.2-linux-arm64.tar.gz.sha256sum'));
  assert.ok(urls.includes('https://dl.k8s.io/release/v1.36.3/bin/linux/amd64/kube-apiserver.sha256'));
});

test('a .tar.gz made by GNU tar: the member is taken out byte for byte (nested, beside other files, long paths and names in gnu and pax form)', async () => {
  const payload = Buffer.concat([Buffer.from('#!/bin/sh\necho v1\n'), Buffer.alloc(70_000, 7)]);
  const bin = path.join(work, 'payload');
  fs.writeFileSync(bin, payload, { mode: 0o755 });
  // A long path splits into the ustar prefix and name fields; a long file name needs a gnu long-name
  // entry or a pax extended header.
  const long = `${'d'.repeat(60)}/${'e'.repeat(60)}/tool`;
  const longName = `bin/${'f'.repeat(120)}`;
  const cases = [
    ['linux-amd64/helm', 'gnu'],
    ['kubeconform', 'gnu'],
    [long, 'pax'],
    [longName, 'gnu'],
    [longName, 'pax'],
  ] as const;
  for (const [member, format] of cases) {
    const archive = path.join(work, `a-${member.length}-${format}.tar.gz`);
    await writeTarGz(archive, member, bin, format);
    const out = path.join(work, `out-${member.length}-${format}`);
    await extractFromTarGz(archive, member, out);
    assert.ok(fs.readFileSync(out).equals(payload), member);
    assert.is(fs.statSync(out).mode & 0o777, 0o755);
    const missing = await rejection(extractFromTarGz(archive, 'linux-amd64/kubectl', path.join(work, `missing-${member.length}-${format}`)));
    assert.is(missing.kind, 'archive');
    assert.match(missing.message, /has no linux-amd64\/kubectl/);
  }
});

test('a damaged .tar.gz is an archive error, not a binary', async () => {
  const bin = path.join(work, 'payload2');
  fs.writeFileSync(bin, Buffer.alloc(200_000, 3));
  const archive = path.join(work, 'bad.tar.gz');
  await writeTarGz(archive, 'tool', bin);
  const bytes = fs.readFileSync(archive);
  fs.writeFileSync(path.join(work, 'truncated.tar.gz'), bytes.subarray(0, Math.floor(bytes.length / 2)));
  const flipped = Buffer.from(bytes);
  for (let i = 20; i < flipped.length - 20; i += 97) flipped[i] ^= 0xff;
  fs.writeFileSync(path.join(work, 'flipped.tar.gz'), flipped);
  for (const f of ['truncated.tar.gz', 'flipped.tar.gz']) {
    const e = await rejection(extractFromTarGz(path.join(work, f), 'tool', path.join(work, `${f}.out`)));
    assert.is(e.kind, 'archive', f);
    assert.match(e.message, /is not a readable archive/);
  }
});

test('a .zip: deflated and stored members come out byte for byte; a missing member or a cut-off file is an archive error', async () => {
  const payload = Buffer.concat([Buffer.from('rclone'), Buffer.alloc(100_000, 1), Buffer.from('end')]);
  const zip = path.join(work, 'r.zip');
  writeZip(zip, [
    { name: 'rclone-v1.76.0-linux-amd64/README.txt', data: Buffer.from('readme\n') },
    { name: 'rclone-v1.76.0-linux-amd64/rclone', data: payload, mode: 0o100755 },
    { name: 'rclone-v1.76.0-linux-amd64/rclone.1', data: Buffer.from('man'), store: true },
  ]);
  await extractFromZip(zip, 'rclone-v1.76.0-linux-amd64/rclone', path.join(work, 'rclone'));
  assert.ok(fs.readFileSync(path.join(work, 'rclone')).equals(payload));
  await extractFromZip(zip, 'rclone-v1.76.0-linux-amd64/rclone.1', path.join(work, 'rclone.1'));
  assert.is(fs.readFileSync(path.join(work, 'rclone.1'), 'utf8'), 'man');
  assert.is((await rejection(extractFromZip(zip, 'rclone', path.join(work, 'nothing')))).kind, 'archive');
  fs.writeFileSync(path.join(work, 'cut.zip'), fs.readFileSync(zip).subarray(0, Math.floor(fs.statSync(zip).size / 2)));
  const cut = await rejection(extractFromZip(path.join(work, 'cut.zip'), 'rclone-v1.76.0-linux-amd64/rclone', path.join(work, 'rclone-cut')));
  assert.is(cut.kind, 'archive');
});

test.run();
