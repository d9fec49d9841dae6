// The runbook actions as plans: arguments, what each plan runs and patches, protected-cluster
// confirmation and the JSON shape of a plan. No cluster needed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UserError } from '../../scripts/lib/core/errors.ts';
import { Helm } from '../../scripts/lib/adapters/helm.ts';
import {
  ACTIONS,
  confirmChange,
  describeRunbookPlan,
  formatEndpoints,
  formatStatus,
  pendingRelease,
  generateMasterKey,
  MASTER_KEY_ANNOTATION,
  parseRequest,
  planAction,
  planJson,
  RESTART_ANNOTATION,
  type RunbookPlan,
  type RunbookTarget,
} from '../../scripts/lib/engines/runbook.ts';
import { resourceName } from '../../scripts/lib/domain/target.ts';

const target: RunbookTarget = { cluster: 'staging', context: 'staging', namespace: 'conduit', release: 'conduit', protected: false };
const prod: RunbookTarget = { ...target, cluster: 'prod-eu', context: 'prod-eu', protected: true };

function usage(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, UserError);
    assert.is((e as UserError).exitCode, 2, (e as Error).message);
    assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable('expected a usage error');
}

function refusal(fn: () => unknown): UserError {
  try {
    fn();
  } catch (e) {
    assert.instance(e, UserError);
    return e as UserError;
  }
  throw new Error('expected a refusal');
}

test('argument errors are usage errors (exit 2) that name the flag', () => {
  usage(() => parseRequest(undefined, {}), /action is required/);
  usage(() => parseRequest('reboot', {}), /unknown action "reboot"/);
  usage(() => parseRequest('restart', {}), /--component is required/);
  usage(() => parseRequest('restart', { component: 'db' }), /unknown component "db"/);
  usage(() => parseRequest('scale', { component: 'all', replicas: '2' }), /unknown component "all"/);
  usage(() => parseRequest('scale', { component: 'api' }), /needs --replicas/);
  usage(() => parseRequest('scale', { component: 'api', replicas: '-1' }), /--replicas must be a whole number/);
  usage(() => parseRequest('scale', { component: 'api', 'hpa-min': '2' }), /go together/);
  usage(() => parseRequest('scale', { component: 'api', 'hpa-min': '5', 'hpa-max': '3' }), /above --hpa-max/);
  usage(() => parseRequest('scale', { component: 'api', replicas: '2', 'hpa-min': '1', 'hpa-max': '3' }), /either --replicas or/);
  usage(() => parseRequest('status', { component: 'api' }), /status does not take --component/);
  usage(() => parseRequest('rollback', { to: 'last' }), /--to must be a whole number/);
  usage(() => parseRequest('rollback', { timeout: 'soon' }), /invalid duration/);
  usage(() => parseRequest('logs', { since: '5 minutes' }), /invalid duration/);
});

test('requests are typed with defaults', () => {
  assert.equal(parseRequest('restart', { component: 'all' }), { action: 'restart', components: ['api', 'admin', 'webui'], timeout: '5m' });
  assert.equal(parseRequest('logs', { since: '15m' }), { action: 'logs', components: ['api', 'admin', 'webui'], sinceSeconds: 900, tail: 200 });
  assert.equal(parseRequest('history', {}), { action: 'history', max: 10 });
  assert.equal(parseRequest('rollback', { to: '4', timeout: '90s' }), { action: 'rollback', toRevision: 4, timeout: '90s' });
  assert.equal(parseRequest('scale', { component: 'admin', 'hpa-min': '2', 'hpa-max': '4' }), { action: 'scale', component: 'admin', replicas: undefined, hpaMin: 2, hpaMax: 4, timeout: '5m' });
});

test('names follow the chart: the release name contains "conduit" or gets it appended', () => {
  assert.is(resourceName('conduit', 'api'), 'conduit-api');
  assert.is(resourceName('gw', 'api'), 'gw-conduit-api');
  assert.is(resourceName('conduit', 'master-key'), 'conduit-master-key');
});

