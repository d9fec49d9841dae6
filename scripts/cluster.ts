#!/usr/bin/env -S npx zx
// cluster.ts: the built-in local Kubernetes (a real control plane with kwok-simulated nodes).
import fs from 'node:fs';
import { runCommand, type Invocation } from './lib/core/cli.ts';
import { UserError, usageError } from './lib/core/errors.ts';
import { downLocalCluster, FAIL_ANNOTATION, localClusterStatus, NEVER_READY_ANNOTATION, planUp, upLocalCluster, type LocalClusterStatus } from './lib/engines/cluster.ts';
import { LOCAL_CONTEXT, localClusterPaths, type LocalClusterPaths } from './lib/domain/target.ts';
import { formatArgv } from './lib/core/exec.ts';
import { formatMs, table } from './lib/core/ui.ts';

const spec = {
  name: 'cluster.ts',
  summary: 'The built-in local Kubernetes cluster: a real control plane (etcd, kube-apiserver, controller-manager, scheduler) with kwok-simulated nodes, on 127.0.0.1.',
  usage: ['npx zx scripts/cluster.ts up|down|status|kubeconfig [--dry-run] [--json]'],
  verbs: {
    up: 'Create the cluster (building the binaries on first use), or do nothing if it already runs. Installs the CRDs and proves a Deployment rolls out.',
    down: 'Stop the cluster and remove everything it created (state, logs, certificates).',
    status: 'Show whether it runs: components, nodes, CRDs. Exit code 1 when it does not run.',
    kubeconfig: 'Print the path of its kubeconfig (context ' + LOCAL_CONTEXT + ').',
  },
  flags: {
    'dry-run': { type: 'boolean' as const, description: 'With up/down: print what would be done, change nothing.' },
  },
  examples: [
    'npx zx scripts/cluster.ts up',
    'export KUBECONFIG=$(npx zx scripts/cluster.ts kubeconfig) && kubectl get nodes',
    'npx zx scripts/cluster.ts status --json',
    'npx zx scripts/cluster.ts down',
  ],
  notes: [
    'Simulation: pods run and become Ready at once; Jobs and standalone pods (helm test hooks) complete.',
    `  pod annotation ${NEVER_READY_ANNOTATION}: "true"  the pod runs but never becomes Ready (failed rollouts)`,
    `  pod annotation ${FAIL_ANNOTATION}: "true"         a Job pod or test pod ends Failed (exit code 1)`,
    'State lives under $CONDUIT_CACHE_DIR/clusters (default ~/.cache/conduit-deploy/clusters); ~/.kube/config is not modified.',
  ],
};

type Verb = (inv: Invocation<typeof spec.flags>, paths: LocalClusterPaths) => Promise<number>;

async function up({ flags, reporter }: Invocation<typeof spec.flags>, paths: LocalClusterPaths): Promise<number> {
  if (flags['dry-run']) {
    const plan = planUp(paths);
    const human = [
      'Dry run: nothing was changed. `up` would:',
      plan.missingBinaries.length ? `- install ${plan.missingBinaries.join(', ')} (official release download, else a source build)` : '- use the cached binaries',
      `- write the simulation stages to ${plan.stagesFile}`,
      `- run: ${formatArgv(plan.kwokctlArgv[0], plan.kwokctlArgv.slice(1))}  (configuration on stdin below)`,
      `- register ${plan.nodes.length} simulated nodes: ${plan.nodes.map((n) => `${n.metadata.name} (${n.metadata.labels?.['topology.kubernetes.io/zone']})`).join(', ')}`,
      `- install CRDs: ${plan.crdSources.join(', ')}`,
      '- roll out a smoke-test Deployment, then delete it',
      '',
      plan.kwokctlConfig,
    ].join('\n');
    reporter.result(human, { ok: true, dryRun: true, plan });
    return 0;
  }
  const r = await upLocalCluster(reporter, paths);
  const lines =
    r.action === 'none'
      ? [`The local cluster "${r.name}" is already running (nothing to do).`]
      : [
          `The local cluster "${r.name}" is ${r.action === 'created' ? 'up' : r.action === 'started' ? 'running again' : 'repaired'}: a Deployment rolled out after ${formatMs(r.rolloutMs ?? r.readyMs)}, CRDs installed, ready in ${formatMs(r.readyMs)}${r.built.length ? ` (built ${r.built.join(', ')} first)` : ''}.`,
        ];
  lines.push(`context:    ${r.context}`, `kubeconfig: ${r.kubeconfig}`, `try:        kubectl --kubeconfig ${r.kubeconfig} --context ${r.context} get nodes`);
  reporter.result(lines.join('\n'), { ok: true, ...r });
  return 0;
}

