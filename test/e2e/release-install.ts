// Installing a released chart the way a user does (`helm install --verify`), into the built-in local
// cluster (started through scripts/cluster.ts when it is not running): a fresh namespace per install
// with the Pod Security "restricted" label, the `local` cluster's values layers, `--wait` for the
// rollout, and an uninstall plus namespace deletion afterwards.
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { Kube } from '../../scripts/lib/adapters/kube.ts';
import { VALUES_DIR } from '../../scripts/lib/core/paths.ts';
import type { HelmUser } from './release-harness.ts';
import { localCluster, scratchNamespace } from './support/localcluster.ts';

export interface InstallRequest {
  chart: string;
  version?: string;
  verifyKeyring?: string;
  /** e.g. ['--plain-http'] for an OCI registry on loopback. */
  extraArgs?: string[];
}

export interface InstallOutcome {
  ok: boolean;
  namespace: string;
  /** The chart version helm reports as deployed. */
  chartVersion?: string;
  /** Deployments of the release that became available. */
  availableDeployments: string[];
  detail: string;
}

export const RESTRICTED = { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' };

/** The values layers of the `local` cluster from values/clusters.yaml, as absolute paths. */
export function localClusterValues(): string[] {
  const registry = parseYaml(fs.readFileSync(path.join(VALUES_DIR, 'clusters.yaml'), 'utf8')) as { clusters: Record<string, { layers: string[] }> };
  return registry.clusters.local.layers.map((l) => path.join(VALUES_DIR, l));
}

/** Arguments that point helm at the local cluster. */
export function kubeArgs(kube: Kube, namespace: string): string[] {
  return ['--kubeconfig', kube.target.kubeconfig!, '--kube-context', kube.target.context!, '--namespace', namespace];
}

export function waitArgs(user: HelmUser): string[] {
  // Helm 4's --wait takes a strategy; Helm 3's is a plain switch.
  return user.major === 4 ? ['--wait=watcher', '--timeout', '5m'] : ['--wait', '--timeout', '5m'];
}

export async function installChart(user: HelmUser, req: InstallRequest): Promise<InstallOutcome> {
  const kube = await localCluster();
  const ns = await scratchNamespace(kube, `release-h${user.major}`, RESTRICTED);
  const target = kubeArgs(kube, ns.name);
  try {
    const common = [...(req.version ? ['--version', req.version] : []), ...(req.verifyKeyring ? ['--verify', '--keyring', req.verifyKeyring] : []), ...(req.extraArgs ?? [])];
    const values = localClusterValues().flatMap((f) => ['--values', f]);
    const r = await user.helm(['install', 'conduit', req.chart, ...target, ...values, ...waitArgs(user), ...common]);
    if (r.exitCode !== 0) return { ok: false, namespace: ns.name, availableDeployments: [], detail: r.stderr || r.stdout };
    const [release] = JSON.parse((await user.helm(['list', '--filter', '^conduit$', ...target, '-o', 'json'])).stdout) as { status: string; chart: string }[];
    const deployments = JSON.parse(await kube.call(['get', 'deployments', '-n', ns.name, '-l', 'app.kubernetes.io/instance=conduit', '-o', 'json'])) as {
      items: { metadata: { name: string }; status: { availableReplicas?: number } }[];
    };
    const available = deployments.items
      .filter((d) => (d.status.availableReplicas ?? 0) > 0)
      .map((d) => d.metadata.name)
      .sort();
    return {
      ok: release?.status === 'deployed',
      namespace: ns.name,
      chartVersion: release?.chart.replace(/^conduit-/, ''),
      availableDeployments: available,
      detail: `helm ${user.major} install into ${ns.name}: ${release?.status}; available: ${available.join(', ')}`,
    };
  } finally {
    await user.helm(['uninstall', 'conduit', ...target, '--timeout', '2m']);
    await ns.cleanup();
  }
}