test('read-only actions plan no change and take no lock', () => {
  for (const action of ['status', 'history', 'logs', 'diagnose'] as const) {
    const plan = planAction(target, parseRequest(action, {}));
    assert.is(plan.mutates, false, action);
    assert.is(plan.lock, undefined);
    assert.ok(
      plan.steps.every((s) => !s.mutates),
      action,
    );
  }
  const logs = planAction(target, parseRequest('logs', { component: 'api', tail: '50', since: '10m' }));
  assert.equal(
    logs.steps.map((s) => s.argv),
    [['logs', 'POD', '--tail=50', '--all-containers=true', '--since=600s']],
  );
  assert.match(logs.steps[0].title, /app\.kubernetes\.io\/instance=conduit,app\.kubernetes\.io\/component=api/);
});

test('restart patches the pod-template annotation of each component and waits for each rollout', () => {
  const plan = planAction(target, parseRequest('restart', { component: 'all' }), { components: ['api', 'admin'] });
  assert.ok(plan.mutates);
  assert.equal(plan.lock, { namespace: 'conduit', name: 'conduit-deploy-lock' });
  const patches = plan.steps.filter((s) => s.patch).map((s) => s.patch!);
  assert.equal(
    patches.map((p) => `${p.kind}/${p.name}`),
    ['deployment/conduit-api', 'deployment/conduit-admin'],
    'webui is not deployed',
  );
  assert.ok(Object.keys((patches[0].body as any).spec.template.metadata.annotations).includes(RESTART_ANNOTATION));
  assert.equal(
    plan.steps.filter((s) => s.argv?.[0] === 'rollout').map((s) => s.argv),
    [
      ['rollout', 'status', 'deployment/conduit-api', '--timeout=300s'],
      ['rollout', 'status', 'deployment/conduit-admin', '--timeout=300s'],
    ],
  );
});

test('scale: replicas without an HPA, bounds with one, a replica count under an HPA refused', () => {
  const fixed = planAction(target, parseRequest('scale', { component: 'api', replicas: '4' }), { hpas: {} });
  assert.equal(fixed.steps.find((s) => s.patch)!.patch, { kind: 'deployment', name: 'conduit-api', body: { spec: { replicas: 4 } } });
  assert.ok(fixed.notes.some((n) => /later deploy/.test(n)));

  const hpas = { api: { name: 'conduit-api', min: 2, max: 6 } };
  const bounds = planAction(target, parseRequest('scale', { component: 'api', 'hpa-min': '4', 'hpa-max': '10' }), { hpas });
  assert.equal(bounds.steps.find((s) => s.patch)!.patch, { kind: 'hpa', name: 'conduit-api', body: { spec: { minReplicas: 4, maxReplicas: 10 } } });
  assert.not.ok(
    bounds.steps.some((s) => s.argv?.[0] === 'rollout'),
    'the HPA moves replicas on its own schedule',
  );

  const e = refusal(() => planAction(target, parseRequest('scale', { component: 'api', replicas: '8' }), { hpas }));
  assert.is(e.exitCode, 1);
  assert.match(e.message, /HorizontalPodAutoscaler\/conduit-api \(min 2, max 6\)/);
  assert.match(e.hint!, /api\.autoscaling\.minReplicas/);
  assert.match(e.hint!, /--hpa-min N --hpa-max M/);
  assert.match(refusal(() => planAction(target, parseRequest('scale', { component: 'webui', 'hpa-min': '1', 'hpa-max': '2' }), { hpas })).message, /no HorizontalPodAutoscaler/);
});

test('rollback runs helm rollback with wait and timeout under the lock, then checks every rollout', () => {
  const plan = planAction(target, parseRequest('rollback', { to: '7', timeout: '10m' }), { components: ['api', 'admin', 'webui'] }, new Helm('helm', 4));
  const helm = plan.steps.find((s) => s.tool === 'helm')!;
  assert.equal(helm.argv, ['rollback', 'conduit', '7', '--timeout', '10m', '--wait=watcher', '--force-conflicts', '--history-max', '10']);
  assert.is(plan.steps.filter((s) => s.argv?.[0] === 'rollout').length, 3);
  const h3 = planAction(target, parseRequest('rollback', {}), {}, new Helm('helm', 3)).steps.find((s) => s.tool === 'helm')!;
  assert.equal(h3.argv, ['rollback', 'conduit', '--timeout', '5m', '--wait', '--history-max', '10']);
  // A client scoped to the target plans the same argv: the target flags are added when it runs (and shown first).
  const scoped = planAction(target, parseRequest('rollback', {}), {}, new Helm('/opt/helm', 3, { context: 'staging', namespace: 'conduit' }));
  assert.equal(scoped.steps.find((s) => s.tool === 'helm')!.argv, h3.argv);
  assert.match(describeRunbookPlan(scoped), /helm --kube-context staging --namespace conduit rollback conduit --timeout 5m --wait --history-max 10/);
});

