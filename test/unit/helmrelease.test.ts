import zlib from 'node:zlib';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { covers } from '../../scripts/lib/domain/drift.ts';
import { decodeReleaseData, encodeReleaseData, helmStoresSecrets } from '../../scripts/lib/domain/helmrelease.ts';
import { canonicalJson, diffManifests, manifestDocuments, manifestObjects, workloadImages } from '../../scripts/lib/domain/manifests.ts';

const test = suite('helm releases: decode, release diff, drift');

test('a storage Secret value decodes as helm writes it: base64 (API) of base64 of gzipped JSON', () => {
  const release = { name: 'conduit', version: 7, info: { status: 'deployed' }, manifest: 'kind: ConfigMap\n', config: { api: { replicaCount: 2 } } };
  const helmText = zlib.gzipSync(JSON.stringify(release)).toString('base64');
  const apiValue = Buffer.from(helmText).toString('base64');
  assert.equal(decodeReleaseData(apiValue), release);
});

test('a release document encodes as helm stores it and decodes back with every field kept', () => {
  const doc = { name: 'conduit', version: 3, info: { status: 'failed', description: 'Interrupted' }, manifest: 'kind: Service', hooks: [{ name: 'test' }], labels: { a: 'b' } };
  const stored = Buffer.from(encodeReleaseData(doc as never)).toString('base64');
  assert.equal(decodeReleaseData(stored), doc);
  assert.is(Buffer.from(encodeReleaseData(doc as never), 'base64')[0], 0x1f, 'gzipped, as helm writes it');
});

test('only the secret storage driver is read directly', () => {
  assert.ok(helmStoresSecrets({}));
  assert.ok(helmStoresSecrets({ HELM_DRIVER: 'secret' }));
  assert.not.ok(helmStoresSecrets({ HELM_DRIVER: 'configmap' }));
  assert.not.ok(helmStoresSecrets({ HELM_DRIVER: 'sql' }));
});

const deployment = (annotation: string) => `# Source: conduit/templates/api/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: conduit-api
spec:
  replicas: 1
  template:
    metadata:
      annotations:
        example.com/revision: "${annotation}"
`;
const secret = (password: string) => `apiVersion: v1
kind: Secret
metadata:
  name: conduit-redis
data:
  redis-password: ${Buffer.from(password).toString('base64')}
  other: ${Buffer.from('same').toString('base64')}
`;
const hook = `apiVersion: v1
kind: Pod
metadata:
  name: conduit-test-api
  annotations:
    helm.sh/hook: test
`;

