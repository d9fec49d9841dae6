import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parse as parseYaml } from 'yaml';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describePlan, diffFileObject, planDeploy, UnreadyPodWatch, unreadyPodLine, valuesDigest, type DeployRequest } from '../../scripts/lib/engines/deploy.ts';
import { durationSeconds } from '../../scripts/lib/core/duration.ts';
import { LEASE_SECONDS } from '../../scripts/lib/domain/lease.ts';
import type { Kube } from '../../scripts/lib/adapters/kube.ts';

const test = suite('deploy plan');

const req = (helmMajor: 3 | 4, overrides: Record<string, unknown> = {}): DeployRequest => ({
  target: { cluster: 'prod-eu', context: 'prod-eu', namespace: 'conduit', release: 'conduit', protected: true },
  chartDir: '/repo/chart',
  valuesFiles: ['/repo/values/environments/production.yaml', '/repo/values/clusters/prod-eu.yaml'],
  overrides,
  helmMajor,
  timeout: '10m',
  actor: 'alice@laptop pid 1',
});

test('kubectl diff file names become Kind/name, also for groups with dots and the core group', () => {
  assert.is(diffFileObject('apps.v1.Deployment.conduit.conduit-api'), 'Deployment/conduit-api');
  assert.is(diffFileObject('networking.k8s.io.v1.NetworkPolicy.conduit.conduit-redis'), 'NetworkPolicy/conduit-redis');
  assert.is(diffFileObject('v1.Secret.conduit.conduit-master-key'), 'Secret/conduit-master-key');
  assert.is(diffFileObject('autoscaling.v2.HorizontalPodAutoscaler.conduit.conduit-api'), 'HorizontalPodAutoscaler/conduit-api');
  assert.is(diffFileObject('monitoring.coreos.com.v1.ServiceMonitor.conduit.conduit.api'), 'ServiceMonitor/conduit.api');
});

test('overrides reach helm as JSON, so YAML 1.1 words stay strings', () => {
  const p = planDeploy(req(4, { api: { podAnnotations: { a: 'y', b: 'on', c: 'no' } } }), '/bin/helm');
  const read = parseYaml(p.overridesYaml, { version: '1.1' }) as { api: { podAnnotations: Record<string, unknown> } };
  assert.equal(read.api.podAnnotations, { a: 'y', b: 'on', c: 'no' });
});

