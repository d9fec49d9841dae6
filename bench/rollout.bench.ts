// The rollout gate's own overhead per wave: everything rollout.ts adds around a wave's deploys except
// the soak wait and helm. One wave of one cluster (a namespace of the local cluster), soak 0s (one
// gate check), the deploy a no-op that reports an upgrade: what is timed is the abort check (every
// cluster's audit trail read), the audit records of the wave (deploying, deployed, soak-passed,
// completed) and the gate's queries to a real Prometheus (3.16.0, our rule files, a stand-in exporter
// of the app's metric families on loopback). Target: under 1 s per wave.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { Kube } from '../scripts/lib/adapters/kube.ts';
import { localClusterStatus, upLocalCluster } from '../scripts/lib/engines/cluster.ts';
import { runWaves, type RolloutContext } from '../scripts/lib/engines/rollout.ts';
import { loadRegistry } from '../scripts/lib/domain/clusters.ts';
import { planWaves } from '../scripts/lib/domain/rollout.ts';
import { gateChecksFromRules } from '../scripts/lib/domain/rollout-gate.ts';
import { loadRules } from '../scripts/lib/domain/rules.ts';
import { localTarget, LOCAL_CONTEXT } from '../scripts/lib/domain/target.ts';
import { VALUES_DIR } from '../scripts/lib/core/paths.ts';
import { tool } from '../scripts/lib/adapters/tools.ts';
import { Reporter } from '../scripts/lib/core/ui.ts';
import { startStandInExporter, type StandInExporter } from '../test/helpers/slo-exporter.ts';
import { startPrometheus, instantQuery, type PrometheusServer } from '../test/helpers/prometheus-server.ts';
import type { BenchCase, BenchModule } from './run.ts';

const namespace = `bench-rollout-${crypto.randomBytes(3).toString('hex')}`;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-bench-rollout-'));
const LAYERS = ['environments/local.yaml', 'clusters/local.yaml'];
let kube: Kube | undefined;
let exporter: StandInExporter | undefined;
let prometheus: PrometheusServer | undefined;

async function fleet(): Promise<RolloutContext> {
  for (const l of LAYERS) {
    fs.mkdirSync(path.dirname(path.join(work, l)), { recursive: true });
    fs.copyFileSync(path.join(VALUES_DIR, l), path.join(work, l));
  }
  const entry = { description: 'bench', context: LOCAL_CONTEXT, namespace, release: 'conduit', environment: 'local', layers: LAYERS, protected: false, prometheus: { url: prometheus!.url } };
  const file = path.join(work, 'clusters.yaml');
  fs.writeFileSync(file, toYaml({ clusters: { bench: entry }, rollout: { soak: '0s', interval: '1s', waves: [{ name: 'only', clusters: ['bench'] }] } }));
  let revision = 1;
  return {
    plan: planWaves(loadRegistry(file)),
    checks: gateChecksFromRules(loadRules()),
    reporter: new Reporter({ quiet: true }),
    inputs: { values: [], setKeys: [], digest: 'bench', helm: 4 },
    hooks: {
      deploy: async () => ({ result: 'succeeded', revision: ++revision, previousRevision: revision - 1, summary: `revision ${revision}` }),
      rollback: async () => 'not used',
    },
  };
}

const bench: BenchModule = {
  title: 'rollout',
  description: [
    `local cluster (${LOCAL_CONTEXT}), namespace ${namespace}; Prometheus 3.16.0 on loopback with alerts/ loaded, one stand-in exporter`,
    'ours: one wave of rollout.ts without the soak wait and without helm: abort check, audit records, the gate (every query of one cluster)',
    'no baseline: the target is the time limit (1 s per wave)',
  ],
  async cases(): Promise<BenchCase[]> {
    if (!(await localClusterStatus()).running) await upLocalCluster(new Reporter({ json: false }));
    kube = new Kube(await tool('kubectl'), localTarget());
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
    exporter = await startStandInExporter({ rps: 100, errorRatio: 0.001, slowRatio: 0 });
    prometheus = await startPrometheus({ targets: [{ hostPort: exporter.hostPort, namespace }] });
    // The gate reads recorded series: wait for the first evaluation, so the queries return data.
    for (let i = 0; i < 60 && !(await instantQuery(prometheus.url, `slo:sli_error:ratio_rate5m{namespace="${namespace}"}`)).length; i++) await new Promise((r) => setTimeout(r, 500));
    const ctx = await fleet();
    let n = 0;
    return [
      {
        name: 'gate overhead per wave (no soak wait, no helm)',
        ours: async () => {
          await runWaves({ id: `bench-${n++}`, ctx, kubes: new Map() }, 0);
        },
        maxMs: 1000,
        reps: 5,
        warmup: true,
      },
    ];
  },
  async teardown() {
    await prometheus?.stop();
    await exporter?.close();
    await kube?.delete('namespace', namespace, { wait: false }).catch(() => false);
    fs.rmSync(work, { recursive: true, force: true });
  },
};

export default bench;
