// The deploy's image preflight: which images of a render are asked for (and which are not), the
// values key each comes from, the pull Secrets' credentials, parallel checks, and the refusal text.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { stringify } from 'yaml';
import { checkImages, imageCheckFailure, summarizeImageCheck, workloadImageUses } from '../../scripts/lib/domain/imagecheck.ts';
import type { Kube } from '../../scripts/lib/adapters/kube.ts';
import type { ImageReference, ManifestCheck, ManifestCheckOptions } from '../../scripts/lib/adapters/registry.ts';

const DIGEST = 'sha256:' + 'c'.repeat(64);
const podSpec = (containers: string[], init: string[] = [], secrets: string[] = []) => ({
  ...(secrets.length ? { imagePullSecrets: secrets.map((name) => ({ name })) } : {}),
  ...(init.length ? { initContainers: init.map((image, i) => ({ name: `init${i}`, image })) } : {}),
  containers: containers.map((image, i) => ({ name: `c${i}`, image })),
});
const manifest = (...objects: unknown[]) => objects.map((o) => stringify(o)).join('---\n');
const values = {
  global: { imageRegistry: '' },
  api: { image: { registry: 'ghcr.io', repository: 'knnlabs/conduit-http', tag: '', digest: '' } },
  admin: { image: { registry: 'ghcr.io', repository: 'knnlabs/conduit-admin', tag: '', digest: DIGEST } },
  redis: { standalone: { image: { registry: 'docker.io', repository: 'library/redis', tag: '7.4.6-alpine', digest: '' } } },
  backup: { external: { upload: { image: { registry: 'docker.io', repository: 'rclone/rclone', tag: '1.76.0', digest: '' } } } },
  webui: { extraContainers: [{ name: 'proxy', image: 'registry.example.com/tools/proxy:2' }] },
};
const render = manifest(
  {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'conduit-api', namespace: 'conduit' },
    spec: { template: { spec: podSpec(['mirror.example.com/knnlabs/conduit-http:master-7c3fd76'], ['docker.io/library/redis:7.4.6-alpine'], ['regcred']) } },
  },
  { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'conduit-admin' }, spec: { template: { spec: podSpec([`ghcr.io/knnlabs/conduit-admin@${DIGEST}`], [], ['regcred', 'other']) } } },
  { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'conduit-redis' }, spec: { template: { spec: podSpec(['docker.io/library/redis:7.4.6-alpine']) } } },
  { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'conduit-backup' }, spec: { jobTemplate: { spec: { template: { spec: podSpec(['docker.io/rclone/rclone:1.76.0']) } } } } },
  {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'conduit-pre-upgrade', annotations: { 'helm.sh/hook': 'pre-upgrade' } },
    spec: { template: { spec: podSpec(['docker.io/rclone/rclone:1.76.0']) } },
  },
  { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'conduit-webui' }, spec: { template: { spec: podSpec(['registry.example.com/tools/proxy:2']) } } },
  { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'conduit-test', annotations: { 'helm.sh/hook': 'test' } }, spec: podSpec(['docker.io/library/busybox:1.37.0']) },
  { apiVersion: 'rabbitmq.com/v1beta1', kind: 'RabbitmqCluster', metadata: { name: 'conduit' }, spec: { image: 'registry.example.com/rabbitmq:4' } },
);

test('each workload image once, init containers and hook Jobs included; test pods and custom resources left out', () => {
  const uses = workloadImageUses(render, { values, namespace: 'conduit' });
  assert.equal(
    uses.map((u) => u.image),
    [
      'docker.io/library/redis:7.4.6-alpine',
      'mirror.example.com/knnlabs/conduit-http:master-7c3fd76',
      `ghcr.io/knnlabs/conduit-admin@${DIGEST}`,
      'docker.io/rclone/rclone:1.76.0',
      'registry.example.com/tools/proxy:2',
    ],
  );
  const redis = uses[0];
  assert.equal(redis.workloads, ['Deployment/conduit-api', 'StatefulSet/conduit-redis']);
  assert.equal(redis.pullSecrets, ['regcred']);
  assert.equal(uses[3].workloads, ['CronJob/conduit-backup', 'Job/conduit-pre-upgrade']);
  assert.equal(uses[2].pullSecrets, ['regcred', 'other']);
  assert.equal(workloadImageUses(render, { namespace: 'elsewhere' })[0].workloads, ['Deployment/conduit/conduit-api', 'StatefulSet/conduit-redis'], 'objects of another namespace are named with it');
});

test('the values key behind each image: tag or digest, behind a global registry mirror, plain image strings', () => {
  const key = Object.fromEntries(workloadImageUses(render, { values }).map((u) => [u.image, u.key]));
  assert.is(key['mirror.example.com/knnlabs/conduit-http:master-7c3fd76'], 'api.image.tag');
  assert.is(key[`ghcr.io/knnlabs/conduit-admin@${DIGEST}`], 'admin.image.digest');
  assert.is(key['docker.io/library/redis:7.4.6-alpine'], 'redis.standalone.image.tag');
  assert.is(key['docker.io/rclone/rclone:1.76.0'], 'backup.external.upload.image.tag');
  assert.is(key['registry.example.com/tools/proxy:2'], 'webui.extraContainers[0].image');
  assert.is(workloadImageUses(render)[0].key, undefined, 'no values, no key');
});

