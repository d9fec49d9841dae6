// Where a verb acts, shared by the engines (deploy, runbook, backup) so that none of them imports
// another: the resolved target (registry entry -> kube context, kubeconfig, namespace, release),
// the names the chart gives a release's objects, and how the built-in local cluster is reached.
import path from 'node:path';
import { Kube, type KubeTarget } from '../adapters/kube.ts';
import { cacheRoot } from '../core/paths.ts';
import { Helm, type HelmScope, helmToolName, type HelmMajor } from '../adapters/helm.ts';
import { tool } from '../adapters/tools.ts';

/** A registry entry resolved for one run. */
export interface DeployTarget {
  /** Registry name, e.g. `local`. */
  cluster: string;
  context: string;
  kubeconfig?: string;
  namespace: string;
  release: string;
  protected: boolean;
}

/** `<fullname>-<suffix>`, the way the chart's conduit.resourceName names objects (63 characters at most). */
export function resourceName(release: string, suffix: string, chartName = 'conduit'): string {
  const full = (release.includes(chartName) ? release : `${release}-${chartName}`).slice(0, 63).replace(/-+$/, '');
  return `${full.slice(0, 62 - suffix.length)}-${suffix}`.replace(/-+$/, '');
}

/** Label selector of a release's objects, optionally of one component. */
export function componentSelector(release: string, c?: string): string {
  return `app.kubernetes.io/instance=${release}${c ? `,app.kubernetes.io/component=${c}` : ''}`;
}

// The built-in local cluster (its lifecycle is localcluster.ts'; this is only how to reach it).
export const LOCAL_CLUSTER_NAME = 'conduit';
/** The kube context kwokctl gives the cluster (kwok-<name>); values/clusters.yaml's `local.context`. */
export const LOCAL_CONTEXT = `kwok-${LOCAL_CLUSTER_NAME}`;

export interface LocalClusterPaths {
  /** KWOK_WORKDIR: kwokctl keeps clusters in <workdir>/clusters/<name>. */
  workdir: string;
  clusterDir: string;
  kubeconfig: string;
  /** The extra kwok Stage file (the simulation rules of this toolkit), read by the kwok controller. */
  stagesFile: string;
  lockDir: string;
}

export function localClusterPaths(root = cacheRoot()): LocalClusterPaths {
  const clusterDir = path.join(root, 'clusters', LOCAL_CLUSTER_NAME);
  return {
    workdir: root,
    clusterDir,
    kubeconfig: path.join(clusterDir, 'kubeconfig.yaml'),
    stagesFile: path.join(root, 'clusters', `${LOCAL_CLUSTER_NAME}.stages.yaml`),
    lockDir: path.join(root, 'clusters', `${LOCAL_CLUSTER_NAME}.lock`),
  };
}

/** How the toolkit reaches the local cluster (for kube.ts). */
export function localTarget(paths = localClusterPaths()): { context: string; kubeconfig: string } {
  return { context: LOCAL_CONTEXT, kubeconfig: paths.kubeconfig };
}

/**
 * How to reach the cluster of a registry entry: the built-in cluster through its own kubeconfig
 * (it is never added to ~/.kube/config), any other context through the user's kubeconfig.
 */
export function kubeTargetFor(context: string, paths = localClusterPaths()): { context: string; kubeconfig?: string } {
  return context === LOCAL_CONTEXT ? localTarget(paths) : { context };
}

/**
 * A registry entry (values/clusters.yaml) resolved for one run: how to reach its cluster, and its
 * namespace and release unless the command line names others.
 */
export function resolveTarget(entry: { name: string; context: string; namespace: string; release: string; protected: boolean }, override: { namespace?: string; release?: string } = {}): DeployTarget {
  return {
    cluster: entry.name,
    context: entry.context,
    kubeconfig: kubeTargetFor(entry.context).kubeconfig,
    namespace: override.namespace ?? entry.namespace,
    release: override.release ?? entry.release,
    protected: entry.protected,
  };
}

/** A Kubernetes client for a target, using the pinned kubectl (installed on first use). */
export async function connectKube(target: KubeTarget = {}): Promise<Kube> {
  return new Kube(await tool('kubectl'), target);
}

/** The pinned helm binary of `major` (resolved, and installed when missing, by tools.ts). */
export async function helmBinary(major: HelmMajor): Promise<string> {
  return tool(helmToolName(major));
}

/** A Helm client of the pinned helm of `major`, optionally scoped to a kube context and namespace. */
export async function helmClient(major: HelmMajor, scope?: HelmScope): Promise<Helm> {
  return new Helm(await helmBinary(major), major, scope);
}
