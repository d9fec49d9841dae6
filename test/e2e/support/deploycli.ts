// Shared by the deploy e2e suites: run `npx zx scripts/deploy.ts` as an operator does, against a
// throw-away namespace of the local cluster (--namespace/--release), and read the release back.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run, type RunResult } from '../../../scripts/lib/core/exec.ts';
import type { Kube } from '../../../scripts/lib/adapters/kube.ts';
import { REPO_ROOT } from '../../../scripts/lib/core/paths.ts';
import { tool } from '../../../scripts/lib/adapters/tools.ts';
import { runScript, scriptPath } from '../../helpers/zxscript.ts';

export const DEPLOY_SCRIPT = scriptPath('deploy');

export interface Scratch {
  namespace: string;
  release: string;
  /** deploy.ts with --namespace/--release of this scratch target added. */
  deploy(args: string[], options?: { timeoutMs?: number }): Promise<RunResult>;
  helm(args: string[], major?: 3 | 4): Promise<RunResult>;
  history(): Promise<{ revision: number; status: string; description: string }[]>;
  status(): Promise<string | undefined>;
  cleanup(): Promise<void>;
}

export function tempValues(name: string, yaml: string): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-e2e-')), name);
  fs.writeFileSync(file, yaml);
  return file;
}

export const NEVER_READY_VALUES = 'api:\n  podAnnotations:\n    conduit.test/never-ready: "true"\n';

export async function scratchTarget(kube: Kube, prefix: string): Promise<Scratch> {
  const namespace = `${prefix}-${crypto.randomBytes(3).toString('hex')}`;
  const release = 'conduit';
  const cluster = ['--kubeconfig', kube.target.kubeconfig!, '--kube-context', kube.target.context!, '--namespace', namespace];
  const helm = async (args: string[], major: 3 | 4 = 4) => run(await tool(major === 3 ? 'helm3' : 'helm'), [...args, ...cluster], { timeoutMs: 120_000 });
  const s: Scratch = {
    namespace,
    release,
    deploy: (args, options = {}) => runScript('deploy', ['--namespace', namespace, '--release', release, ...args], options),
    helm,
    history: async () => {
      const r = await helm(['history', release, '--output', 'json']);
      return r.exitCode === 0 ? JSON.parse(r.stdout) : [];
    },
    status: async () => {
      const r = await helm(['status', release, '--output', 'json']);
      return r.exitCode === 0 ? (JSON.parse(r.stdout) as { info: { status: string } }).info.status : undefined;
    },
    cleanup: async () => {
      await helm(['uninstall', release]).catch(() => undefined);
      await kube.delete('namespace', namespace, { wait: false }).catch(() => false);
    },
  };
  return s;
}

/**
 * Start deploy.ts in its own process group (like a terminal's foreground job), so that a "Ctrl-C"
 * can be sent to the whole group the way a terminal does.
 */
export function startDeployJob(args: string[]): {
  pid: number;
  stderr: () => string;
  stdout: () => string;
  exited: Promise<number>;
  ctrlC: (sig?: NodeJS.Signals) => void;
  /** Resolves as soon as stderr matches (checked on every chunk, not polled). */
  until: (re: RegExp) => Promise<void>;
} {
  const child = spawn('npx', ['zx', DEPLOY_SCRIPT, ...args], { cwd: REPO_ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const waiting: { re: RegExp; resolve: () => void }[] = [];
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    for (const w of waiting.filter((x) => x.re.test(err))) (waiting.splice(waiting.indexOf(w), 1), w.resolve());
  });
  const exited = new Promise<number>((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1))));
  return {
    pid: child.pid!,
    stderr: () => err,
    stdout: () => out,
    exited,
    ctrlC: (sig: NodeJS.Signals = 'SIGINT') => process.kill(-child.pid!, sig),
    until: (re) => (re.test(err) ? Promise.resolve() : new Promise<void>((resolve) => waiting.push({ re, resolve }))),
  };
}

export async function waitFor(what: string, fn: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
