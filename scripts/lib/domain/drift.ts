// Drift: whether the live objects still hold what a manifest sets. Used by the deploy to tell that an
// upgrade would change nothing (the release diff is empty AND nobody edited the objects since), so it
// can keep the deployed revision instead of recording an empty one.
//
// The check is one-sided on purpose: every field the manifest sets must have that value live; fields
// the API server or controllers add (defaults, status, annotations of other managers) do not count.
// Lists must match element by element and in length. Whatever this cannot compare exactly (a quantity
// the server rewrote, a field it dropped) counts as drift, so a doubt always means "upgrade".
import { mapLimit } from '../core/exec.ts';
import { releaseObjects } from './manifests.ts';
import { isKubeError, type Kube } from '../adapters/kube.ts';

/** Whether `live` holds every field `want` sets (empty maps, empty lists and nulls match absence). */
export function covers(want: unknown, live: unknown): boolean {
  if (want === null || want === undefined) return true;
  if (Array.isArray(want)) {
    if (want.length === 0) return live === undefined || live === null || (Array.isArray(live) && live.length === 0);
    return Array.isArray(live) && live.length === want.length && want.every((w, i) => covers(w, live[i]));
  }
  if (typeof want === 'object') {
    const entries = Object.entries(want as Record<string, unknown>);
    if (entries.length === 0) return live === undefined || live === null || (typeof live === 'object' && !Array.isArray(live));
    if (!live || typeof live !== 'object' || Array.isArray(live)) return false;
    return entries.every(([k, v]) => covers(v, (live as Record<string, unknown>)[k]));
  }
  if (typeof want === 'number' || typeof live === 'number') return String(want) === String(live);
  return want === live;
}

/** A Secret as the API stores it: stringData folded into data (base64). */
function asStored(o: Record<string, unknown>): Record<string, unknown> {
  if (o.kind !== 'Secret' || !o.stringData) return o;
  const data = { ...((o.data ?? {}) as Record<string, string>) };
  for (const [k, v] of Object.entries(o.stringData as Record<string, string>)) data[k] = Buffer.from(String(v)).toString('base64');
  const { stringData: _dropped, ...rest } = o;
  return { ...rest, data };
}

/** Kubectl-style name of an object's resource: `kind.group` (the core group has none). */
function resourceName(o: Record<string, unknown>): string {
  const apiVersion = String(o.apiVersion ?? '');
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
  return `${String(o.kind).toLowerCase()}${group ? `.${group}` : ''}`;
}

/**
 * The objects of a manifest (hooks left out) whose live state differs from it: missing, or with a
 * field set to another value. Empty when every object is live as the manifest says.
 */
export async function liveDrift(kube: Kube, manifest: string, namespace: string): Promise<string[]> {
  const objects = releaseObjects(manifest, namespace);
  const drifted = await mapLimit(objects, 8, async ({ id, object }) => {
    const meta = (object.metadata ?? {}) as { name?: string; namespace?: string };
    try {
      const live = await kube.get(resourceName(object), meta.name ?? '', { namespace: meta.namespace ?? namespace });
      return live && covers(asStored(object), live) ? undefined : id;
    } catch (e) {
      if (isKubeError(e)) return id;
      throw e;
    }
  });
  return drifted.filter((d): d is string => d !== undefined);
}
