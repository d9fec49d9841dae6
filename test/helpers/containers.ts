// Shared set-up of the container end-to-end tests: podman settings for this kind of machine, the
// fixture binary (a static Go program built from test/fixtures/healthapp), a fixture source tree
// (a git repository, like a ConduitLLM checkout), free loopback ports and a real local registry.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { run, runChecked } from '../../scripts/lib/core/exec.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';

export { runScript } from './zxscript.ts';

export const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures');

/** runc and no default ulimits (see test/fixtures/containers.conf), unless the caller chose otherwise. */
export function usePodmanSettings(): void {
  process.env.CONTAINERS_CONF ??= path.join(FIXTURES, 'containers.conf');
}

export async function requireTools(...tools: string[]): Promise<void> {
  for (const t of tools) {
    const r = await run('sh', ['-c', `command -v ${t}`]);
    if (r.exitCode !== 0) throw new Error(`${t} is not installed: apt-get install -y podman buildah skopeo runc podman-compose docker-registry golang`);
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A source tree like a ConduitLLM checkout: git history, Directory.Build.props, the fixture binary. */
export async function fixtureSource(version: string): Promise<string> {
  const dir = tempDir('conduit-fixture-src-');
  await runChecked('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', path.join(dir, 'healthapp'), '.'], {
    cwd: path.join(FIXTURES, 'healthapp'),
    env: { CGO_ENABLED: '0', GOFLAGS: '-mod=mod' },
    timeoutMs: 5 * 60_000,
  });
  fs.mkdirSync(path.join(dir, 'data'));
  fs.writeFileSync(path.join(dir, 'data', '.keep'), '');
  fs.writeFileSync(path.join(dir, 'Directory.Build.props'), `<Project>\n  <PropertyGroup>\n    <Version>${version}</Version>\n  </PropertyGroup>\n</Project>\n`);
  const git = (...args: string[]) => runChecked('git', ['-C', dir, '-c', 'user.name=fixture', '-c', 'user.email=fixture@example.invalid', ...args]);
  await git('init', '-q');
  await git('remote', 'add', 'origin', 'https://fixture-user:fixture-token@git.example.invalid/acme/conduit.git');
  await git('add', '-A');
  await git('commit', '-q', '-m', 'fixture');
  return dir;
}

export interface Registry {
  url: string;
  host: string;
  stop: () => Promise<void>;
}

/** Debian's docker-registry (the CNCF distribution registry) on 127.0.0.1, storage in a temp dir. */
export async function startRegistry(): Promise<Registry> {
  const port = await freePort();
  const dir = tempDir('conduit-registry-');
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(config, ['version: 0.1', 'log:', '  level: warn', 'storage:', '  filesystem:', `    rootdirectory: ${dir}/data`, 'http:', `  addr: 127.0.0.1:${port}`, ''].join('\n'));
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const r = await fetch(`${url}/v2/`);
      if (r.ok) break;
    } catch {
      /* not up yet */
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`registry did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    host: `127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Remove every image built from one fixture commit (build.ts labels them with the revision). */
export async function removeImagesOfRevision(revision: string, ...extra: string[]): Promise<void> {
  if (revision) {
    const built = await run('podman', ['images', '--quiet', '--filter', `label=org.opencontainers.image.revision=${revision}`]);
    const ids = [...new Set(built.stdout.split('\n').filter(Boolean))];
    if (ids.length) await run('podman', ['rmi', '-f', ...ids]);
  }
  if (extra.length) await run('podman', ['rmi', '-f', ...extra]);
}

/** An image's filesystem as `tar -tv` lists it (numeric owners), and a reader for single files. */
export async function imageFiles(image: string, workDir: string): Promise<{ list: string; read: (p: string) => Promise<string> }> {
  const cid = (await runChecked('podman', ['create', image])).stdout.trim();
  const tar = path.join(workDir, `${cid}.tar`);
  try {
    await runChecked('podman', ['export', '-o', tar, cid]);
  } finally {
    await run('podman', ['rm', '-f', cid]);
  }
  const list = (await runChecked('tar', ['-tvf', tar, '--numeric-owner'])).stdout;
  return { list, read: async (p: string) => (await runChecked('tar', ['-xOf', tar, p])).stdout };
}

/** Make a directory a git repository with one commit of everything in it; returns the commit. */
export async function commitAll(dir: string, message: string): Promise<string> {
  const git = (...a: string[]) => runChecked('git', ['-C', dir, '-c', 'user.name=fixture', '-c', 'user.email=fixture@example.invalid', ...a]);
  if (!fs.existsSync(path.join(dir, '.git'))) await git('init', '-q');
  await git('add', '-A');
  await git('commit', '-q', '-m', message);
  return (await git('rev-parse', 'HEAD')).stdout.trim();
}