test('rotate-master-key: refuses a Secret the chart does not own; otherwise replaces it and rolls every reader', () => {
  const e = refusal(() => planAction(target, parseRequest('rotate-master-key', {}), { masterKeyExistingSecret: 'vault-conduit', masterKeySecretKey: 'key' }));
  assert.match(e.message, /"vault-conduit".*does not own/);
  assert.match(e.hint!, /restart --cluster staging --component all/);
  const plan = planAction(target, parseRequest('rotate-master-key', {}), { masterKeyExistingSecret: '', components: ['api', 'admin', 'webui'] });
  const write = plan.steps.find((s) => s.argv?.[0] === 'replace')!;
  assert.equal(write.argv, ['replace', '-f', '-'], 'the key travels on stdin');
  assert.match(write.title, /Secret\/conduit-master-key/);
  const rolls = plan.steps.filter((s) => s.patch);
  assert.equal(
    rolls.map((s) => s.patch!.name),
    ['conduit-api', 'conduit-admin', 'conduit-webui'],
  );
  assert.ok(Object.keys((rolls[0].patch!.body as any).spec.template.metadata.annotations).includes(MASTER_KEY_ANNOTATION));
});

test('generated master keys are 48 letters and digits, different every time', () => {
  const a = generateMasterKey();
  assert.match(a, /^[A-Za-z0-9]{48}$/);
  assert.is.not(generateMasterKey(), a);
});

test('protected clusters need --yes without a terminal; dry runs and reads never ask', async () => {
  const change = planAction(prod, parseRequest('restart', { component: 'api' }));
  const ask = async () => true;
  const e = await confirmChange(change, { yes: false, dryRun: false, interactive: false, ask }).then(
    () => undefined,
    (x: UserError) => x,
  );
  assert.instance(e, UserError);
  assert.match(e!.message, /protected cluster prod-eu needs confirmation/);
  assert.match(e!.hint!, /--yes/);
  await confirmChange(change, { yes: true, dryRun: false, interactive: false, ask });
  await confirmChange(change, { yes: false, dryRun: true, interactive: false, ask });
  await confirmChange(planAction(prod, parseRequest('status', {})), { yes: false, dryRun: false, interactive: false, ask });
  await confirmChange(change, { yes: false, dryRun: false, interactive: true, ask });
  const no = await confirmChange(change, { yes: false, dryRun: false, interactive: true, ask: async () => false }).then(
    () => undefined,
    (x: UserError) => x,
  );
  assert.match(no!.message, /not confirmed; nothing was changed/);
  await confirmChange(planAction(target, parseRequest('restart', { component: 'api' })), { yes: false, dryRun: false, interactive: false, ask });
});

test('plans print as commands with the target flags and serialise to a stable JSON shape', () => {
  const plan: RunbookPlan = planAction(target, parseRequest('scale', { component: 'api', replicas: '3' }), { hpas: {} });
  const text = describeRunbookPlan(plan);
  assert.match(text, /kubectl --context staging --namespace conduit patch deployment conduit-api --type merge --patch '\{"spec":\{"replicas":3\}\}'/);
  assert.match(text, /\[change\]/);
  const j = planJson(plan);
  assert.equal(Object.keys(j), ['action', 'target', 'mutates', 'lock', 'steps', 'notes']);
  assert.equal(j.target, { cluster: 'staging', context: 'staging', namespace: 'conduit', release: 'conduit', protected: false });
  assert.equal(JSON.parse(JSON.stringify(j)), j);
  assert.equal([...ACTIONS].sort(), ['diagnose', 'history', 'logs', 'restart', 'rollback', 'rotate-master-key', 'scale', 'status', 'unlock']);
});

test('unlock: a change (confirmation on protected clusters) that takes no flags and holds no lock of its own', () => {
  const plan = planAction({ ...target, protected: true }, parseRequest('unlock', {}));
  assert.is(plan.mutates, true);
  assert.is(plan.lock, undefined);
  assert.ok(plan.steps.some((s) => /refuse when its holder is a live process on this host/.test(s.title)));
  assert.ok(plan.steps.some((s) => s.mutates && /guarded by the version read above/.test(s.title)));
  assert.throws(() => parseRequest('unlock', { timeout: '5m' }), /unlock does not take --timeout/);
});

