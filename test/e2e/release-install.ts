// Installing a released chart the way a user does (`helm install --verify`), into the built-in local
// cluster when this checkout has it (scripts/cluster.ts): a namespace per install with the Pod
// Security "restricted" label, the `local` cluster's values layers, and an uninstall afterwards.
// Without the local cluster the install is rendered client-side instead (Helm 4: `install
// --dry-run=client`; Helm 3 cannot install without a cluster, so `template`), with the same --verify.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT, VALUES_DIR } from '../../scripts/lib/paths.ts';
import type { HelmUser } from './release-harness.ts';

export interface InstallRequest {
  chart: string;
  version?: string;
  verifyKeyring?: string;
  /** e.g. ['--plain-http'] for an OCI registry on loopback. */
  extraArgs?: string[];
}

export interface InstallOutcome {
  ok: boolean;
  mode: 'cluster' | 'client-render';
  detail: string;
}

const SUPPORT = path.join(REPO_ROOT, 'test', 'e2e', 'support', 'localcluster.ts');
const LOCAL_LIB = path.join(REPO_ROOT, 'scripts', 'lib', 'localcluster.ts');

export function localClusterAvailable(): boolean {
  return fs.existsSync(path.join(REPO_ROOT, 'scripts', 'cluster.ts')) && fs.existsSync(SUPPORT) && fs.existsSync(LOCAL_LIB);
}

/** The values layers of the `local` cluster from values/clusters.yaml, as absolute paths. */
export function localClusterValues(): string[] {
  const registry = parseYaml(fs.readFileSync(path.join(VALUES_DIR, 'clusters.yaml'), 'utf8')) as { clusters: Record<string, { layers: string[] }> };
  return registry.clusters.local.layers.map((l) => path.join(VALUES_DIR, l));
}

function common(req: InstallRequest): string[] {
  return [...(req.version ? ['--version', req.version] : []), ...(req.verifyKeyring ? ['--verify', '--keyring', req.verifyKeyring] : []), ...(req.extraArgs ?? [])];
}

export async function installChart(user: HelmUser, req: InstallRequest): Promise<InstallOutcome> {
  if (!localClusterAvailable()) {
    const args = user.major === 4
      ? ['install', 'conduit', req.chart, '--namespace', 'conduit', '--dry-run=client', ...common(req)]
      : ['template', 'conduit', req.chart, '--namespace', 'conduit', ...common(req)];
    const r = await user.helm(args);
    return { ok: r.exitCode === 0 && /kind: Deployment/.test(r.stdout), mode: 'client-render', detail: r.exitCode === 0 ? `helm ${user.major} ${args[0]} rendered ${(r.stdout.match(/^kind:/gm) ?? []).length} objects` : r.stderr };
  }
  // Loaded only when present: the local cluster's support code lives with the cluster tooling.
  const support = await import(pathToFileURL(SUPPORT).href);
  const lib = await import(pathToFileURL(LOCAL_LIB).href);
  const kube = await support.localCluster();
  const target = lib.localTarget() as { context: string; kubeconfig: string };
  const ns = await support.scratchNamespace(kube, 'release', { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' });
  const kubeArgs = ['--kubeconfig', target.kubeconfig, '--kube-context', target.context, '--namespace', ns.name];
  try {
    const wait = user.major === 4 ? ['--wait=watcher'] : ['--wait'];
    const values = localClusterValues().flatMap((f) => ['--values', f]);
    const r = await user.helm(['install', 'conduit', req.chart, ...kubeArgs, ...values, ...wait, '--timeout', '5m', ...common(req)]);
    if (r.exitCode !== 0) return { ok: false, mode: 'cluster', detail: r.stderr || r.stdout };
    const status = await user.helm(['status', 'conduit', ...kubeArgs, '-o', 'json']);
    const st = JSON.parse(status.stdout) as { info: { status: string }; chart?: { metadata?: { version?: string } } };
    const ok = st.info.status === 'deployed';
    return { ok, mode: 'cluster', detail: `helm ${user.major} installed into ${ns.name}: ${st.info.status}` };
  } finally {
    await user.helm(['uninstall', 'conduit', ...kubeArgs, '--timeout', '2m']);
    await ns.cleanup();
  }
}
