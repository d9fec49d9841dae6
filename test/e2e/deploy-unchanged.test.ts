// A deploy that has nothing to apply keeps the deployed revision; one whose objects were edited
// outside helm (a runbook scale) upgrades and takes the edit back; --always-upgrade records a new
// revision anyway. Also: the direct API client answers as kubectl does (same objects, same errors).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readAudit } from '../../scripts/lib/domain/audit.ts';
import { readRelease } from '../../scripts/lib/domain/helmrelease.ts';
import { isKubeError, Kube, type KubeObject } from '../../scripts/lib/adapters/kube.ts';
import { scratchTarget, tempValues, type Scratch } from './support/deploycli.ts';
import { localCluster } from './support/localcluster.ts';

const test = suite('deploy.ts: nothing to change, drift, direct API');
let kube: Kube;
let s: Scratch;
type Deployment = KubeObject & { spec: { replicas: number } };
const values = tempValues('same.yaml', 'api:\n  podAnnotations:\n    example.com/pinned: "yes"\n');
const replicas = async () => (await kube.get<Deployment>('deployment', 'conduit-api', { namespace: s.namespace }))?.spec.replicas;

test.before(async () => {
  kube = await localCluster();
  s = await scratchTarget(kube, 'dsame');
});
test.after(async () => {
  await s?.cleanup();
});

test('the same deploy twice: the second keeps the revision, says so, and audits "unchanged"', async () => {
  const first = await s.deploy(['--yes', '--json', '--values', values]);
  assert.is(first.exitCode, 0, first.stderr);
  const revision = JSON.parse(first.stdout).revision;
  const second = await s.deploy(['--yes', '--json', '--values', values]);
  assert.is(second.exitCode, 0, second.stderr);
  const out = JSON.parse(second.stdout);
  assert.is(out.result, 'unchanged');
  assert.is(out.revision, revision);
  assert.match(second.stderr, new RegExp(`no changes against revision ${revision} \\(deployed\\)`));
  assert.match(second.stderr, /check for edits made outside helm/);
  assert.not.match(second.stderr, /helm upgrade --install/);
  assert.is((await s.history()).at(-1)?.revision, revision, 'no new helm revision');
  assert.is((await readAudit(kube, s.namespace)).at(-1)?.result, 'unchanged');
  assert.ok(out.workloads.some((w: { name: string; ready: string }) => w.name === 'conduit-api' && w.ready === '1/1'));
});

test('an object edited outside helm is drift: the deploy upgrades and takes the edit back', async () => {
  const before = (await s.history()).at(-1)!.revision;
  await kube.patch('deployment', 'conduit-api', { spec: { replicas: 3 } }, { namespace: s.namespace });
  assert.is(await replicas(), 3);
  const r = await s.deploy(['--yes', '--json', '--values', values]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stderr, /upgrading anyway: edited outside helm since revision \d+: Deployment\/conduit-api/);
  assert.is(JSON.parse(r.stdout).result, 'succeeded');
  assert.is(JSON.parse(r.stdout).revision, before + 1);
  assert.is(await replicas(), 1);
});

test('changed values with the same objects are not "nothing to change"; --always-upgrade always upgrades', async () => {
  const before = (await s.history()).at(-1)!.revision;
  const r = await s.deploy(['--yes', '--json', '--values', values, '--always-upgrade']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(JSON.parse(r.stdout).result, 'succeeded');
  assert.is(JSON.parse(r.stdout).revision, before + 1);
  // A value the chart does not render (an empty annotation map merged away) still differs in the stored values.
  const extra = tempValues('extra.yaml', 'commonAnnotations: {}\n');
  const e = await s.deploy(['--yes', '--json', '--values', values, '--values', extra]);
  assert.is(e.exitCode, 0, e.stderr);
  assert.is(JSON.parse(e.stdout).result, 'succeeded', e.stderr);
  assert.is(JSON.parse(e.stdout).revision, before + 2);
  // Other values mean an upgrade whatever the diff shows: helm applies at once, and the diff (no object changes) follows.
  assert.match(e.stderr, /upgrading: the values differ from revision \d+'s/);
  assert.match(e.stderr, /no changes against revision \d+/);
});

test('--diff live compares with the live objects; an unknown --diff is a usage error', async () => {
  const r = await s.deploy(['--yes', '--json', '--values', values, '--values', tempValues('extra.yaml', 'commonAnnotations: {}\n'), '--diff', 'live']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stderr, /diff against the live objects/);
  const bad = await s.deploy(['--yes', '--diff', 'nope']);
  assert.is(bad.exitCode, 2);
  assert.match(bad.stderr, /--diff "nope"/);
});

test('the direct API client and kubectl give the same objects and the same error reasons', async () => {
  const viaKubectl = new Kube(kube.kubectl, kube.target, { direct: false });
  assert.ok(kube.rest, 'the local cluster is served directly');
  assert.is(viaKubectl.rest, null);
  const names = async (k: Kube) => (await k.list('pods', { namespace: s.namespace, selector: 'app.kubernetes.io/component=api' })).map((p) => `${p.apiVersion}/${p.kind}/${p.metadata.name}`).sort();
  assert.equal(await names(kube), await names(viaKubectl));
  const a = await kube.get<Deployment>('deploy', 'conduit-api', { namespace: s.namespace });
  const b = await viaKubectl.get<Deployment>('deploy', 'conduit-api', { namespace: s.namespace });
  assert.is(a?.metadata.uid, b?.metadata.uid);
  assert.equal(a?.spec, b?.spec);
  assert.is(await kube.get('configmap', 'does-not-exist', { namespace: s.namespace }), undefined);
  const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'parity', namespace: s.namespace }, data: { a: '1' } };
  await kube.create(cm);
  for (const k of [kube, viaKubectl]) {
    const e = await k.create(cm).then(
      () => undefined,
      (err: unknown) => err,
    );
    assert.ok(isKubeError(e, 'AlreadyExists'), String(e));
  }
  const stale = { ...cm, metadata: { ...cm.metadata, resourceVersion: '1' } };
  for (const k of [kube, viaKubectl]) {
    const e = await k.replace(stale).then(
      () => undefined,
      (err: unknown) => err,
    );
    assert.ok(isKubeError(e, 'Conflict'), String(e));
  }
  assert.ok(await kube.delete('configmap', 'parity', { namespace: s.namespace }));
  assert.not.ok(await kube.delete('configmap', 'parity', { namespace: s.namespace }));
  assert.is(await kube.can('create', 'leases.coordination.k8s.io', s.namespace), await viaKubectl.can('create', 'leases.coordination.k8s.io', s.namespace));
  const release = await readRelease(kube, s.namespace, s.release);
  const status = JSON.parse((await s.helm(['status', s.release, '--output', 'json'])).stdout) as { version: number; info: { status: string } };
  assert.is(release?.version, status.version);
  assert.is(release?.info.status, status.info.status);
});

test.run();