async function down({ flags, reporter }: Invocation<typeof spec.flags>, paths: LocalClusterPaths): Promise<number> {
  if (flags['dry-run']) {
    reporter.result(`Dry run: would stop the cluster and remove ${paths.clusterDir} and ${paths.stagesFile}.`, { ok: true, dryRun: true, remove: [paths.clusterDir, paths.stagesFile] });
    return 0;
  }
  const r = await downLocalCluster(reporter, paths);
  reporter.result(r.removed ? `The local cluster is gone (removed ${r.paths.join(', ')}).` : 'There is no local cluster: nothing to remove.', { ok: true, ...r });
  return 0;
}

/** The human status report of a cluster that exists. */
function statusLines(s: LocalClusterStatus): string[] {
  const lines = [`Local cluster "${s.name}": ${s.running ? `running (Kubernetes ${s.version})` : 'NOT running (run `up` to start it)'}`, `context: ${s.context}   kubeconfig: ${s.kubeconfig}`];
  if (s.components.length)
    lines.push(
      '',
      table(
        ['component', 'status'],
        s.components.map((c) => [c.name, c.status]),
      ),
    );
  if (s.nodes.length)
    lines.push(
      '',
      table(
        ['node', 'zone', 'ready'],
        s.nodes.map((n) => [n.name, n.zone, n.ready ? 'yes' : 'no']),
      ),
    );
  if (s.crds.length)
    lines.push(
      '',
      table(
        ['CRDs', 'version', 'installed'],
        s.crds.map((c) => [c.source, c.version, `${c.installed}/${c.total}`]),
      ),
    );
  lines.push('', `Simulation: pods become Ready at once; ${s.simulation.neverReadyAnnotation} keeps one unready; ${s.simulation.failAnnotation} fails a Job/test pod.`);
  return lines;
}

async function status({ reporter }: Invocation<typeof spec.flags>, paths: LocalClusterPaths): Promise<number> {
  const s = await localClusterStatus(paths);
  const lines = s.created ? statusLines(s) : [`The local cluster "${s.name}" does not exist. Create it with: npx zx scripts/cluster.ts up`];
  reporter.result(lines.join('\n'), { ok: s.running, ...s });
  return s.running ? 0 : 1;
}

async function kubeconfig({ reporter }: Invocation<typeof spec.flags>, paths: LocalClusterPaths): Promise<number> {
  if (!fs.existsSync(paths.kubeconfig)) throw new UserError('the local cluster does not exist, so it has no kubeconfig', { hint: 'Run: npx zx scripts/cluster.ts up' });
  reporter.result(paths.kubeconfig, { ok: true, kubeconfig: paths.kubeconfig, context: LOCAL_CONTEXT });
  return 0;
}

const VERBS: Record<string, Verb> = { up, down, status, kubeconfig };

await runCommand(spec, async (inv) => {
  const [verb, ...rest] = inv.positionals;
  if (rest.length) throw usageError(`unexpected arguments: ${rest.join(' ')}`, 'Usage: cluster.ts up|down|status|kubeconfig');
  const run = verb && Object.hasOwn(VERBS, verb) ? VERBS[verb] : undefined;
  if (!run) throw usageError(verb ? `unknown verb "${verb}"` : 'a verb is required', 'Use: cluster.ts up | down | status | kubeconfig  (see --help)');
  return run(inv, localClusterPaths());
});
