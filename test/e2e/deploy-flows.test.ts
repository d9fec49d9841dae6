// The deploy flows an operator relies on, through the real CLI against throw-away namespaces of the
// local cluster: a changed value rolls the pods and keeps the generated secrets; a rollout that never
// becomes ready fails, says why and leaves the previous revision intact; invalid input changes
// nothing; two deploys at once: one proceeds, the other fails fast naming the holder; and no secret
// value ever shows in the output or the audit trail. Run with helm 4 and helm 3.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AUDIT_CONFIGMAP, readAudit } from '../../scripts/lib/domain/audit.ts';
import type { RunResult } from '../../scripts/lib/core/exec.ts';
import type { Kube, KubeObject } from '../../scripts/lib/adapters/kube.ts';
import { readLock } from '../../scripts/lib/domain/lease.ts';
import { NEVER_READY_VALUES, scratchTarget, tempValues, type Scratch } from './support/deploycli.ts';
import { localCluster } from './support/localcluster.ts';

const test = suite('deploy.ts flows');
let kube: Kube;
const scratches: Scratch[] = [];
/** Every output of every run of this suite, searched for secret values at the end. */
const outputs: RunResult[] = [];
const GENERATED_SECRETS = ['conduit-master-key', 'conduit-postgres', 'conduit-redis'];

type Secret = KubeObject & { data?: Record<string, string> };
type Deployment = KubeObject & { spec: { template: unknown } };
type ReplicaSet = KubeObject & { metadata: { labels?: Record<string, string>; annotations?: Record<string, string>; ownerReferences?: { name: string }[] } };

async function deploy(s: Scratch, args: string[]): Promise<RunResult> {
  const r = await s.deploy(args);
  outputs.push(r);
  return r;
}
async function secrets(ns: string): Promise<Record<string, Record<string, string>>> {
  const out: Record<string, Record<string, string>> = {};
  for (const name of GENERATED_SECRETS) out[name] = (await kube.get<Secret>('secret', name, { namespace: ns }))?.data ?? {};
  return out;
}
/** pod-template-hash of the newest ReplicaSet of the api Deployment. */
async function apiTemplateHash(ns: string): Promise<string | undefined> {
  const sets = (await kube.list<ReplicaSet>('replicasets', { namespace: ns, selector: 'app.kubernetes.io/component=api' })).filter((r) =>
    r.metadata.ownerReferences?.some((o) => o.name === 'conduit-api'),
  );
  sets.sort((a, b) => Number(a.metadata.annotations?.['deployment.kubernetes.io/revision']) - Number(b.metadata.annotations?.['deployment.kubernetes.io/revision']));
  return sets.at(-1)?.metadata.labels?.['pod-template-hash'];
}
async function apiTemplate(ns: string): Promise<string> {
  return JSON.stringify((await kube.get<Deployment>('deployment', 'conduit-api', { namespace: ns }))?.spec.template);
}
const lastRevision = async (s: Scratch) => (await s.history()).at(-1);

test.before(async () => {
  kube = await localCluster();
});
test.after(async () => {
  for (const s of scratches) await s.cleanup();
});

const helm4: { s?: Scratch } = {};

