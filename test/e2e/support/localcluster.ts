// Shared by the e2e suites that need the built-in local cluster: start it through the documented
// command when it is not running, and stop it again when the test process ends, so a run leaves the
// machine as it found it (a cluster that was already up stays up).
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { processStart } from '../../../scripts/lib/domain/lease.ts';
import type { RunResult } from '../../../scripts/lib/core/exec.ts';
import { Kube } from '../../../scripts/lib/adapters/kube.ts';
import { localClusterStatus } from '../../../scripts/lib/engines/cluster.ts';
import { localClusterPaths, localTarget } from '../../../scripts/lib/domain/target.ts';
import { tool } from '../../../scripts/lib/adapters/tools.ts';
import { runScript } from '../../helpers/zxscript.ts';

let ready: Promise<Kube> | undefined;
let startedHere = false;

/** Run `npx zx scripts/cluster.ts ARGS` as an operator would. */
export function clusterCli(args: string[], timeoutMs = 45 * 60_000): Promise<RunResult> {
  return runScript('cluster', args, { timeoutMs });
}

/** A client of the local cluster, bringing the cluster up first if needed (once per process). */
export function localCluster(): Promise<Kube> {
  ready ??= (async () => {
    const before = await localClusterStatus();
    if (!before.running) {
      process.stderr.write('e2e: the local cluster is not running; starting it (npx zx scripts/cluster.ts up)\n');
      const r = await clusterCli(['up']);
      if (r.exitCode !== 0) throw new Error(`cluster.ts up failed:\n${r.stderr}\n${r.stdout}`);
      startedHere = !before.created;
      if (startedHere) {
        process.once('beforeExit', () => {
          process.stderr.write('e2e: stopping the local cluster this run started (npx zx scripts/cluster.ts down)\n');
          void clusterCli(['down'], 120_000);
        });
      }
    }
    return new Kube(await tool('kubectl'), localTarget());
  })();
  return ready;
}

/** A fresh namespace for one test (deleted by the returned cleanup). */
export async function scratchNamespace(kube: Kube, prefix: string, labels: Record<string, string> = {}): Promise<{ name: string; cleanup: () => Promise<void> }> {
  const name = `${prefix}-${crypto.randomBytes(3).toString('hex')}`;
  await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'conduit.test/e2e': 'true', ...labels } } });
  return { name, cleanup: async () => void (await kube.delete('namespace', name, { wait: false }).catch(() => false)) };
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** The error `fn` rejects with (fails the test when it resolves). */
export async function rejection(fn: () => Promise<unknown>): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection, but the call succeeded');
}

/**
 * What a real node's supervisor (systemd, the kubelet of static pods) does for the control plane:
 * start again every component of the local cluster whose process is gone, with the command line
 * kwokctl recorded for it (kwok.yaml), its log appended to. kube-controller-manager and
 * kube-scheduler exit when they lose their leader lease, e.g. while the API server is away; kwokctl's
 * binary runtime does not restart them. Returns the components started.
 */
export async function restartStoppedComponents(): Promise<string[]> {
  const paths = localClusterPaths();
  const config = parseAllDocuments(fs.readFileSync(path.join(paths.clusterDir, 'kwok.yaml'), 'utf8'))
    .map((d) => d.toJS() as { kind?: string; components?: { name: string; binary: string; args?: string[]; workDir?: string }[] })
    .find((d) => d?.kind === 'KwokctlConfiguration');
  const started: string[] = [];
  for (const c of config?.components ?? []) {
    const pidFile = path.join(paths.clusterDir, 'pids', `${c.name}.pid`);
    const pid = Number(fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8').trim() : 0);
    if (pid && processStart(pid) !== undefined) continue;
    const log = fs.openSync(path.join(paths.clusterDir, 'logs', `${c.name}.log`), 'a');
    const child = spawn(c.binary, c.args ?? [], { cwd: c.workDir ?? paths.clusterDir, detached: true, stdio: ['ignore', log, log] });
    child.unref();
    fs.closeSync(log);
    fs.writeFileSync(pidFile, String(child.pid));
    started.push(c.name);
  }
  return started;
}