test('the release diff names changed, added and removed objects; key order and comments do not count', async () => {
  const before = [deployment('1'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gone\n'].join('---\n');
  const after = [deployment('2'), 'apiVersion: v1\nkind: Service\nmetadata:\n  name: conduit-api\n'].join('---\n');
  const d = await diffManifests(before, after, 'conduit');
  assert.equal(d.changed, ['Deployment/conduit-api']);
  assert.equal(d.added, ['Service/conduit-api']);
  assert.equal(d.removed, ['ConfigMap/gone']);
  assert.equal(d.objects, ['Deployment/conduit-api', 'Service/conduit-api', 'ConfigMap/gone']);
  assert.match(d.text, /-\s+example\.com\/revision: "1"\n\+\s+example\.com\/revision: "2"/);
  const reordered = 'kind: Deployment\napiVersion: apps/v1\nspec:\n  template:\n    metadata:\n      annotations:\n        example.com/revision: "1"\n  replicas: 1\nmetadata:\n  name: conduit-api\n';
  assert.equal((await diffManifests(deployment('1'), reordered, 'conduit')).objects, []);
});

test('Secret values never appear in the diff; it only says which changed', async () => {
  const d = await diffManifests(secret('old-password-1'), secret('new-password-2'), 'conduit');
  assert.equal(d.changed, ['Secret/conduit-redis']);
  for (const v of ['old-password-1', 'new-password-2', 'same']) {
    assert.not.ok(d.text.includes(v) || d.text.includes(Buffer.from(v).toString('base64')), `${v} leaked`);
  }
  assert.match(d.text, /-\s+redis-password: \(hidden, old value\)\n\+\s+redis-password: \(hidden, new value\)/);
  assert.match(d.text, / {3}other: \(hidden\)/);
  assert.equal((await diffManifests(secret('a'), secret('a'), 'conduit')).objects, []);
});

test('documents with the same text on both sides are not even parsed', async () => {
  const broken = 'kind: [never closed\n';
  // Parsed, the broken document is an error; on both sides with the same text, it is never read.
  assert.throws(() => manifestDocuments(broken), /not valid YAML/);
  const d = await diffManifests([broken, deployment('1')].join('---\n'), [broken, deployment('2')].join('---\n'), 'conduit');
  assert.equal(d.objects, ['Deployment/conduit-api']);
});

test('hooks are left out on both sides (helm stores them apart from the manifest)', async () => {
  assert.equal((await diffManifests(deployment('1'), [deployment('1'), hook].join('---\n'), 'conduit')).objects, []);
  assert.is(manifestObjects([deployment('1'), hook].join('---\n')).length, 2);
});

test('the images of each workload, init containers and CronJobs included, hooks left out', () => {
  const manifest = [
    'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: conduit-api\nspec:\n  template:\n    spec:\n      initContainers:\n        - name: wait\n          image: busybox:1.37\n      containers:\n        - name: api\n          image: ghcr.io/knnlabs/conduit-http:1.0.0\n        - name: sidecar\n          image: busybox:1.37',
    'apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: conduit-redis\nspec:\n  template:\n    spec:\n      containers:\n        - name: redis\n          image: redis:7.4.2',
    'apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: conduit-backup\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n            - name: backup\n              image: postgres:17.5',
    'apiVersion: v1\nkind: Pod\nmetadata:\n  name: conduit-test\n  annotations:\n    helm.sh/hook: test\nspec:\n  containers:\n    - name: t\n      image: curl:8',
    'apiVersion: v1\nkind: Service\nmetadata:\n  name: conduit-api',
  ].join('\n---\n');
  assert.equal(workloadImages(manifest), {
    'Deployment/conduit-api': ['busybox:1.37', 'ghcr.io/knnlabs/conduit-http:1.0.0'],
    'StatefulSet/conduit-redis': ['redis:7.4.2'],
    'CronJob/conduit-backup': ['postgres:17.5'],
  });
});

test('manifests are read with the YAML 1.2 core schema; what js-yaml refuses is still read', () => {
  // YAML 1.1 words stay strings, numbers are numbers, timestamps stay text.
  const [doc] = manifestDocuments('kind: ConfigMap\ndata:\n  a: on\n  b: yes\n  c: 0x1F\n  d: 2024-01-01\n  e: ~\n');
  assert.equal(doc, { kind: 'ConfigMap', data: { a: 'on', b: 'yes', c: 31, d: '2024-01-01', e: null } });
  // A duplicate key: js-yaml (json mode) keeps the last. An unknown tag makes js-yaml throw; the yaml package reads the value.
  assert.equal(manifestDocuments('kind: A\nkind: B\n')[0], { kind: 'B' });
  assert.equal(manifestDocuments('kind: ConfigMap\ndata:\n  a: !custom value\n')[0], { kind: 'ConfigMap', data: { a: 'value' } });
});

test('canonical JSON ignores key order only', () => {
  assert.is(canonicalJson({ b: 1, a: { d: [2, 1], c: null } }), canonicalJson({ a: { c: null, d: [2, 1] }, b: 1 }));
  assert.is.not(canonicalJson({ a: [1, 2] }), canonicalJson({ a: [2, 1] }));
});

test('drift: live objects cover the manifest when every set field has that value; extra live fields do not count', () => {
  const want = { spec: { replicas: 2, template: { spec: { containers: [{ name: 'api', env: [{ name: 'A', value: '1' }] }] } }, selector: {} }, metadata: { labels: { a: 'b' } } };
  const live = {
    spec: { replicas: 2, strategy: { type: 'RollingUpdate' }, template: { spec: { containers: [{ name: 'api', env: [{ name: 'A', value: '1' }], imagePullPolicy: 'IfNotPresent' }] } } },
    metadata: { labels: { a: 'b', extra: 'x' }, uid: 'u' },
  };
  assert.ok(covers(want, live));
  assert.not.ok(covers(want, { ...live, spec: { ...live.spec, replicas: 5 } }), 'a runbook scale is drift');
  const twoEnv = structuredClone(live);
  twoEnv.spec.template.spec.containers[0].env.push({ name: 'B', value: '2' });
  assert.not.ok(covers(want, twoEnv), 'a list with another length is drift');
  assert.ok(covers({ port: 8080 }, { port: '8080' }));
  assert.ok(covers({ a: [], b: {}, c: null }, {}), 'empty values match absence');
  assert.not.ok(covers({ a: 'x' }, undefined));
});

test.run();
