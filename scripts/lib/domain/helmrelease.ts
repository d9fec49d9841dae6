// Helm releases read straight from the cluster, and what a new render changes against one.
//
// Helm (3 and 4) keeps each revision in a Secret `sh.helm.release.v1.NAME.vN` labelled owner=helm,
// name=NAME, version=N, status=...: its `release` key is base64 text of a gzipped JSON document
// (name, version, info, chart, manifest). Reading that is one API list instead of a `helm status`
// process (0.3 s). With HELM_DRIVER set to another storage, callers use helm itself.
// The manifests themselves (parsing, objects, images, the release diff) are manifests.ts'.
import zlib from 'node:zlib';
import type { Kube, KubeObject } from '../adapters/kube.ts';

export interface HelmRelease {
  name: string;
  version: number;
  namespace?: string;
  info: { status: string; description?: string; first_deployed?: string; last_deployed?: string };
  chart?: { metadata?: { name?: string; version?: string; appVersion?: string } };
  manifest?: string;
  /** The user-supplied values of this revision. */
  config?: Record<string, unknown>;
}

/** Whether helm stores releases in Secrets here (its default), so they can be read directly. */
export function helmStoresSecrets(env = process.env): boolean {
  const driver = (env.HELM_DRIVER ?? '').toLowerCase();
  return driver === '' || driver === 'secret' || driver === 'secrets';
}

/** Decode the `release` value of a helm storage Secret (the API's base64 already undone or not). */
export function decodeReleaseData(data: string): HelmRelease {
  // Secret data from the API is base64; inside it is helm's own base64 of the (usually gzipped) JSON.
  let inner = Buffer.from(data, 'base64');
  if (inner[0] !== 0x1f && inner[0] !== 0x7b) inner = Buffer.from(inner.toString('latin1'), 'base64');
  const json = inner[0] === 0x1f && inner[1] === 0x8b ? zlib.gunzipSync(inner) : inner;
  return JSON.parse(json.toString('utf8')) as HelmRelease;
}

type StorageSecret = KubeObject & { data?: { release?: string } };

/** Every stored revision of a release, oldest first (without decoding any). */
export async function releaseRevisions(kube: Kube, namespace: string, release: string): Promise<{ version: number; status: string; secret: StorageSecret }[]> {
  const secrets = await kube.list<StorageSecret>('secrets', { namespace, selector: `owner=helm,name=${release}` });
  return secrets
    .map((s) => ({ version: Number(s.metadata.labels?.version ?? NaN), status: s.metadata.labels?.status ?? 'unknown', secret: s }))
    .filter((r) => Number.isInteger(r.version))
    .sort((a, b) => a.version - b.version);
}

/** The newest revision of a release (what `helm status` shows), or undefined when not installed. */
export async function readRelease(kube: Kube, namespace: string, release: string): Promise<HelmRelease | undefined> {
  const newest = (await releaseRevisions(kube, namespace, release)).at(-1);
  const data = newest?.secret.data?.release;
  return data ? decodeReleaseData(data) : undefined;
}

/** A release document as helm stores it: gzipped JSON, base64 (the Secret's own base64 comes on top). */
export function encodeReleaseData(release: HelmRelease): string {
  return zlib.gzipSync(Buffer.from(JSON.stringify(release))).toString('base64');
}

/**
 * Mark one stored revision `failed` with a description, as helm itself marks a revision whose
 * operation failed: used for a revision left pending-* by a deploy that died, once the release has
 * been recovered, so that `helm history` shows no operation still "in progress". Other fields of the
 * stored document are kept as they are. False when the revision is not stored (any more).
 */
export async function markRevisionFailed(kube: Kube, namespace: string, release: string, version: number, description: string): Promise<boolean> {
  const stored = (await releaseRevisions(kube, namespace, release)).find((r) => r.version === version);
  const data = stored?.secret.data?.release;
  if (!stored || !data) return false;
  // Every field of the stored document is kept (decodeReleaseData parses all of it).
  const raw = decodeReleaseData(data);
  raw.info = { ...raw.info, status: 'failed', description };
  const secret = structuredClone(stored.secret);
  secret.metadata.labels = { ...secret.metadata.labels, status: 'failed' };
  secret.data = { ...secret.data, release: Buffer.from(encodeReleaseData(raw)).toString('base64') };
  await kube.replace(secret, { namespace });
  return true;
}
