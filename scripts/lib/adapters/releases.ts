// Official release downloads of the pinned tools: where each publisher puts its binaries and
// checksums, an internal mirror standing in for those hosts, and the download itself (verified
// against the publisher's checksum, unpacked into the cache with a temp file + rename, run once to
// check that it reports the pinned version). tools.ts decides when to use it and falls back to a
// source build; this module only says why a download did not work, once and in one line.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { digestFromGithubRelease, digestFromSingleFile, digestFromSumsFile, downloadToFile, DownloadError, extractFromTarGz, extractFromZip, fetchText, CONNECT_TIMEOUT_MS } from './download.ts';
import { usageError } from '../core/errors.ts';

export interface Platform {
  os: 'linux';
  arch: 'amd64' | 'arm64';
}

/** The platforms the publishers build for that the toolkit downloads; anything else builds from source. */
export const RELEASE_PLATFORMS: readonly Platform[] = [
  { os: 'linux', arch: 'amd64' },
  { os: 'linux', arch: 'arm64' },
];

export function currentPlatform(): Platform | undefined {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : undefined;
  return process.platform === 'linux' && arch ? { os: 'linux', arch } : undefined;
}

export function platformName(): string {
  const p = currentPlatform();
  return p ? `${p.os}/${p.arch}` : `${process.platform}/${process.arch}`;
}

export interface ReleaseAsset {
  /** The official URL of the file holding the binary. */
  url: string;
  /** The file is the binary itself, or an archive with the binary at `member`. */
  archive: { kind: 'binary' } | { kind: 'tar.gz' | 'zip'; member: string };
  /**
   * Where the publisher serves the checksum: a file holding one digest (`single`), a `sha256sum`
   * listing that names the asset's file (`sums`), or GitHub's release API document, whose assets
   * carry a sha256 digest (`github-release`, for publishers that upload no checksum file).
   */
  checksum: { kind: 'single' | 'sums' | 'github-release'; url: string };
}

export type ToolsSource = 'auto' | 'download' | 'build';

/** CONDUIT_TOOLS_SOURCE: auto (download, else build), download (never build), build (never download). */
export function toolsSource(): ToolsSource {
  const v = (process.env.CONDUIT_TOOLS_SOURCE ?? '').trim() || 'auto';
  if (v === 'auto' || v === 'download' || v === 'build') return v;
  throw usageError(`CONDUIT_TOOLS_SOURCE="${v}" is not one of auto, download, build`, 'Unset it (auto: official downloads first, source builds as the fallback), or set it to download or build.');
}

/** CONDUIT_TOOLS_MIRROR: the base URL of an internal mirror laid out as <base>/<host>/<path of the official URL>. */
export function toolsMirror(): string | undefined {
  const v = (process.env.CONDUIT_TOOLS_MIRROR ?? '').trim();
  if (!v) return undefined;
  let u: URL | undefined;
  try {
    u = new URL(v);
  } catch {
    u = undefined;
  }
  if (!u || !['http:', 'https:', 'file:'].includes(u.protocol) || u.search || u.hash) {
    throw usageError(
      `CONDUIT_TOOLS_MIRROR="${v}" is not an http://, https:// or file:// base URL`,
      'Set it to the base of a mirror laid out as <base>/<host>/<path> (e.g. https://mirror.example.com/conduit-tools), or unset it (see docs/tools.md).',
    );
  }
  return u.href.replace(/\/+$/, '');
}

/** Where an official URL is fetched from: itself, or its place in the mirror. */
export function mirroredUrl(official: string, mirror = toolsMirror()): string {
  if (!mirror) return official;
  const u = new URL(official);
  return `${mirror}/${u.host}${u.pathname}`;
}

/** The URLs a download of this asset reads (asset and checksum), official. */
export function assetUrls(asset: ReleaseAsset): string[] {
  return [asset.url, asset.checksum.url];
}

function fileName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
}

/** Does a version command's output name exactly this version (v-prefix and +build suffix allowed; no pre-release)? */
export function reportsVersion(output: string, version: string): boolean {
  const v = version.replace(/\./g, '\\.');
  return new RegExp(`(^|[^0-9A-Za-z.])v?${v}(?![0-9A-Za-z-]|\\.[0-9])`, 'm').test(output);
}