for (const major of [4, 3] as const) {
  const flag = ['--helm', String(major)];
  const box: { s?: Scratch } = major === 4 ? helm4 : {};

  test(`helm ${major}: a changed value rolls the pods and keeps the generated master key and passwords byte-identical`, async () => {
    const s = await scratchTarget(kube, `dflow${major}`);
    scratches.push(s);
    box.s = s;
    const first = await deploy(s, ['--yes', '--json', ...flag]);
    assert.is(first.exitCode, 0, first.stderr);
    const secretsBefore = await secrets(s.namespace);
    for (const name of GENERATED_SECRETS) assert.ok(Object.keys(secretsBefore[name]).length > 0, `${name} exists`);
    const hashBefore = await apiTemplateHash(s.namespace);
    assert.ok(hashBefore);

    const changed = await deploy(s, ['--yes', '--json', ...flag, '--values', tempValues('rev.yaml', 'api:\n  podAnnotations:\n    example.com/revision: "2"\n')]);
    assert.is(changed.exitCode, 0, changed.stderr);
    const out = JSON.parse(changed.stdout);
    assert.is(out.result, 'succeeded');
    assert.is(out.revision, out.previousRevision + 1);
    assert.is(out.checklist.length, 11);
    assert.not.ok(out.checklist.some((c: { status: string }) => c.status === 'fail'));
    assert.match(changed.stderr, /deployment checklist \(local\): \d+ pass/);
    // An upgrade is gated: validated and diffed on helm's own render before helm may apply it.
    assert.match(changed.stderr, /helm renders the chart; validate that render/);
    assert.ok(out.diff.objects.includes('Deployment/conduit-api'), out.diff.objects.join(', '));
    // The audit entry names the values (a digest) and the images deployed; the output points to it.
    const entries = await readAudit(kube, s.namespace);
    const done = entries.at(-1)!;
    assert.is(done.result, 'succeeded');
    assert.is(done.key, out.audit.key);
    const details = done.details as { valuesDigest: string; images: Record<string, string[]> };
    assert.match(details.valuesDigest, /^sha256:[0-9a-f]{16}$/);
    assert.is.not(details.valuesDigest, (entries.find((e) => e.result === 'succeeded')!.details as { valuesDigest: string }).valuesDigest, 'other values, another digest');
    assert.ok(
      details.images['Deployment/conduit-api']?.some((i) => /:[\w.-]+$/.test(i)),
      JSON.stringify(details.images),
    );
    assert.equal(out.audit.images, details.images);
    const json = await deploy(s, ['--yes', ...flag, '--values', tempValues('rev.yaml', 'api:\n  podAnnotations:\n    example.com/revision: "3"\n')]);
    assert.is(json.exitCode, 0, json.stderr);
    assert.match(json.stdout, /audit: entry \S+ \(succeeded\) in ConfigMap conduit-audit of \S+; values sha256:[0-9a-f]{16}; images: .*conduit-http/);
    const hashAfter = await apiTemplateHash(s.namespace);
    assert.ok(hashAfter && hashAfter !== hashBefore, `pod-template-hash ${hashBefore} -> ${hashAfter}`);
    assert.equal(await secrets(s.namespace), secretsBefore);
  });

  test(`helm ${major}: a rollout whose pods never become ready fails (exit 1), names the cause and leaves the previous revision intact`, async () => {
    const s = box.s!;
    const before = await lastRevision(s);
    const templateBefore = await apiTemplate(s.namespace);
    const secretsBefore = await secrets(s.namespace);
    const r = await deploy(s, ['--yes', ...flag, '--timeout', '12s', '--values', tempValues('never-ready.yaml', NEVER_READY_VALUES)]);
    assert.is(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, /failed and was rolled back to the previous revision/);
    // helm's own wording depends on whether its readiness check or its timeout fires first (both
    // happen on a loaded machine); the cause itself is asserted on the next line, from our pod report.
    assert.match(r.stderr, /Deployment\/[\w-]+\/conduit-api not ready|Pods not ready|timed out waiting for the condition|context deadline exceeded/);
    assert.match(r.stderr, /pod\/conduit-api-[\w-]+ \(Running\): .*Ready=False \(ContainersNotReady/);
    assert.is(await s.status(), 'deployed');
    const after = await lastRevision(s);
    assert.is(after?.status, 'deployed');
    assert.ok(after!.revision > before!.revision);
    assert.is(await apiTemplate(s.namespace), templateBefore);
    assert.equal(await secrets(s.namespace), secretsBefore);
    assert.ok((await readLock(kube, s.namespace)).free);
    assert.is((await readAudit(kube, s.namespace)).at(-1)?.result, 'rolled-back');
  });
}

test('an invalid overlay changes nothing: same revision, no lock, no audit entry', async () => {
  const s = helm4.s!;
  const before = await lastRevision(s);
  const auditBefore = (await readAudit(kube, s.namespace)).length;
  const r = await deploy(s, ['--yes', '--values', tempValues('bad.yaml', 'api:\n  replicaCount: -3\n')]);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /bad\.yaml/);
  assert.match(r.stderr, /api\.replicaCount/);
  assert.equal(await lastRevision(s), before);
  assert.ok((await readLock(kube, s.namespace)).free);
  assert.is((await readAudit(kube, s.namespace)).length, auditBefore);
});

test('two deploys started at once: exactly one proceeds, the other fails fast naming the holder', async () => {
  const s = helm4.s!;
  const values = tempValues('never-ready.yaml', NEVER_READY_VALUES);
  const args = ['--yes', '--timeout', '20s', '--values', values];
  const timed = async () => {
    const t0 = performance.now();
    const r = await deploy(s, args);
    return { r, seconds: (performance.now() - t0) / 1000 };
  };
  const [a, b] = await Promise.all([timed(), timed()]);
  const refused = [a, b].filter((x) => /deploy lock \S+ is held by/.test(x.r.stderr));
  const proceeded = [a, b].filter((x) => x.r.stderr.includes('helm upgrade --install ('));
  assert.is(refused.length, 1, `${a.r.stderr}\n-----\n${b.r.stderr}`);
  assert.is(proceeded.length, 1);
  const loser = refused[0];
  const winner = proceeded[0];
  assert.is(loser.r.exitCode, 1);
  assert.match(loser.r.stderr, /is held by \S+@\S+ pid \d+/);
  assert.match(loser.r.stderr, /Nothing was changed/);
  // The loser stops at the lock step, well before the winner's 20-second rollout wait ends.
  assert.ok(loser.seconds < winner.seconds - 10, `loser ${loser.seconds.toFixed(1)}s, winner ${winner.seconds.toFixed(1)}s`);
  assert.is(winner.r.exitCode, 1, 'the winner ran the never-ready rollout to its timeout');
  assert.ok((await readLock(kube, s.namespace)).free);
});

test('no secret value appears in any output of these runs or in the audit ConfigMap', async () => {
  assert.ok(outputs.length >= 8, `${outputs.length} runs`);
  for (const s of scratches) {
    const values = Object.values(await secrets(s.namespace)).flatMap((d) =>
      Object.entries(d)
        .filter(([k]) => k !== 'username')
        .map(([, v]) => v),
    );
    assert.ok(values.length >= 3);
    const audit = JSON.stringify((await kube.get<KubeObject & { data?: Record<string, string> }>('configmap', AUDIT_CONFIGMAP, { namespace: s.namespace }))?.data ?? {});
    assert.ok(audit.length > 100);
    for (const encoded of values) {
      const plain = Buffer.from(encoded, 'base64').toString();
      assert.ok(plain.length >= 16, 'generated secrets are long');
      for (const r of outputs) {
        for (const text of [r.stdout, r.stderr]) {
          assert.not.ok(text.includes(plain), `a secret value appeared in the output of ${r.command}`);
          assert.not.ok(text.includes(encoded), `a base64 secret value appeared in the output of ${r.command}`);
        }
      }
      assert.not.ok(audit.includes(plain) || audit.includes(encoded), 'a secret value is in the audit ConfigMap');
    }
  }
});

test.run();
