// Release downloads with real transfers: a mirror on 127.0.0.1 laid out like the release hosts
// (archives made here from the cached binaries, checksum files in the publishers' formats) stands in
// for get.helm.sh, dl.k8s.io, github.com and downloads.rclone.org. `tools.ts install` runs as a user
// runs it, with a fresh cache; each fault falls back to a real source build (kubeconform: Go, from the
// module cache) and says why in one line, and leaves no partial file behind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { run, type RunResult } from '../../scripts/lib/core/exec.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';
import { toolSpec, tool, toolsDir } from '../../scripts/lib/adapters/tools.ts';
import { addRelease, buildReleaseMirror, mirrorFile, serveMirror, servedPath, sha256, writeChecksum, writeTarGz, type MirrorServer, type ReleaseMirror } from '../helpers/release-mirror.ts';
import { currentPlatform } from '../../scripts/lib/adapters/releases.ts';

const DOWNLOADED = ['kubeconform', 'kubectl', 'kwokctl', 'rclone'];
const ARCH = currentPlatform()?.arch ?? 'amd64';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-tools-download-'));
const noGo = path.join(work, 'bin-empty');
const withGo = path.join(work, 'bin-go');
let mirror: ReleaseMirror;
let server: MirrorServer;
let caches = 0;

const T = suite('tools-download');

T.before(async () => {
  // The source binaries: the user's cache (CI installs every tool before the tests).
  for (const name of [...DOWNLOADED, 'helm-docs']) await tool(name);
  fs.mkdirSync(noGo);
  fs.mkdirSync(withGo);
  const go = (process.env.PATH ?? '')
    .split(path.delimiter)
    .map((d) => path.join(d, 'go'))
    .find((p) => fs.existsSync(p));
  if (!go) throw new Error('these tests build from source as the fallback: Go must be on the PATH');
  fs.symlinkSync(go, path.join(withGo, 'go'));
  mirror = await buildReleaseMirror(path.join(work, 'mirror'), DOWNLOADED);
  server = await serveMirror(mirror.root);
});

T.after(async () => {
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

function freshCache(): string {
  return path.join(work, `cache-${++caches}`);
}

/** `tools.ts ARGS` as a user runs it: only the given PATH (no tool on it unless put there), a cache of its own. */
function toolsCli(args: string[], env: { cache: string; bin: string; mirror?: string; source?: string }): Promise<RunResult> {
  const overrides = Object.fromEntries(
    Object.keys(process.env)
      .filter((k) => k.startsWith('CONDUIT_TOOL_'))
      .map((k) => [k, undefined]),
  );
  return run(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'scripts', 'tools.ts'), ...args], {
    cwd: REPO_ROOT,
    env: {
      ...overrides,
      PATH: env.bin,
      CONDUIT_GO: undefined,
      CONDUIT_NO_TOOL_INSTALL: undefined,
      CONDUIT_CACHE_DIR: env.cache,
      CONDUIT_TOOLS_MIRROR: env.mirror ?? server.url,
      CONDUIT_TOOLS_SOURCE: env.source,
    },
    timeoutMs: 5 * 60_000,
  });
}

function versionDir(cache: string, name: string): string {
  return path.join(cache, 'tools', name, toolSpec(name).version);
}

function record(cache: string, name: string): { via: string; from: string } {
  return JSON.parse(fs.readFileSync(path.join(versionDir(cache, name), '.installed.json'), 'utf8'));
}

/** Nothing but the binary and its install record: no partial download or unpack left behind. */
function assertClean(cache: string, name: string): void {
  assert.equal(fs.readdirSync(versionDir(cache, name)).sort(), ['.installed.json', toolSpec(name).binary].sort(), `${name}: only the binary and its record`);
}

const downloadTemps = () => new Set(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('conduit-download-')));

