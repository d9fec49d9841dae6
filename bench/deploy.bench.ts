// `deploy.ts --yes` against the plain `helm upgrade --install --wait` an operator would type, on the
// local cluster, same release, same chart and the same values files (-f), in one run. Two cases: a
// deploy that changes nothing, and one that changes a value (a pod annotation alternating between
// runs, so every run rolls the api pods). Ours does more (validation, checklist, diff, lock, verify,
// audit); target: at most 1.25x the plain helm time (baseline/ours >= 0.8). In the no-change case ours
// finds nothing to apply (same values, same objects, no live edits) and keeps the deployed revision,
// where plain helm records a new, empty one.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../scripts/lib/core/exec.ts';
import type { Helm } from '../scripts/lib/adapters/helm.ts';
import { Kube } from '../scripts/lib/adapters/kube.ts';
import { localClusterStatus, upLocalCluster } from '../scripts/lib/engines/cluster.ts';
import { helmClient, localTarget, LOCAL_CONTEXT } from '../scripts/lib/domain/target.ts';
import { REPO_ROOT } from '../scripts/lib/core/paths.ts';
import { tool } from '../scripts/lib/adapters/tools.ts';
import { Reporter } from '../scripts/lib/core/ui.ts';
import type { BenchCase, BenchModule } from './run.ts';

const namespace = `bench-deploy-${crypto.randomBytes(3).toString('hex')}`;
const release = 'conduit';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-bench-deploy-'));
const layers = [path.join(REPO_ROOT, 'values', 'environments', 'local.yaml'), path.join(REPO_ROOT, 'values', 'clusters', 'local.yaml')];
let kube: Kube | undefined;
/** helm 4 on the bench namespace of the local cluster. */
let helm: Helm | undefined;
let counter = 0;

function annotationFile(value: string): string {
  const file = path.join(work, `annotation-${value}.yaml`);
  fs.writeFileSync(file, `api:\n  podAnnotations:\n    bench.conduit.dev/value: "${value}"\n`);
  return file;
}

const bench: BenchModule = {
  title: 'deploy',
  description: [
    `local cluster (${LOCAL_CONTEXT}), namespace ${namespace}, release ${release}, values: the local layers + one annotation file`,
    'ours: node scripts/deploy.ts --namespace NS --release conduit --values FILE --yes --json (validate, checklist, diff, lock, upgrade or keep, verify, audit)',
    'baseline: helm upgrade --install conduit chart -n NS -f local layers -f FILE --wait',
  ],
  async cases(): Promise<BenchCase[]> {
    if (!(await localClusterStatus()).running) await upLocalCluster(new Reporter({ json: false }));
    const target = localTarget();
    kube = new Kube(await tool('kubectl'), target);
    const client = (helm = await helmClient(4, { context: target.context, kubeconfig: target.kubeconfig, namespace }));
    const ours = async (file: string) => {
      const r = await run(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'scripts', 'deploy.ts'), '--namespace', namespace, '--release', release, '--values', file, '--yes', '--json'], {
        cwd: REPO_ROOT,
      });
      if (r.exitCode !== 0) throw new Error(`deploy.ts failed:\n${r.stderr.slice(-3000)}`);
    };
    const baseline = async (file: string) => {
      // The command an operator would type, not the client's upgrade (which adds rollback and server-side apply).
      const r = await client.run(['upgrade', '--install', release, path.join(REPO_ROOT, 'chart'), ...client.scopeArgs(), ...layers.flatMap((l) => ['-f', l]), '-f', file, '--wait']);
      if (r.exitCode !== 0) throw new Error(`helm upgrade failed:\n${r.stderr.slice(-3000)}`);
    };
    const fixed = annotationFile('fixed');
    // The first install (namespace with Pod Security labels, generated secrets) is not measured.
    await ours(fixed);
    const next = () => annotationFile(String(++counter));
    return [
      {
        name: 'no change',
        reps: 5,
        warmup: true,
        target: 0.8,
        note: () => 'ours keeps the revision (nothing to apply); helm records an empty one',
        ours: () => ours(fixed),
        baseline: () => baseline(fixed),
      },
      {
        name: 'changed value',
        reps: 5,
        target: 0.8,
        ours: async () => {
          await ours(next());
        },
        baseline: async () => {
          await baseline(next());
        },
      },
    ];
  },
  async teardown() {
    if (helm) await helm.run(helm.uninstallArgs({ release }));
    if (kube) await kube.delete('namespace', namespace, { wait: false }).catch(() => false);
    fs.rmSync(work, { recursive: true, force: true });
  },
};

export default bench;
