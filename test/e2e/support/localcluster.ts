// Shared by the e2e suites that need the built-in local cluster: start it through the documented
// command when it is not running, and stop it again when the test process ends, so a run leaves the
// machine as it found it (a cluster that was already up stays up).
import crypto from 'node:crypto';
import path from 'node:path';
import { run, type RunResult } from '../../../scripts/lib/core/exec.ts';
import { Kube } from '../../../scripts/lib/adapters/kube.ts';
import { localClusterStatus } from '../../../scripts/lib/engines/cluster.ts';
import { localTarget } from '../../../scripts/lib/domain/target.ts';
import { REPO_ROOT } from '../../../scripts/lib/core/paths.ts';
import { tool } from '../../../scripts/lib/adapters/tools.ts';

let ready: Promise<Kube> | undefined;
let startedHere = false;

/** Run `npx zx scripts/cluster.ts ARGS` as an operator would. */
export function clusterCli(args: string[], timeoutMs = 45 * 60_000): Promise<RunResult> {
  return run('npx', ['zx', path.join(REPO_ROOT, 'scripts', 'cluster.ts'), ...args], { cwd: REPO_ROOT, timeoutMs });
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