/** A Kube stand-in that only serves Secrets (the module reads nothing else). */
function secretsKube(secrets: Record<string, unknown>): Kube {
  return {
    get: async (kind: string, name: string) => {
      assert.is(kind, 'secret');
      const config = secrets[name];
      if (config === undefined) return undefined;
      return { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/dockerconfigjson', metadata: { name }, data: { '.dockerconfigjson': Buffer.from(JSON.stringify(config)).toString('base64') } };
    },
  } as unknown as Kube;
}

test('checks run in parallel, one per image, with the first pull Secret that has credentials for the registry', async () => {
  let running = 0;
  let most = 0;
  const seen: { ref: string; user?: string }[] = [];
  const check = async (ref: ImageReference, o: ManifestCheckOptions): Promise<ManifestCheck> => {
    running++;
    most = Math.max(most, running);
    seen.push({ ref: `${ref.registry}/${ref.repository}`, user: o.credentials?.username });
    await new Promise((r) => setTimeout(r, 30));
    running--;
    if (ref.registry === 'registry.example.com') return { status: 'unreachable', detail: 'DNS name not found', authenticated: false };
    if (ref.repository === 'rclone/rclone') return { status: 'missing', detail: 'HTTP 404 MANIFEST_UNKNOWN: manifest unknown', authenticated: false };
    return { status: 'found', detail: 'HTTP 200', digest: DIGEST, authenticated: Boolean(o.credentials) };
  };
  const kube = secretsKube({
    regcred: { auths: { 'mirror.example.com': { username: 'mirror-user', password: 'mirror-pass-1' } } },
    other: { auths: { 'ghcr.io': { username: 'gh-user', password: 'gh-pass-1' } } },
  });
  const report = await checkImages(workloadImageUses(render, { values }), { namespace: 'conduit', kube, check });
  assert.is(seen.length, 5, 'each image once');
  assert.is(most, 5, 'all at once');
  assert.is(seen.find((s) => s.ref === 'mirror.example.com/knnlabs/conduit-http')?.user, 'mirror-user');
  assert.is(seen.find((s) => s.ref === 'ghcr.io/knnlabs/conduit-admin')?.user, 'gh-user', 'regcred has nothing for ghcr.io: the next Secret');
  assert.is(seen.find((s) => s.ref === 'docker.io/library/redis')?.user, undefined);
  const admin = report.results.find((r) => r.image.includes('conduit-admin'))!;
  assert.equal([admin.status, admin.pullSecret, admin.digest], ['found', 'other', DIGEST]);
  assert.equal(report.warnings, ['could not reach registry registry.example.com (DNS name not found): image not checked, the deploy goes on: registry.example.com/tools/proxy:2']);
  assert.match(summarizeImageCheck(report), /^images: 5 asked for at their registries in \d+ ms: 3 found, 1 missing or invalid, 1 not checked/);
  assert.not.match(JSON.stringify(report), /pass-1/);
});

test('a missing pull Secret is a warning and the registry is asked without credentials', async () => {
  const uses = [{ image: 'ghcr.io/a/b:1', workloads: ['Deployment/x'], pullSecrets: ['gone'] }];
  let withCreds = true;
  const report = await checkImages(uses, {
    namespace: 'ns',
    kube: secretsKube({}),
    check: async (_r, o) => ((withCreds = Boolean(o.credentials)), { status: 'found', detail: 'HTTP 200', authenticated: false }),
  });
  assert.is(withCreds, false);
  assert.match(report.warnings[0], /image pull Secret gone is not in namespace ns/);
});

test('the refusal names every missing or invalid image, its workloads and the key to change; none when all exist', async () => {
  const uses = [
    { image: 'ghcr.io/knnlabs/conduit-http:nope', workloads: ['Deployment/conduit-api'], key: 'api.image.tag', pullSecrets: [] },
    { image: 'ghcr.io/Bad/ref:1', workloads: ['Deployment/conduit-webui'], key: 'webui.image.repository', pullSecrets: [] },
    { image: 'docker.io/library/redis:7', workloads: ['StatefulSet/conduit-redis'], key: 'redis.standalone.image.tag', pullSecrets: [] },
    { image: 'ghcr.io/knnlabs/conduit-admin:x', workloads: ['Deployment/conduit-admin'], key: 'admin.image.tag', pullSecrets: [] },
  ];
  const check = async (ref: ImageReference): Promise<ManifestCheck> =>
    ref.repository === 'library/redis'
      ? { status: 'found', detail: 'HTTP 200', authenticated: false }
      : ref.tag === 'x'
        ? { status: 'unreachable', detail: 'HTTP 503 (registry error)', authenticated: false }
        : { status: 'missing', detail: 'HTTP 404 MANIFEST_UNKNOWN: manifest unknown', authenticated: false };
  const report = await checkImages(uses, { namespace: 'ns', check });
  const e = imageCheckFailure(report, 'prod-eu')!;
  assert.ok(e);
  assert.is(e.exitCode, 1);
  assert.match(e.message, /^2 images of the release do not exist in their registries, so its pods could never start on prod-eu; nothing was deployed:/);
  assert.match(
    e.message,
    /ghcr\.io\/knnlabs\/conduit-http:nope \(Deployment\/conduit-api\): not in registry ghcr\.io: HTTP 404 MANIFEST_UNKNOWN: manifest unknown; change api\.image\.tag \(or --image-tag, for api, admin and webui together\)/,
  );
  assert.match(e.message, /ghcr\.io\/Bad\/ref:1 \(Deployment\/conduit-webui\): "ghcr\.io\/Bad\/ref:1" is not a valid image reference/);
  assert.not.match(e.message, /conduit-admin|redis/, 'unreachable and found images are not part of the refusal');
  assert.match(e.hint!, /skopeo list-tags/);
  const fine = await checkImages([uses[2]], { namespace: 'ns', check });
  assert.is(imageCheckFailure(fine, 'prod-eu'), undefined);
});

test.run();
