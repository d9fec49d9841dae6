// The workload side of restore --cluster as a plan (pure): counts shown, HPAs refused or paused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UserError } from '../../scripts/lib/core/errors.ts';
import { describeClusterRestore, planClusterRestore, type WorkloadState } from '../../scripts/lib/engines/backup-cluster.ts';
import type { RunbookTarget } from '../../scripts/lib/engines/runbook.ts';

const target: RunbookTarget = { cluster: 'prod-eu', context: 'prod-eu', namespace: 'conduit', release: 'conduit', protected: true };
const fixed: WorkloadState = {
  resumed: [],
  deployments: [
    { component: 'api', name: 'conduit-api', replicas: 3 },
    { component: 'admin', name: 'conduit-admin', replicas: 1 },
  ],
  hpas: [],
};
const hpa = { component: 'api' as const, name: 'conduit-api', min: 2, max: 6, saved: { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'conduit-api' } } };

test('the plan shows the counts it scales from and restores, the lock first', () => {
  const p = planClusterRestore(target, fixed, { pauseAutoscaling: false });
  assert.equal(p.before, [
    'save the replica counts (and HPA copies) in the annotation conduit.dev/restore-saved of each Deployment, so an interrupted restore can be resumed',
    'scale deployment/conduit-api and deployment/conduit-admin to 0 (now: api 3, admin 1) and wait until their pods are gone',
  ]);
  assert.is(p.after[0], 'also if the restore fails: scale back to the recorded counts (api 3, admin 1)');
  assert.equal(p.lock, { namespace: 'conduit', name: 'conduit-deploy-lock' });
  const lines = describeClusterRestore(p, ['1. restore']);
  assert.match(lines[0], /on prod-eu \(context prod-eu, namespace conduit, release conduit\) \[protected\]/);
  assert.match(lines[1], /^hold the deploy lock conduit-deploy-lock/);
  assert.is(lines[2], '1. restore');
  assert.match(lines.at(-1)!, /audit trail/);
});

test('an HPA on a writer is refused without pauseAutoscaling, and paused with it', () => {
  const w: WorkloadState = { ...fixed, hpas: [hpa] };
  const e = (() => {
    try {
      planClusterRestore(target, w, { pauseAutoscaling: false });
    } catch (x) {
      return x as UserError;
    }
  })();
  assert.instance(e, UserError);
  assert.match(e!.message, /HorizontalPodAutoscaler\/conduit-api \(min 2, max 6\) would scale api back up/);
  assert.match(e!.hint ?? '', /--pause-autoscaling/);
  const p = planClusterRestore(target, w, { pauseAutoscaling: true });
  assert.match(p.before[1], /^save and delete HorizontalPodAutoscaler\/conduit-api \(min 2, max 6\)/);
  assert.ok(p.after.some((s) => s.includes('create HorizontalPodAutoscaler/conduit-api again')));
});

test('an HPA an interrupted restore already deleted needs no --pause-autoscaling and is created again afterwards', () => {
  const w: WorkloadState = { ...fixed, hpas: [{ ...hpa, deleted: true }], resumed: ['deployment/conduit-api was left at 0 by an interrupted restore: it goes back to its saved 3'] };
  const p = planClusterRestore(target, w, { pauseAutoscaling: false });
  assert.match(p.before[0], /^resume: deployment\/conduit-api was left at 0/);
  assert.not.ok(p.before.some((s) => s.startsWith('save and delete')));
  assert.ok(p.after.some((s) => s.includes('create HorizontalPodAutoscaler/conduit-api again')));
});

test.run();