test('the values digest follows the files and the overrides, and holds none of their values', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'digest-'));
  try {
    const a = path.join(dir, 'a.yaml');
    const b = path.join(dir, 'b.yaml');
    fs.writeFileSync(a, 'api:\n  replicaCount: 2\n');
    fs.writeFileSync(b, 'postgresql:\n  password: hunter2\n');
    const plan = (files: string[], overrides: Record<string, unknown> = {}) => ({ valuesFiles: files, overridesYaml: JSON.stringify(overrides) });
    const d = valuesDigest(plan([a, b]));
    assert.match(d, /^sha256:[0-9a-f]{16}$/);
    assert.is(valuesDigest(plan([a, b])), d);
    assert.is.not(valuesDigest(plan([b, a])), d, 'order matters, as for helm');
    assert.is.not(valuesDigest(plan([a, b], { api: { image: { tag: '1.0.1' } } })), d);
    fs.writeFileSync(b, 'postgresql:\n  password: hunter3\n');
    assert.is.not(valuesDigest(plan([a, b])), d);
    assert.not.match(d, /hunter/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('durations in Go syntax', () => {
  assert.is(durationSeconds('90s'), 90);
  assert.is(durationSeconds('10m'), 600);
  assert.is(durationSeconds('1h30m'), 5400);
  assert.throws(() => durationSeconds('10 minutes'), /invalid duration/);
  assert.throws(() => durationSeconds(''), /invalid duration/);
});

test('helm 4 rolls back with --rollback-on-failure, helm 3 with --atomic; values files in order, then stdin', () => {
  const p4 = planDeploy(req(4), '/bin/helm');
  assert.equal(p4.upgradeArgs.slice(0, 4), ['upgrade', '--install', 'conduit', '/repo/chart']);
  assert.ok(p4.upgradeArgs.includes('--rollback-on-failure'));
  assert.ok(p4.upgradeArgs.includes('--force-conflicts'), 'helm 4 must take back fields patched by runbook actions');
  assert.ok(p4.upgradeArgs.includes('--server-side=true'), 'a release last applied client-side would refuse --force-conflicts');
  assert.not.ok(p4.upgradeArgs.includes('--disable-openapi-validation'), "helm's schema check stays unless the caller validated strictly");
  assert.ok(planDeploy({ ...req(4), strictlyValidated: true }, '/bin/helm').upgradeArgs.includes('--disable-openapi-validation'));
  assert.is(p4.diffMode, 'release');
  assert.is(planDeploy({ ...req(4), diff: 'live' }, '/bin/helm').diffMode, 'live');
  assert.not.ok(p4.upgradeArgs.includes('--atomic'));
  const values = p4.upgradeArgs.flatMap((a, i) => (a === '--values' ? [p4.upgradeArgs[i + 1]] : []));
  assert.equal(values, ['/repo/values/environments/production.yaml', '/repo/values/clusters/prod-eu.yaml', '-']);
  assert.equal(p4.upgradeArgs.slice(p4.upgradeArgs.indexOf('--kube-context'), p4.upgradeArgs.indexOf('--kube-context') + 4), ['--kube-context', 'prod-eu', '--namespace', 'conduit']);
  const p3 = planDeploy(req(3), '/bin/helm3');
  assert.ok(p3.upgradeArgs.includes('--atomic') && p3.upgradeArgs.includes('--wait'));
  assert.not.ok(p3.upgradeArgs.includes('--rollback-on-failure'));
  assert.ok(p4.dryRunArgs.includes('--dry-run=server'));
  // The lock lasts LEASE_SECONDS and is renewed while the deploy lives, whatever helm's timeout.
  assert.is(p4.lock.durationSeconds, LEASE_SECONDS);
  assert.is(p4.lock.holder, 'alice@laptop pid 1');
});

test('override values never reach argv, and the printed plan masks secret-looking fields', () => {
  const p = planDeploy(req(4, { masterKey: { value: 'mk-unit-secret-1' }, api: { image: { tag: '1.2.3' } } }), '/bin/helm');
  assert.not.ok([...p.upgradeArgs, ...p.dryRunArgs].some((a) => a.includes('mk-unit-secret-1')));
  assert.match(p.overridesYaml, /mk-unit-secret-1/);
  const shown = describePlan(p);
  assert.not.ok(shown.includes('mk-unit-secret-1'), shown);
  assert.match(shown, /tag: 1\.2\.3/);
  assert.match(shown, /protected/);
});

test('the plan says whether the images are asked for at their registries (--skip-image-check)', () => {
  const checked = planDeploy(req(4), '/bin/helm');
  assert.is(checked.imageCheck, 'registry');
  assert.match(describePlan(checked), /1\. preflight: every workload image asked for at its registry .*a missing tag or digest stops the deploy/);
  const skipped = planDeploy({ ...req(4), checkImages: false }, '/bin/helm');
  assert.is(skipped.imageCheck, 'skipped');
  assert.match(describePlan(skipped), /image check skipped: --skip-image-check/);
});

const pod = (name: string, ready: boolean, phase = 'Running') => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name },
  status: {
    phase,
    conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', ...(ready ? {} : { reason: 'ContainersNotReady', message: 'containers with unready status: [api]' }) }],
  },
});

test('an unready pod is one line naming its phase and the failing condition; a ready pod has none', () => {
  assert.is(unreadyPodLine(pod('conduit-api-1', true)), undefined);
  assert.is(unreadyPodLine(pod('conduit-api-2', false)), 'pod/conduit-api-2 (Running): Ready=False (ContainersNotReady: containers with unready status: [api])');
});

test('the pod watch keeps the last state of pods that are gone and drops pods that became ready', async () => {
  // Stand-in for the API server: each list call returns the next snapshot (the last one repeats).
  const snapshots = [
    [pod('conduit-api-old', false, 'Pending'), pod('conduit-api-new', false, 'Pending')],
    [pod('conduit-api-old', true), pod('conduit-api-new', false)],
    [pod('conduit-api-old', true)],
  ];
  let calls = 0;
  const kube = { list: async () => snapshots[Math.min(calls++, snapshots.length - 1)] } as unknown as Kube;
  const watch = new UnreadyPodWatch(kube, 'conduit', 'conduit', 5);
  watch.start();
  // Three samples at least (a loaded machine may take longer than three intervals).
  for (let i = 0; i < 500 && calls < 3; i++) await new Promise((r) => setTimeout(r, 10));
  watch.stop();
  const lines = await watch.settled();
  assert.ok(calls >= 3, `sampled ${calls} times`);
  assert.equal(lines, ['pod/conduit-api-new (Running): Ready=False (ContainersNotReady: containers with unready status: [api])']);
});

test.run();
