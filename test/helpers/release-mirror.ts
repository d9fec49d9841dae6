// A stand-in for the tools' release hosts, for tests and the first-run bench: a directory laid out
// like an internal mirror (<root>/<host>/<path of the official URL>) holding, for each tool, the
// archive its publisher ships (made here from the binary in a tool cache, same name, same layout,
// same member path) and the checksum file in the publisher's format, served over HTTP on 127.0.0.1.
// Faults (a damaged archive, a wrong checksum, a missing file, a transfer cut off mid-body) are
// made by changing the files or by asking the server to cut a path short.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { run } from '../../scripts/lib/core/exec.ts';
import { serveDirectory, type Served } from './static-server.ts';
import { currentPlatform, type Platform, type ReleaseAsset } from '../../scripts/lib/adapters/releases.ts';
import { toolSpec, toolsDir, type ToolSpec } from '../../scripts/lib/adapters/tools.ts';

export interface MirrorEntry {
  tool: string;
  asset: ReleaseAsset;
  /** Where the asset and its checksum file sit in the mirror. */
  file: string;
  checksumFile: string;
}

export interface ReleaseMirror {
  root: string;
  entries: MirrorEntry[];
  entry(tool: string): MirrorEntry;
}

/** <root>/<host>/<path>: where an official URL lives in the mirror. */
export function mirrorFile(root: string, officialUrl: string): string {
  const u = new URL(officialUrl);
  return path.join(root, u.host, ...decodeURIComponent(u.pathname).split('/').filter(Boolean));
}

export function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

// --- archives ------------------------------------------------------------------------------------

/**
 * A staging directory holding `member` as a hard link (or copy) of the binary, with a LICENSE beside
 * it as the publishers ship; returns the directory and its top-level entries (what tar packs).
 */
