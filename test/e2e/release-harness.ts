// What the release e2e suites share: the release CLI run as an operator runs it, a throwaway GPG
// key in its own GNUPGHOME, a static HTTP server and a real OCI registry (Debian's docker-registry)
// on 127.0.0.1, one set of Helm home directories per Helm major, and the "previous version" fixture.
// Everything started here is stopped by the returned cleanup functions.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { run, type RunResult } from '../../scripts/lib/core/exec.ts';
import { CHART_DIR } from '../../scripts/lib/core/paths.ts';
import { tool } from '../../scripts/lib/adapters/tools.ts';
import { helmToolName, type HelmMajor } from '../../scripts/lib/adapters/helm.ts';
import { freePort } from './services.ts';
import { runScript } from '../helpers/zxscript.ts';

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `conduit-e2e-${prefix}-`));
}

/** `npx zx scripts/release.ts ARGS` from the repository root. */
export function releaseCli(args: string[], env: Record<string, string | undefined> = {}): Promise<RunResult> {
  return runScript('release', args, { env });
}

/** Parse the --json document of a CLI run, failing with its stderr when it is not JSON. */
export function jsonOf(r: RunResult): any {
  // eslint-disable-line @typescript-eslint/no-explicit-any
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`not JSON (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
  }
}

// --- GPG -----------------------------------------------------------------------------------------

export interface SigningKey {
  home: string;
  email: string;
  fingerprint: string;
  passphrase?: string;
  /** Binary public keyring of this key (what helm --keyring reads). */
  publicKeyring: string;
  cleanup: () => Promise<void>;
}

/** A fresh RSA signing key in a temporary GNUPGHOME, optionally protected by a passphrase. */
export async function makeSigningKey(name: string, passphrase?: string): Promise<SigningKey> {
  const home = tempDir('gnupg');
  fs.chmodSync(home, 0o700);
  const email = `${name}@example.test`;
  const params = [
    ...(passphrase ? [] : ['%no-protection']),
    'Key-Type: RSA',
    'Key-Length: 2048',
    'Key-Usage: sign',
    ...(passphrase ? [`Passphrase: ${passphrase}`] : []),
    `Name-Real: Conduit ${name}`,
    `Name-Email: ${email}`,
    'Expire-Date: 0',
    '%commit',
    '',
  ].join('\n');
  const env = { GNUPGHOME: home };
  const gen = await run('gpg', ['--batch', '--pinentry-mode', 'loopback', '--gen-key'], { env, input: params });
  if (gen.exitCode !== 0) throw new Error(`gpg --gen-key failed: ${gen.stderr}`);
  const list = await run('gpg', ['--batch', '--with-colons', '--fingerprint', email], { env });
  const fingerprint =
    list.stdout
      .split('\n')
      .find((l) => l.startsWith('fpr:'))
      ?.split(':')[9] ?? '';
  const publicKeyring = path.join(home, 'exported-pubring.gpg');
  const exp = await run('gpg', ['--batch', '--yes', '--output', publicKeyring, '--export', email], { env });
  if (exp.exitCode !== 0 || !fingerprint) throw new Error(`gpg key setup failed: ${exp.stderr}${list.stderr}`);
  return {
    home,
    email,
    fingerprint,
    passphrase,
    publicKeyring,
    cleanup: async () => {
      // gpg started an agent for this home: stop it, then remove the home.
      await run('gpgconf', ['--kill', 'gpg-agent'], { env });
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}

// --- HTTP ------------------------------------------------------------------------------------------

export { serveDirectory, type Served } from '../helpers/static-server.ts';

// --- OCI registry ----------------------------------------------------------------------------------

export interface Registry {
  host: string;
  stop: () => Promise<void>;
}

/**
 * Debian's docker-registry (the CNCF distribution registry) on 127.0.0.1 with a temporary filesystem
 * root. `htpasswd`: lines `user:bcrypt-hash`; the registry then answers 401 with a basic challenge
 * to requests without those credentials.
 */
export async function startRegistry(options: { htpasswd?: string } = {}): Promise<Registry> {
  const bin = ['/usr/bin/docker-registry', '/usr/sbin/docker-registry'].find((p) => fs.existsSync(p));
  if (!bin) throw new Error('docker-registry is not installed: apt-get install docker-registry (the OCI tests need a real registry)');
  const dir = tempDir('registry');
  const port = await freePort();
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      ...(options.htpasswd ? ['auth:', '  htpasswd:', '    realm: conduit-e2e', `    path: ${path.join(dir, 'htpasswd')}`] : []),
      '',
    ].join('\n'),
  );
  if (options.htpasswd) fs.writeFileSync(path.join(dir, 'htpasswd'), options.htpasswd.trimEnd() + '\n');
  const { spawn } = await import('node:child_process');
  const child = spawn(bin, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const host = `127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited ${child.exitCode}: ${log}`);
    try {
      const r = await fetch(`http://${host}/v2/`);
      if (r.status === 200 || (options.htpasswd && r.status === 401)) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`docker-registry did not answer on ${host}: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Push a minimal image (an OCI manifest with a config blob and no layers) through the registry's
 * HTTP API, as a client would; returns the manifest digest. `auth`: basic credentials.
 */
export async function pushTestImage(host: string, repository: string, tag: string, auth?: { username: string; password: string }): Promise<string> {
  const headers: Record<string, string> = auth ? { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` } : {};
  const sha = (b: Buffer) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } }));
  const start = await fetch(`http://${host}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers });
  if (start.status !== 202) throw new Error(`blob upload to ${host}/${repository} not started: HTTP ${start.status} ${await start.text()}`);
  const location = new URL(start.headers.get('location')!, `http://${host}`);
  location.searchParams.set('digest', sha(config));
  const put = await fetch(location, { method: 'PUT', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: config });
  if (put.status !== 201) throw new Error(`config blob not stored: HTTP ${put.status} ${await put.text()}`);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [],
    }),
  );
  const m = await fetch(`http://${host}/v2/${repository}/manifests/${tag}`, { method: 'PUT', headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
  if (m.status !== 201) throw new Error(`manifest ${repository}:${tag} not stored: HTTP ${m.status} ${await m.text()}`);
  return sha(manifest);
}

/** The digest the registry itself reports for a manifest (HTTP API v2, HEAD with the OCI media type). */
export async function registryManifestDigest(host: string, repository: string, reference: string): Promise<string | undefined> {
  const r = await fetch(`http://${host}/v2/${repository}/manifests/${reference}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  return r.ok ? (r.headers.get('docker-content-digest') ?? undefined) : undefined;
}

// --- Helm ------------------------------------------------------------------------------------------

export interface HelmUser {
  major: HelmMajor;
  binary: string;
  env: Record<string, string>;
  /** Run this helm with this user's own config, cache and data homes. */
  helm: (args: string[], extraEnv?: Record<string, string>) => Promise<RunResult>;
  cleanup: () => void;
}

/** A Helm user with empty HELM_CONFIG_HOME/HELM_CACHE_HOME/HELM_DATA_HOME (no repositories, no registry logins). */
export async function helmUser(major: HelmMajor, extraEnv: Record<string, string> = {}): Promise<HelmUser> {
  const binary = await tool(helmToolName(major));
  const home = tempDir(`helm${major}`);
  const env = {
    HELM_CONFIG_HOME: path.join(home, 'config'),
    HELM_CACHE_HOME: path.join(home, 'cache'),
    HELM_DATA_HOME: path.join(home, 'data'),
    ...extraEnv,
  };
  return {
    major,
    binary,
    env,
    helm: (args, more = {}) => run(binary, args, { env: { ...env, ...more }, timeoutMs: 5 * 60_000 }),
    cleanup: () => fs.rmSync(home, { recursive: true, force: true }),
  };
}

// --- Fixtures --------------------------------------------------------------------------------------

/** A copy of the repository chart with another version: the "previous release" of upgrade and merge tests. */
export function chartAtVersion(version: string, dir: string = tempDir('chart')): string {
  const to = path.join(dir, 'conduit');
  fs.cpSync(CHART_DIR, to, { recursive: true });
  const file = path.join(to, 'Chart.yaml');
  const doc = parseDocument(fs.readFileSync(file, 'utf8'));
  doc.set('version', version);
  fs.writeFileSync(file, doc.toString({ lineWidth: 0 }));
  return to;
}

/** A package with a changed file inside but the same name: what a compromised mirror would serve. */
export async function tamperPackage(pkg: string, dest: string): Promise<void> {
  const work = tempDir('tamper');
  try {
    const r = await run('tar', ['-xzf', pkg, '-C', work]);
    if (r.exitCode !== 0) throw new Error(r.stderr);
    const chartDir = fs.readdirSync(work)[0];
    const values = path.join(work, chartDir, 'values.yaml');
    fs.appendFileSync(values, `\n# injected ${crypto.randomBytes(4).toString('hex')}\n`);
    const p = await run('tar', ['-czf', dest, '-C', work, chartDir]);
    if (p.exitCode !== 0) throw new Error(p.stderr);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
