// The deploy request the engine tests use: release `conduit` of a namespace of the local cluster,
// with the `local` values layers (as values/clusters.yaml lists them for `local`) and helm 4.
import path from 'node:path';
import type { DeployRequest } from '../../../scripts/lib/engines/deploy.ts';
import { LOCAL_CONTEXT, localTarget } from '../../../scripts/lib/domain/target.ts';
import { CHART_DIR, VALUES_DIR } from '../../../scripts/lib/core/paths.ts';

export function localDeployRequest(namespace: string, options: { overrides?: Record<string, unknown>; timeout?: string; protected?: boolean; actor?: string } = {}): DeployRequest {
  return {
    target: { cluster: 'local', context: LOCAL_CONTEXT, kubeconfig: localTarget().kubeconfig, namespace, release: 'conduit', protected: options.protected ?? false },
    chartDir: CHART_DIR,
    valuesFiles: [path.join(VALUES_DIR, 'environments', 'local.yaml'), path.join(VALUES_DIR, 'clusters', 'local.yaml')],
    overrides: options.overrides ?? {},
    helmMajor: 4,
    timeout: options.timeout ?? '3m',
    actor: options.actor ?? 'e2e@test',
  };
}