// ---------------------------------------------------------------------------------------------
// Reachability, remembered for this process: a host that could not be reached is not tried again,
// and when no release host answers at all that is said once, not once per tool.

const downHosts = new Map<string, string>();
let offline: { announced: boolean; reason: string } | undefined;
let probeAll: Promise<void> | undefined;

function hostOf(url: string): string {
  const u = new URL(url);
  return u.protocol === 'file:' ? 'file' : u.host;
}

/** DNS + TCP connect to the host of url within the connect timeout; undefined when it connects, else why not. */
export async function unreachableReason(url: string, timeoutMs = CONNECT_TIMEOUT_MS): Promise<string | undefined> {
  const u = new URL(url);
  if (u.protocol === 'file:') return fs.existsSync(fileURLToPath(u)) ? undefined : `${fileURLToPath(u)} does not exist`;
  const port = Number(u.port) || (u.protocol === 'https:' ? 443 : 80);
  return new Promise((resolve) => {
    const socket = net.connect({ host: u.hostname, port });
    const done = (reason: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reason);
    };
    const timer = setTimeout(() => done(`no connection within ${timeoutMs / 1000}s`), timeoutMs);
    socket.once('connect', () => done(undefined));
    socket.once('error', (e: NodeJS.ErrnoException) =>
      done(e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN' ? `name not resolved (${e.code})` : e.code === 'ECONNREFUSED' ? 'connection refused' : (e.code ?? e.message)),
    );
  });
}

/** Every host the downloads of these assets would contact (after the mirror mapping), one URL each. */
function hostRoots(assets: readonly ReleaseAsset[]): string[] {
  const roots = new Map<string, string>();
  for (const a of assets) for (const u of assetUrls(a).map((x) => mirroredUrl(x))) roots.set(hostOf(u), u);
  return [...roots.values()];
}

/**
 * After a connection failure: check every release host once (concurrently). When none answers,
 * this run builds from source and says so once; otherwise only the failed host is skipped.
 */
async function noteUnreachable(host: string, reason: string, allAssets: readonly ReleaseAsset[]): Promise<void> {
  downHosts.set(host, reason.startsWith(`${host}: `) ? reason.slice(host.length + 2) : reason);
  probeAll ??= (async () => {
    const roots = hostRoots(allAssets).filter((u) => !downHosts.has(hostOf(u)));
    const results = await Promise.all(roots.map(async (u) => [hostOf(u), await unreachableReason(u)] as const));
    for (const [h, why] of results) if (why) downHosts.set(h, why);
    if (results.some(([, why]) => !why)) return;
    // Hosts grouped by reason: "get.helm.sh, dl.k8s.io: name not resolved (ENOTFOUND)".
    const byReason = new Map<string, string[]>();
    for (const [h, why] of downHosts) byReason.set(why, [...(byReason.get(why) ?? []), h]);
    offline = { announced: false, reason: [...byReason].map(([why, hosts]) => `${hosts.join(', ')}: ${why}`).join('; ') };
  })();
  await probeAll;
}

/** The one line that says why a tool is built rather than downloaded (or nothing, when already said for this run). */
export function fallbackLine(tool: string, version: string, e: DownloadError): string | undefined {
  if (offline) {
    if (offline.announced) return undefined;
    offline.announced = true;
    const mirror = toolsMirror();
    return (
      `No release ${mirror ? 'mirror' : 'host'} is reachable (${offline.reason}): the tools this run needs are built from source. ` +
      (mirror
        ? 'Check CONDUIT_TOOLS_MIRROR, or set CONDUIT_TOOLS_SOURCE=build to skip downloads.'
        : 'Set CONDUIT_TOOLS_SOURCE=build to skip this check, or CONDUIT_TOOLS_MIRROR for an internal mirror.')
    );
  }
  return `${tool} ${version}: download failed (${e.message}); building it from source instead.`;
}

// ---------------------------------------------------------------------------------------------
// The download

