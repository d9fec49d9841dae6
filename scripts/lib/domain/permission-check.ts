// The preflight of deploy.ts, runbook.ts and backup.ts --cluster: every permission the command needs
// (permissions.ts) asked of the API server at once, one SelfSubjectAccessReview each, before anything
// changes; each one missing is named with its namespace, why it is needed and the fix.
import { UserError } from '../core/errors.ts';
import { isKubeError, type AccessAttributes, type Kube, type KubeObject } from '../adapters/kube.ts';
import { commandOf, CREATE_NAMESPACES, DEPLOYER_FILE, DEPLOYER_NAME, permissionKey, permissionsFor, reasonsFor, type Permission, type PermissionUse } from './permissions.ts';

export interface PermissionCheck {
  use: PermissionUse;
  namespace: string;
  /** false: the namespace is missing (or being deleted), so a deploy must create it; undefined: could not tell. */
  namespaceExists?: boolean;
  results: { permission: Permission; allowed: boolean }[];
  missing: Permission[];
}

/** Where a command runs, for messages. */
export interface PermissionTarget {
  cluster: string;
  context: string;
  namespace: string;
}

function attributesOf(p: Permission, namespace: string): AccessAttributes {
  const [resource, subresource] = p.resource.split('/');
  return { verb: p.verb, group: p.group, resource, ...(subresource ? { subresource } : {}), ...(p.name ? { name: p.name } : {}), ...(p.clusterWide ? {} : { namespace }) };
}

/** Whether the namespace is there to deploy into (a namespace being deleted is not); undefined when this identity may not read it. */
async function namespaceExists(kube: Kube, namespace: string): Promise<boolean | undefined> {
  try {
    const ns = await kube.get<KubeObject & { status?: { phase?: string } }>('namespace', namespace);
    return Boolean(ns) && ns?.status?.phase !== 'Terminating';
  } catch (e) {
    if (isKubeError(e, 'Forbidden')) return undefined;
    throw e;
  }
}

/** Ask for every permission `use` needs in `namespace` at once (and, for a deploy into a missing namespace, for creating it). */
export async function checkPermissions(kube: Kube, use: PermissionUse, namespace: string): Promise<PermissionCheck> {
  const needed = permissionsFor(use);
  const deploys = use === 'deploy';
  const asks = deploys ? [...needed, CREATE_NAMESPACES] : needed;
  const [exists, allowed] = await Promise.all([deploys ? namespaceExists(kube, namespace) : Promise.resolve(true), kube.reviewAccess(asks.map((p) => attributesOf(p, namespace)))]);
  // Creating the namespace counts when it is missing, or when this identity may not even tell (and may not create it).
  const results = asks.map((permission, i) => ({ permission, allowed: allowed[i] })).filter((r) => r.permission !== CREATE_NAMESPACES || exists === false || (exists === undefined && !r.allowed));
  return { use, namespace, namespaceExists: exists, results, missing: results.filter((r) => !r.allowed).map((r) => r.permission) };
}

const LISTED = 12;

/** The error of a check with missing permissions: each one named with its namespace and why, and the fix. */
export function permissionError(check: PermissionCheck, where: PermissionTarget): UserError {
  const cmd = commandOf(check.use);
  const line = (p: Permission) =>
    p.clusterWide
      ? `  - ${permissionKey(p)} (cluster-wide): ${check.namespaceExists === false ? `namespace ${check.namespace} does not exist` : `needed if namespace ${check.namespace} does not exist (this identity may not read it to tell)`}, and ${cmd} would create it`
      : `  - ${permissionKey(p)} in namespace ${check.namespace}: ${reasonsFor(check.use, p).join('; ')}`;
  const ordered = [...check.missing.filter((p) => p.clusterWide), ...check.missing.filter((p) => !p.clusterWide)];
  const shown = ordered.length > LISTED + 1 ? ordered.slice(0, LISTED) : ordered;
  const more = ordered.length - shown.length;
  const lines = [...shown.map(line), ...(more ? [`  ... and ${more} more (${cmd} --check-permissions lists every one)`] : [])];
  const noNamespace = check.namespaceExists === false || check.missing.includes(CREATE_NAMESPACES);
  return new UserError(
    `${cmd} on ${where.cluster} stopped before changing anything: the identity of context "${where.context}" lacks ${check.missing.length} permission(s) it needs:\n${lines.join('\n')}`,
    {
      hint: noNamespace
        ? `Have a cluster admin create namespace ${check.namespace} together with the deployer's ServiceAccount and Role: kubectl apply -f ${DEPLOYER_FILE} (namespace set to ${check.namespace}); see docs/rbac.md.`
        : `Bind the Role ${DEPLOYER_NAME} of ${DEPLOYER_FILE} to this identity in namespace ${check.namespace} (a cluster admin applies the file with its namespace set to ${check.namespace}); docs/rbac.md explains every rule.`,
      details: { use: check.use, namespace: check.namespace, namespaceExists: check.namespaceExists, missing: check.missing.map(permissionKey) },
    },
  );
}

/** Throws permissionError when the check found anything missing. */
export function assertPermitted(check: PermissionCheck, where: PermissionTarget): void {
  if (check.missing.length) throw permissionError(check, where);
}

/** The preflight of a command: throws permissionError when anything is missing; the check otherwise. */
export async function requirePermissions(kube: Kube, use: PermissionUse, where: PermissionTarget): Promise<PermissionCheck> {
  const check = await checkPermissions(kube, use, where.namespace);
  if (check.missing.length) throw permissionError(check, where);
  return check;
}

/**
 * --check-permissions of deploy.ts, runbook.ts and backup.ts: ask for everything `use` needs and report
 * it (exit 0), or throw permissionError naming what is missing (exit 1). Changes nothing.
 */
export async function reportPermissions(kube: Kube, use: PermissionUse, where: PermissionTarget, reporter: { result(human: string, data: unknown): void }): Promise<number> {
  if (!(await kube.reachable(10_000))) {
    throw new UserError(`cannot reach the API server of context "${where.context}"`, {
      hint: 'Check the context, your credentials and the network (the local cluster: npx zx scripts/cluster.ts up).',
    });
  }
  const check = await requirePermissions(kube, use, where);
  const r = describePermissionCheck(check, where);
  reporter.result(r.text, r.json);
  return 0;
}

/** What --check-permissions reports when everything is granted: a summary line and the table. */
export function describePermissionCheck(check: PermissionCheck, where: PermissionTarget): { text: string; json: Record<string, unknown> } {
  const cmd = commandOf(check.use);
  const rows = check.results.map((r) => `  ${r.allowed ? 'granted' : 'MISSING'}  ${permissionKey(r.permission)}`);
  return {
    text: `${cmd} may run on ${where.cluster}: the identity of context "${where.context}" has all ${check.results.length} permissions it needs in namespace ${check.namespace}.\n${rows.join('\n')}`,
    json: {
      ok: check.missing.length === 0,
      use: check.use,
      cluster: where.cluster,
      namespace: check.namespace,
      permissions: check.results.map((r) => ({ permission: permissionKey(r.permission), allowed: r.allowed })),
    },
  };
}