function stage(binary: string, member: string): { dir: string; top: string[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-mirror-stage-'));
  const target = path.join(dir, member);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.writeFileSync(path.join(path.dirname(target), 'LICENSE'), 'Apache License, Version 2.0 (stand-in text for the mirror)\n');
  try {
    fs.linkSync(binary, target);
  } catch {
    fs.copyFileSync(binary, target);
  }
  return { dir, top: fs.readdirSync(dir).sort() };
}

/**
 * A .tar.gz made by GNU tar, as the publishers' release scripts do (member path as given). The gnu
 * format writes long names as extra entries; pax (what Go's archive/tar writes) as extended headers.
 */
export async function writeTarGz(out: string, member: string, binary: string, format: 'gnu' | 'pax' = 'gnu'): Promise<void> {
  const { dir, top } = stage(binary, member);
  try {
    const r = await run('tar', ['-czf', out, `--format=${format}`, '--owner=0', '--group=0', '-C', dir, ...top]);
    if (r.exitCode !== 0) throw new Error(`tar failed: ${r.stderr}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A zip (PKWARE format: local headers, central directory, end record), deflated or stored, unix modes. */
export function writeZip(out: string, entries: { name: string; data: Buffer; mode?: number; store?: boolean }[]): void {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const body = e.store ? e.data : zlib.deflateRawSync(e.data);
    const crc = crc32(e.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(e.store ? 0 : 8, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(e.store ? 0 : 8, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(e.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((e.mode ?? 0o100644) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  fs.writeFileSync(out, Buffer.concat([...locals, cd, end]));
}

// --- checksum files ------------------------------------------------------------------------------

/** A PGP clear-signed text (rclone signs its SHA256SUMS this way), with a throw-away key. */
async function clearSign(text: string): Promise<string> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-mirror-gpg-'));
  fs.chmodSync(home, 0o700);
  const env = { GNUPGHOME: home };
  try {
    const gen = await run('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', 'mirror@example.test', 'ed25519', 'sign', 'never'], { env });
    if (gen.exitCode !== 0) throw new Error(`gpg --quick-gen-key failed: ${gen.stderr}`);
    const signed = await run('gpg', ['--batch', '--clearsign', '--local-user', 'mirror@example.test'], { env, input: text });
    if (signed.exitCode !== 0) throw new Error(`gpg --clearsign failed: ${signed.stderr}`);
    return signed.stdout;
  } finally {
    await run('gpgconf', ['--kill', 'gpg-agent'], { env });
    fs.rmSync(home, { recursive: true, force: true });
  }
}

/** (Re)write the checksum the publisher would serve for an entry: `digest` (default: the file's real one). */
export async function writeChecksum(mirror: ReleaseMirror, tool: string, digest?: string): Promise<void> {
  const e = mirror.entry(tool);
  const hex = digest ?? sha256(e.file);
  const name = path.basename(e.file);
  fs.mkdirSync(path.dirname(e.checksumFile), { recursive: true });
  if (e.asset.checksum.kind === 'single') {
    // dl.k8s.io: the bare digest, no name, no newline.
    fs.writeFileSync(e.checksumFile, hex);
  } else if (e.asset.checksum.kind === 'github-release') {
    // GitHub's release API document: the other fields a client sees are left out.
    const doc = fs.existsSync(e.checksumFile) ? JSON.parse(fs.readFileSync(e.checksumFile, 'utf8')) : { tag_name: new URL(e.asset.checksum.url).pathname.split('/').pop(), assets: [] };
    doc.assets = [...doc.assets.filter((a: { name: string }) => a.name !== name), { name, size: fs.statSync(e.file).size, digest: `sha256:${hex}`, browser_download_url: e.asset.url }];
    fs.writeFileSync(e.checksumFile, JSON.stringify(doc, null, 2));
  } else {
    // sha256sum lines, one per file of the release directory; rclone's file is clear-signed.
    const sumsOf = (t: string) => t.split('\n').filter((l) => /^[0-9a-f]{64} {2}\S/.test(l));
    const existing = fs.existsSync(e.checksumFile) ? sumsOf(fs.readFileSync(e.checksumFile, 'utf8')).filter((l) => !l.endsWith(`  ${name}`)) : [];
    const text = [...existing, `${hex}  ${name}`].sort((a, b) => a.slice(66).localeCompare(b.slice(66))).join('\n') + '\n';
    fs.writeFileSync(e.checksumFile, new URL(e.asset.url).host === 'downloads.rclone.org' ? await clearSign(text) : text);
  }
}

/** Put one tool's release (asset + checksum) into the mirror, made from `binary`. */
export async function addRelease(mirror: ReleaseMirror, spec: ToolSpec, binary: string, platform: Platform): Promise<void> {
  const asset = spec.release?.(platform);
  if (!asset) throw new Error(`${spec.name} has no release for ${platform.os}/${platform.arch}`);
  const entry: MirrorEntry = { tool: spec.name, asset, file: mirrorFile(mirror.root, asset.url), checksumFile: mirrorFile(mirror.root, asset.checksum.url) };
  fs.mkdirSync(path.dirname(entry.file), { recursive: true });
  fs.rmSync(entry.file, { force: true });
  if (asset.archive.kind === 'binary') fs.copyFileSync(binary, entry.file);
  else if (asset.archive.kind === 'tar.gz') await writeTarGz(entry.file, asset.archive.member, binary);
  else writeZip(entry.file, [{ name: asset.archive.member, data: fs.readFileSync(binary), mode: 0o100755 }]);
  mirror.entries = [...mirror.entries.filter((x) => x.tool !== spec.name), entry];
  await writeChecksum(mirror, spec.name);
}

/**
 * A mirror of these tools' releases for this platform, made from the binaries of a tool cache
 * (default: the user's; each must be installed there).
 */
export async function buildReleaseMirror(root: string, tools: string[], fromToolsDir = toolsDir()): Promise<ReleaseMirror> {
  const platform = currentPlatform();
  if (!platform) throw new Error(`no release platform for ${process.platform}/${process.arch}`);
  const mirror: ReleaseMirror = {
    root,
    entries: [],
    entry(tool) {
      const e = this.entries.find((x) => x.tool === tool);
      if (!e) throw new Error(`${tool} is not in the mirror`);
      return e;
    },
  };
  for (const name of tools) {
    const spec = toolSpec(name);
    const binary = path.join(fromToolsDir, spec.name, spec.version, spec.binary);
    if (!fs.existsSync(binary)) throw new Error(`${binary} is missing: install ${name} first (npx zx scripts/tools.ts install ${name})`);
    await addRelease(mirror, spec, binary, platform);
  }
  return mirror;
}

// --- the server ----------------------------------------------------------------------------------

/** The mirror's server: a static server of its root (requests recorded, transfers cut short on demand). */
export type MirrorServer = Served;
export const serveMirror = serveDirectory;

/** The path under which the server serves an official URL. */
export function servedPath(officialUrl: string): string {
  const u = new URL(officialUrl);
  return `/${u.host}${u.pathname}`;
}