T('a fresh cache fills by download: tar.gz + sha256sum, bare binary + .sha256, bare binary + GitHub digest, zip + clear-signed SHA256SUMS; no Go needed', async () => {
  const cache = freshCache();
  const r = await toolsCli(['install', ...DOWNLOADED], { cache, bin: noGo });
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /4 tool\(s\) ready, 4 downloaded \(.*\), 0 built from source\./);
  assert.match(r.stderr, new RegExp(`downloading kubeconform-linux-${ARCH}\\.tar\\.gz from 127\\.0\\.0\\.1:\\d+`));
  for (const name of DOWNLOADED) {
    const spec = toolSpec(name);
    assert.is(sha256(path.join(versionDir(cache, name), spec.binary)), sha256(path.join(toolsDir(), name, spec.version, spec.binary)), `${name}: the archive's binary, byte for byte`);
    const asset = spec.release!(currentPlatform()!)!;
    assert.equal(record(cache, name), { via: 'download', from: `${server.url}${servedPath(asset.url)}` });
    assert.ok(server.requests.includes(`GET ${servedPath(asset.checksum.url)}`), `${name}: checksum fetched`);
    assertClean(cache, name);
  }
  const list = await toolsCli(['list', '--json'], { cache, bin: noGo });
  const rows = JSON.parse(list.stdout).tools as { name: string; state: string; from: string }[];
  const port = new URL(server.url).port;
  for (const name of DOWNLOADED) assert.equal(rows.find((t) => t.name === name)?.from, `cache (downloaded from 127.0.0.1:${port})`);
  assert.is(rows.find((t) => t.name === 'helm')?.from, `to download from 127.0.0.1:${port}`);
  assert.match(rows.find((t) => t.name === 'otelcol')?.from ?? '', /^to build from source \(no official release of this build\)/);

  // Cached tools are used as they are: no request reaches the mirror.
  const before = server.requests.length;
  const again = await toolsCli(['install', ...DOWNLOADED], { cache, bin: noGo });
  assert.is(again.exitCode, 0, again.stderr);
  assert.match(again.stdout, /4 tool\(s\) ready, 0 downloaded, 0 built from source\./);
  assert.is(server.requests.length, before, 'no network attempt for cached tools');
});

// Each fault: change the mirror, install kubeconform into a fresh cache, expect one line naming the
// cause and a source build, then put the mirror back.
const kubeconform = () => mirror.entry('kubeconform');
const restore = async () => {
  server.cutShort.clear();
  await addRelease(mirror, toolSpec('kubeconform'), path.join(toolsDir(), 'kubeconform', '0.7.0', 'kubeconform'), currentPlatform()!);
};
const faults: { name: string; cause: RegExp; make: () => Promise<void> }[] = [
  {
    name: 'a corrupted archive (its checksum matching the damaged bytes)',
    cause: new RegExp(`kubeconform-linux-${ARCH}\\.tar\\.gz is not a readable archive`),
    make: async () => {
      const bytes = fs.readFileSync(kubeconform().file);
      for (let i = 1000; i < bytes.length - 100; i += 4099) bytes[i] ^= 0x5a;
      fs.writeFileSync(kubeconform().file, bytes);
      await writeChecksum(mirror, 'kubeconform');
    },
  },
  {
    name: 'a wrong checksum',
    cause: new RegExp(`checksum mismatch for kubeconform-linux-${ARCH}\\.tar\\.gz: the publisher's checksum is c{16}…, the download's [0-9a-f]{16}…`),
    make: () => writeChecksum(mirror, 'kubeconform', 'c'.repeat(64)),
  },
  {
    name: 'a missing file',
    cause: new RegExp(`127\\.0\\.0\\.1:\\d+ answered HTTP 404 for /github\\.com/yannh/kubeconform/releases/download/v0\\.7\\.0/kubeconform-linux-${ARCH}\\.tar\\.gz`),
    make: async () => fs.rmSync(kubeconform().file),
  },
  {
    name: 'a transfer cut off mid-body',
    cause: /transfer from 127\.0\.0\.1:\d+ (broke off|ended) after [\d.]+ (KiB|MiB) of [\d.]+ MiB/,
    make: async () => void server.cutShort.add(servedPath(kubeconform().asset.url)),
  },
  {
    name: 'a binary that reports another version',
    cause: /the downloaded kubeconform reports "v0\.6\.0", not 0\.7\.0/,
    make: async () => {
      const script = path.join(work, 'old-kubeconform');
      fs.writeFileSync(script, '#!/bin/sh\necho v0.6.0\n', { mode: 0o755 });
      fs.rmSync(kubeconform().file);
      await writeTarGz(kubeconform().file, 'kubeconform', script);
      await writeChecksum(mirror, 'kubeconform');
    },
  },
];

for (const f of faults) {
  T(`${f.name}: one line saying so, a source build, no partial file in the cache`, async () => {
    await f.make();
    try {
      const cache = freshCache();
      const temps = downloadTemps();
      const r = await toolsCli(['install', 'kubeconform'], { cache, bin: withGo });
      assert.is(r.exitCode, 0, r.stderr);
      const lines = r.stderr.split('\n').filter((l) => l.includes('download failed'));
      assert.is(lines.length, 1, r.stderr);
      assert.match(lines[0], /^kubeconform 0\.7\.0: download failed \(.*\); building it from source instead\.$/);
      assert.match(lines[0], f.cause);
      assert.match(r.stderr, /go install github\.com\/yannh\/kubeconform\/cmd\/kubeconform@v0\.7\.0/);
      assert.match(r.stdout, /0 downloaded, 1 built from source/);
      assert.is(record(cache, 'kubeconform').via, 'build');
      assertClean(cache, 'kubeconform');
      assert.equal(
        [...downloadTemps()].filter((t) => !temps.has(t)),
        [],
        'the download directory is gone',
      );
    } finally {
      await restore();
    }
  });
}

