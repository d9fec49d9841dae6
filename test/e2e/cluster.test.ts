// The built-in local cluster, driven through its command line and the kubectl wrapper: idempotent
// up, status, real rollouts, a deliberate never-ready pod, Jobs and helm test hooks, Pod Security.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../scripts/lib/core/exec.ts';
import { isKubeError, type Kube, type KubeObject } from '../../scripts/lib/adapters/kube.ts';
import { FAIL_ANNOTATION, NEVER_READY_ANNOTATION } from '../../scripts/lib/engines/cluster.ts';
import { LOCAL_CONTEXT } from '../../scripts/lib/domain/target.ts';
import { tool } from '../../scripts/lib/adapters/tools.ts';
import { clusterCli, localCluster, scratchNamespace, sleep } from './support/localcluster.ts';

const test = suite('local cluster');
let kube: Kube;

test.before(async () => {
  kube = await localCluster();
});

type PodObj = KubeObject & { spec: { nodeName?: string }; status: { phase?: string; conditions?: { type: string; status: string }[] } };
const ready = (p: PodObj) => p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

function deployment(name: string, replicas: number, podAnnotations: Record<string, string> = {}): KubeObject {
  const labels = { app: name };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      template: { metadata: { labels, annotations: podAnnotations }, spec: { containers: [{ name: 'app', image: 'registry.local/app:1' }] } },
    },
  };
}

test('up on a running cluster is a fast no-op that says so; status and kubeconfig describe it', async () => {
  const started = Date.now();
  const up = await clusterCli(['up', '--json']);
  assert.is(up.exitCode, 0, up.stderr);
  const upJson = JSON.parse(up.stdout);
  assert.is(upJson.alreadyRunning, true);
  assert.is(upJson.action, 'none');
  assert.is(upJson.context, LOCAL_CONTEXT);
  assert.ok(Date.now() - started < 30_000, `second up took ${Date.now() - started}ms`);
  const human = await clusterCli(['up']);
  assert.match(human.stdout, /already running/);

  const st = await clusterCli(['status', '--json']);
  assert.is(st.exitCode, 0, st.stderr);
  const s = JSON.parse(st.stdout);
  assert.is(s.running, true);
  assert.is(s.version, 'v1.36.3');
  assert.equal(s.components.map((c: { name: string }) => c.name).sort(), ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok-controller']);
  assert.ok(
    s.components.every((c: { status: string }) => c.status === 'Ready'),
    JSON.stringify(s.components),
  );
  assert.is(s.nodes.length, 3);
  assert.ok(s.nodes.every((n: { ready: boolean }) => n.ready));
  assert.is(new Set(s.nodes.map((n: { zone: string }) => n.zone)).size, 2);
  assert.ok(s.crds.length === 4 && s.crds.every((c: { installed: number; total: number }) => c.total > 0 && c.installed === c.total), JSON.stringify(s.crds));

  const kc = await clusterCli(['kubeconfig']);
  assert.is(kc.exitCode, 0);
  const file = kc.stdout.trim();
  assert.match(fs.readFileSync(file, 'utf8'), new RegExp(`current-context: ${LOCAL_CONTEXT}`));
  assert.match(fs.readFileSync(file, 'utf8'), /server: https:\/\/127\.0\.0\.1:\d+/);
});

test('a Deployment rolls out, spread over the simulated nodes', async () => {
  const ns = await scratchNamespace(kube, 'e2e-rollout');
  try {
    await kube.apply(deployment('web', 3), { namespace: ns.name });
    await kube.rolloutStatus('deployment/web', { namespace: ns.name, timeoutSeconds: 120 });
    const pods = await kube.list<PodObj>('pods', { namespace: ns.name, selector: 'app=web' });
    assert.is(pods.length, 3);
    assert.ok(pods.every((p) => p.status.phase === 'Running' && ready(p)));
    assert.ok(new Set(pods.map((p) => p.spec.nodeName)).size >= 2, 'pods landed on one node only');
  } finally {
    await ns.cleanup();
  }
});

test(`pods annotated ${NEVER_READY_ANNOTATION}=true run but never become Ready; the rollout times out`, async () => {
  const ns = await scratchNamespace(kube, 'e2e-neverready');
  try {
    await kube.apply(deployment('stuck', 2, { [NEVER_READY_ANNOTATION]: 'true' }), { namespace: ns.name });
    let failure: unknown;
    try {
      await kube.rolloutStatus('deployment/stuck', { namespace: ns.name, timeoutSeconds: 8 });
    } catch (e) {
      failure = e;
    }
    assert.ok(isKubeError(failure), 'rollout status should fail');
    const pods = await kube.list<PodObj>('pods', { namespace: ns.name, selector: 'app=stuck' });
    assert.is(pods.length, 2);
    for (const p of pods) {
      assert.is(p.status.phase, 'Running');
      assert.not.ok(ready(p), `${p.metadata.name} became ready`);
    }
    await sleep(3000);
    const later = await kube.list<PodObj>('pods', { namespace: ns.name, selector: 'app=stuck' });
    assert.ok(later.every((p) => !ready(p)));
  } finally {
    await ns.cleanup();
  }
});

test(`Jobs complete, and fail with ${FAIL_ANNOTATION}=true`, async () => {
  const ns = await scratchNamespace(kube, 'e2e-jobs');
  const job = (name: string, annotations: Record<string, string> = {}) => ({
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name },
    spec: { backoffLimit: 0, template: { metadata: { annotations }, spec: { restartPolicy: 'Never', containers: [{ name: 'job', image: 'registry.local/job:1' }] } } },
  });
  try {
    await kube.apply([job('ok'), job('bad', { [FAIL_ANNOTATION]: 'true' })], { namespace: ns.name });
    await kube.wait('job/ok', 'condition=Complete', { namespace: ns.name, timeoutSeconds: 60 });
    await kube.wait('job/bad', 'condition=Failed', { namespace: ns.name, timeoutSeconds: 60 });
  } finally {
    await ns.cleanup();
  }
});