export interface ReleaseRequest {
  name: string;
  version: string;
  asset: ReleaseAsset;
  /** The cache path of the binary; written only once everything checked out. */
  dest: string;
  /** Runs the unpacked binary (at the path given) and resolves with what its version command printed, or rejects. */
  versionOf: (binary: string) => Promise<string>;
  /** Every tool's asset for this platform (to check all release hosts after a connection failure). */
  allAssets: readonly ReleaseAsset[];
}

async function expectedDigest(asset: ReleaseAsset): Promise<string> {
  const url = mirroredUrl(asset.checksum.url);
  const text = await fetchText(url);
  const name = fileName(asset.url);
  const digest = asset.checksum.kind === 'single' ? digestFromSingleFile(text) : asset.checksum.kind === 'sums' ? digestFromSumsFile(text, name) : digestFromGithubRelease(text, name);
  if (!digest) throw new DownloadError('checksum', `${url} gives no sha256 for ${name}`, hostOf(url));
  return digest;
}

function progressReporter(progress: ((note: string) => void) | undefined, file: string, host: string) {
  let last = performance.now();
  return (received: number, total?: number) => {
    const now = performance.now();
    if (!progress || (now - last < 1000 && received !== total)) return;
    last = now;
    const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
    progress(`downloading ${file} from ${host}: ${mib(received)}${total ? `/${mib(total)} MiB (${Math.floor((received / total) * 100)}%)` : ' MiB'}`);
  };
}

async function unpack(asset: ReleaseAsset, file: string, out: string): Promise<void> {
  if (asset.archive.kind === 'binary') {
    fs.copyFileSync(file, out, fs.constants.COPYFILE_EXCL);
    fs.chmodSync(out, 0o755);
  } else if (asset.archive.kind === 'tar.gz') await extractFromTarGz(file, asset.archive.member, out);
  else await extractFromZip(file, asset.archive.member, out);
}

async function checkVersion(binary: string, req: ReleaseRequest): Promise<void> {
  let out: string;
  try {
    out = await req.versionOf(binary);
  } catch (e) {
    throw new DownloadError('version', `the downloaded ${req.name} does not run (${(e as Error).message.split('\n')[0]})`);
  }
  if (!reportsVersion(out, req.version)) throw new DownloadError('version', `the downloaded ${req.name} reports "${out.split('\n')[0]}", not ${req.version}`);
}

/**
 * Download, verify, unpack and check one tool; on success req.dest exists. Throws a DownloadError
 * (nothing left behind in the cache) for any failure, including a host known to be down.
 */
export async function fetchRelease(req: ReleaseRequest, progress?: (note: string) => void): Promise<string> {
  const assetUrl = mirroredUrl(req.asset.url);
  for (const u of [mirroredUrl(req.asset.checksum.url), assetUrl]) {
    const down = downHosts.get(hostOf(u));
    if (down) throw new DownloadError('unreachable', `${hostOf(u)} is unreachable (${down})`, hostOf(u));
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `conduit-download-${req.name}-`));
  const partial = `${req.dest}.partial-${process.pid}`;
  try {
    const expected = await expectedDigest(req.asset);
    const file = path.join(tmp, fileName(req.asset.url));
    progress?.(`downloading ${fileName(req.asset.url)} from ${hostOf(assetUrl)}`);
    const got = await downloadToFile(assetUrl, file, { onProgress: progressReporter(progress, fileName(req.asset.url), hostOf(assetUrl)) });
    if (got.sha256 !== expected) {
      throw new DownloadError(
        'checksum',
        `checksum mismatch for ${fileName(req.asset.url)}: the publisher's checksum is ${expected.slice(0, 16)}…, the download's ${got.sha256.slice(0, 16)}…`,
        hostOf(assetUrl),
      );
    }
    fs.mkdirSync(path.dirname(req.dest), { recursive: true });
    await unpack(req.asset, file, partial);
    await checkVersion(partial, req);
    fs.renameSync(partial, req.dest);
    return assetUrl;
  } catch (e) {
    if (e instanceof DownloadError && e.kind === 'unreachable' && e.host) await noteUnreachable(e.host, e.message, req.allAssets);
    throw e;
  } finally {
    fs.rmSync(partial, { force: true });
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