test('status names an interrupted release and the command that repairs it; a live holder is "in progress"', () => {
  const rel = { version: 6, info: { status: 'pending-upgrade' } };
  const gone = pendingRelease(target, rel, { holder: 'ci@runner pid 7', holderGone: true, expired: false, free: true, transitions: 1 });
  assert.equal(gone.interrupted?.revision, 6);
  assert.match(gone.interrupted!.fix, /^npx zx scripts\/deploy.ts --cluster staging \(recovers it under the deploy lock/);
  const live = pendingRelease(target, rel, { holder: 'ci@runner pid 8', reason: 'deploy conduit to staging', expired: false, free: false, transitions: 1 });
  assert.equal(live.inProgress, { revision: 6, status: 'pending-upgrade', by: 'ci@runner pid 8 (deploy conduit to staging)' });
  assert.equal(pendingRelease(target, { version: 6, info: { status: 'deployed' } }, { expired: false, free: true, transitions: 0 }), {});
  const text = formatStatus({ release: { name: 'conduit', revision: 6, status: 'pending-upgrade' }, components: [], warnings: [], lock: { held: false }, ...gone });
  assert.match(text, /INTERRUPTED: revision 6 was left pending-upgrade by a deploy that is gone/);
  assert.match(text, /fix: npx zx scripts\/deploy.ts --cluster staging/);
});

test('status and endpoint reports read as an operator needs them', () => {
  const text = formatStatus({
    release: { name: 'conduit', revision: 7, status: 'deployed', chart: '0.3.1', appVersion: '1.4.0' },
    components: [
      {
        component: 'api',
        deployment: 'conduit-api',
        images: ['ghcr.io/knnlabs/conduit:1.4.0'],
        replicas: 3,
        ready: 2,
        updated: 3,
        pods: [{ name: 'conduit-api-1', phase: 'Running', ready: false, restarts: 4, reason: 'CrashLoopBackOff' }],
        hpa: { name: 'conduit-api', current: 3, desired: 6, min: 2, max: 6 },
      },
    ],
    warnings: [{ type: 'Warning', reason: 'BackOff', message: 'Back-off restarting failed container', object: 'Pod/conduit-api-1', count: 12, lastSeen: '2026-11-29T10:00:00Z' }],
    lock: { held: true, holder: 'ci@runner pid 7', reason: 'deploy conduit to prod-eu', expiresAt: '2026-11-29T10:10:00Z' },
  });
  assert.match(text, /revision 7 \(deployed\), chart 0\.3\.1, app 1\.4\.0/);
  assert.match(text, /api: 2\/3 ready.*HPA conduit-api current 3 desired 6 \(min 2, max 6\)/);
  assert.match(text, /conduit-api-1 {2}Running NOT ready {2}restarts 4 {2}CrashLoopBackOff/);
  assert.match(text, /BackOff: Back-off restarting failed container \(x12\)/);
  assert.match(text, /deploy lock held by ci@runner pid 7 \(deploy conduit to prod-eu\)/);
  assert.match(
    formatEndpoints([
      { service: 'conduit-redis', ready: 0, total: 1 },
      { service: 'conduit-api', ready: 2, total: 2 },
    ]),
    /conduit-redis +0\/1 +<- no ready endpoint\n.*conduit-api +2\/2\n/,
  );
});

test('rollback without --to goes to the last revision that was deployed, never to a failed one', () => {
  const plan = planAction(target, parseRequest('rollback', {}), { lastGoodRevision: 4, components: ['api'] });
  const helmStep = plan.steps.find((s) => s.tool === 'helm')!;
  assert.equal(helmStep.argv!.slice(0, 3), ['rollback', 'conduit', '4']);
  assert.match(helmStep.title, /roll back to revision 4, the last one that was deployed before the current/);
  const explicit = planAction(target, parseRequest('rollback', { to: '2' }), { lastGoodRevision: 4 });
  assert.equal(explicit.steps.find((s) => s.tool === 'helm')!.argv!.slice(0, 3), ['rollback', 'conduit', '2']);
});

test.run();
