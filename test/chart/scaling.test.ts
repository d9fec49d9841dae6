// HorizontalPodAutoscaler and PodDisruptionBudget shapes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { find, merge, renderObjects, S3 } from './helpers.ts';

test('HPA autoscaling/v2 with CPU, an optional Pods metric and a conservative scale-down', async () => {
  const objects = await renderObjects({
    values: merge(S3, {
      api: {
        autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 6, targetMemoryUtilizationPercentage: 80, pods: { enabled: true, metricName: 'http_server_active_requests', averageValue: '15' } },
      },
    }),
  });
  const hpa = find(objects, 'HorizontalPodAutoscaler', 'conduit-api');
  assert.is(hpa.apiVersion, 'autoscaling/v2');
  assert.equal([hpa.spec.minReplicas, hpa.spec.maxReplicas], [2, 6]);
  assert.equal(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'conduit-api' });
  assert.equal(
    hpa.spec.metrics.map((m: { type: string }) => m.type),
    ['Resource', 'Resource', 'Pods'],
  );
  assert.equal(hpa.spec.metrics[2].pods, { metric: { name: 'http_server_active_requests' }, target: { type: 'AverageValue', averageValue: '15' } });
  assert.is(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds, 600);
  assert.equal(hpa.spec.behavior.scaleDown.policies, [{ type: 'Pods', value: 1, periodSeconds: 120 }]);
  assert.equal(hpa.spec.behavior.scaleUp.policies, [{ type: 'Pods', value: 4, periodSeconds: 60 }]);
  assert.is(find(objects, 'Deployment', 'conduit-api').spec.replicas, undefined, 'the HPA owns the replica count');
});

test('PDBs never block a drain at one replica and protect capacity above it', async () => {
  const single = await renderObjects({ values: { api: { pdb: { maxUnavailable: '10%' } } } });
  assert.is(find(single, 'PodDisruptionBudget', 'conduit-api').spec.maxUnavailable, 1, 'one replica: a disruption is always allowed');
  const many = await renderObjects({ values: merge(S3, { api: { replicaCount: 4, pdb: { maxUnavailable: '25%' } } }) });
  const pdb = find(many, 'PodDisruptionBudget', 'conduit-api');
  assert.is(pdb.spec.maxUnavailable, '25%');
  assert.is(pdb.spec.minAvailable, undefined);
  assert.is(pdb.spec.unhealthyPodEvictionPolicy, 'AlwaysAllow');
  assert.equal(pdb.spec.selector.matchLabels['app.kubernetes.io/component'], 'api');
});

test.run();