T('no mirror reachable: every tool builds, and why is said once for the run (not once per tool)', async () => {
  const closed = await serveMirror(mirror.root);
  await closed.close();
  const cache = freshCache();
  const r = await toolsCli(['install', 'kubeconform', 'helm-docs'], { cache, bin: withGo, mirror: closed.url });
  assert.is(r.exitCode, 0, r.stderr);
  const said = r.stderr.split('\n').filter((l) => /reachable|download failed/.test(l));
  assert.equal(said.length, 1, r.stderr);
  assert.match(said[0], new RegExp(`^No release mirror is reachable \\(${new URL(closed.url).host}: connection refused\\): the tools this run needs are built from source\\.`));
  assert.match(r.stdout, /2 tool\(s\) ready, 0 downloaded, 2 built from source/);
  assert.is(record(cache, 'helm-docs').via, 'build');
});

T('CONDUIT_TOOLS_SOURCE=download fails instead of building (exit 2, the cause, nothing cached); =build never asks the mirror', async () => {
  fs.rmSync(kubeconform().file);
  try {
    const cache = freshCache();
    const r = await toolsCli(['install', 'kubeconform'], { cache, bin: withGo, source: 'download' });
    assert.is(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /downloading kubeconform 0\.7\.0 failed: 127\.0\.0\.1:\d+ answered HTTP 404/);
    assert.match(r.stderr, /never builds from source/);
    assert.not.ok(fs.existsSync(path.join(versionDir(cache, 'kubeconform'), 'kubeconform')));
  } finally {
    await restore();
  }
  const before = server.requests.length;
  const cache = freshCache();
  const built = await toolsCli(['install', 'kubeconform'], { cache, bin: withGo, source: 'build' });
  assert.is(built.exitCode, 0, built.stderr);
  assert.is(server.requests.length, before, 'CONDUIT_TOOLS_SOURCE=build downloads nothing');
  assert.is(record(cache, 'kubeconform').via, 'build');
});

T('a binary on the PATH at exactly the pinned version is used as is; one at another version is not', async () => {
  const pinned = path.join(work, 'bin-pinned');
  fs.mkdirSync(pinned);
  fs.symlinkSync(path.join(toolsDir(), 'kubeconform', '0.7.0', 'kubeconform'), path.join(pinned, 'kubeconform'));
  const cache = freshCache();
  const before = server.requests.length;
  const r = await toolsCli(['install', 'kubeconform'], { cache, bin: pinned });
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /1 tool\(s\) ready, 0 downloaded, 0 built from source/);
  assert.is(server.requests.length, before);
  const list = JSON.parse((await toolsCli(['list', '--json'], { cache, bin: pinned })).stdout).tools as { name: string; state: string; from: string; path: string }[];
  assert.equal(
    list.find((t) => t.name === 'kubeconform'),
    { ...list.find((t) => t.name === 'kubeconform')!, state: 'path', from: 'PATH', path: path.join(pinned, 'kubeconform') },
  );
  assert.not.ok(fs.existsSync(versionDir(cache, 'kubeconform')), 'nothing cached');

  const old = path.join(work, 'bin-old');
  fs.mkdirSync(old);
  fs.writeFileSync(path.join(old, 'kubeconform'), '#!/bin/sh\necho v0.6.0\n', { mode: 0o755 });
  const other = freshCache();
  const d = await toolsCli(['install', 'kubeconform'], { cache: other, bin: old });
  assert.is(d.exitCode, 0, d.stderr);
  assert.match(d.stdout, /1 downloaded/);
  assert.is(record(other, 'kubeconform').via, 'download');
});

T('the mirror holds each file where its official URL says: <root>/<host>/<path>', () => {
  const e = mirror.entry('kubectl');
  assert.is(e.file, mirrorFile(mirror.root, `https://dl.k8s.io/release/v1.36.3/bin/linux/${ARCH}/kubectl`));
  assert.is(fs.readFileSync(e.checksumFile, 'utf8'), sha256(e.file));
  assert.match(fs.readFileSync(mirror.entry('rclone').checksumFile, 'utf8'), /^-----BEGIN PGP SIGNED MESSAGE-----/);
});

T.run();