test('helm install --wait succeeds, helm test hooks complete, a never-ready release fails', async () => {
  const helm = await tool('helm');
  const chart = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-e2e-chart-'));
  fs.mkdirSync(path.join(chart, 'templates'));
  fs.writeFileSync(path.join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: probe\nversion: 0.1.0\n');
  fs.writeFileSync(path.join(chart, 'values.yaml'), 'podAnnotations: {}\n');
  fs.writeFileSync(
    path.join(chart, 'templates', 'deployment.yaml'),
    [
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata: {name: {{ .Release.Name }}}',
      'spec:',
      '  replicas: 2',
      '  selector: {matchLabels: {app: {{ .Release.Name }}}}',
      '  template:',
      '    metadata:',
      '      labels: {app: {{ .Release.Name }}}',
      '      annotations: {{ toJson .Values.podAnnotations }}',
      '    spec: {containers: [{name: app, image: "registry.local/app:1"}]}',
    ].join('\n'),
  );
  fs.writeFileSync(
    path.join(chart, 'templates', 'test.yaml'),
    'apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-test\n  annotations: {"helm.sh/hook": test}\nspec:\n  restartPolicy: Never\n  containers: [{name: t, image: "registry.local/curl:1"}]\n',
  );
  const ns = await scratchNamespace(kube, 'e2e-helm');
  const base = ['--kubeconfig', kube.target.kubeconfig!, '--kube-context', kube.target.context!, '--namespace', ns.name];
  try {
    const install = await run(helm, ['upgrade', '--install', 'good', chart, '--wait', '--timeout', '90s', ...base]);
    assert.is(install.exitCode, 0, install.stderr);
    const t = await run(helm, ['test', 'good', '--timeout', '60s', ...base]);
    assert.is(t.exitCode, 0, t.stderr);
    assert.match(t.stdout, /Phase:\s+Succeeded/);
    const bad = await run(helm, ['upgrade', '--install', 'bad', chart, '--wait', '--timeout', '10s', '--set-string', `podAnnotations.${NEVER_READY_ANNOTATION.replace('.', '\\.')}=true`, ...base]);
    assert.is.not(bad.exitCode, 0, 'a release whose pods never become ready must fail --wait');
  } finally {
    fs.rmSync(chart, { recursive: true, force: true });
    await ns.cleanup();
  }
});

test('the real Pod Security admission rejects a privileged pod in a restricted namespace', async () => {
  const ns = await scratchNamespace(kube, 'e2e-psa', { 'pod-security.kubernetes.io/enforce': 'restricted' });
  const pod = (name: string, securityContext: object, podSecurityContext: object = {}): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns.name },
    spec: { securityContext: podSecurityContext, containers: [{ name: 'c', image: 'registry.local/app:1', securityContext }] },
  });
  try {
    let refused: unknown;
    try {
      await kube.create(pod('privileged', { privileged: true }), { namespace: ns.name });
    } catch (e) {
      refused = e;
    }
    assert.ok(isKubeError(refused, 'Forbidden'), String(refused));
    assert.match((refused as Error).message, /violates PodSecurity "restricted/);
    const ok = await kube.create(
      pod('restricted', { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } }, { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } }),
      { namespace: ns.name },
    );
    assert.is(ok.metadata.name, 'restricted');
  } finally {
    await ns.cleanup();
  }
});

test('diff shows what an apply would change and masks Secret values', async () => {
  const ns = await scratchNamespace(kube, 'e2e-diff');
  const objects = (level: string, password: string) =>
    [
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: ns.name }, data: { LOG_LEVEL: level } },
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds', namespace: ns.name }, stringData: { password } },
    ]
      .map((o) => JSON.stringify(o))
      .join('\n---\n');
  try {
    await kube.applyManifest(objects('info', 'first-pass-e2e'), { namespace: ns.name });
    assert.equal(await kube.diff(objects('info', 'first-pass-e2e'), { namespace: ns.name }), { changed: false, text: '' });
    const d = await kube.diff(objects('debug', 'second-pass-e2e'), { namespace: ns.name });
    assert.ok(d.changed);
    assert.match(d.text, /-\s+LOG_LEVEL: info/);
    assert.match(d.text, /\+\s+LOG_LEVEL: debug/);
    assert.not.ok(d.text.includes('first-pass-e2e') || d.text.includes('second-pass-e2e'), d.text);
    assert.not.ok(d.text.includes(Buffer.from('second-pass-e2e').toString('base64')), 'base64 secret leaked');
  } finally {
    await ns.cleanup();
  }
});

test.run();
