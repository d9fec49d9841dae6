import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  createClusterArgs,
  crdNamesIn,
  FAIL_ANNOTATION,
  kwokctlConfiguration,
  kwokctlEnv,
  LOCAL_BINARIES,
  NEVER_READY_ANNOTATION,
  nodeObjects,
  simulationStages,
  smokeObjects,
  type LocalBinaries,
} from '../../scripts/lib/engines/cluster.ts';
import { kubeTargetFor, LOCAL_CONTEXT, localClusterPaths } from '../../scripts/lib/domain/target.ts';

const test = suite('localcluster');
const bins = Object.fromEntries(LOCAL_BINARIES.map((b) => [b, `/opt/bin/${b}`])) as LocalBinaries;
const paths = localClusterPaths('/cache');

test('the context is the one kwokctl gives cluster "conduit"', () => {
  assert.is(LOCAL_CONTEXT, 'kwok-conduit');
  assert.is(paths.clusterDir, '/cache/clusters/conduit');
  assert.is(paths.kubeconfig, '/cache/clusters/conduit/kubeconfig.yaml');
  assert.equal(kubeTargetFor('kwok-conduit', paths), { context: 'kwok-conduit', kubeconfig: '/cache/clusters/conduit/kubeconfig.yaml' });
  assert.equal(kubeTargetFor('prod-eu', paths), { context: 'prod-eu' });
});

test('kwokctl gets every binary (nothing to download), loopback only, real admission and RBAC', () => {
  const conf = kwokctlConfiguration(bins, paths) as { options: Record<string, unknown>; componentsPatches: unknown[] };
  assert.is(conf.options.runtime, 'binary');
  assert.is(conf.options.bindAddress, '127.0.0.1');
  assert.is(conf.options.kubeAdmission, true);
  assert.is(conf.options.kubeAuthorization, true);
  for (const key of ['etcdBinary', 'kubeApiserverBinary', 'kubeControllerManagerBinary', 'kubeSchedulerBinary', 'kwokControllerBinary', 'kubectlBinary']) {
    assert.match(String(conf.options[key]), /^\/opt\/bin\//, key);
  }
  const args = createClusterArgs(bins);
  for (const flag of ['--kube-apiserver-binary', '--kube-controller-manager-binary', '--kube-scheduler-binary', '--kwok-controller-binary', '--etcd-binary']) {
    assert.match(args[args.indexOf(flag) + 1], /^\/opt\/bin\//, flag);
  }
  assert.is(args[args.indexOf('--kubeconfig') + 1], '', 'the user kubeconfig is left alone');
  const env = kwokctlEnv(bins, paths);
  assert.is(env.KWOK_WORKDIR, '/cache');
  assert.is(env.KWOK_KUBECTL_BINARY, '/opt/bin/kubectl');
});

test('3 schedulable nodes across 2 zones with room for the chart', () => {
  const nodes = nodeObjects();
  assert.is(nodes.length, 3);
  assert.is(new Set(nodes.map((n) => n.metadata.labels?.['topology.kubernetes.io/zone'])).size, 2);
  for (const n of nodes) {
    assert.not.ok('taints' in ((n as { spec?: object }).spec ?? {}));
    assert.is((n.status as { allocatable: Record<string, string> }).allocatable.cpu, '8');
  }
});

type Expr = { key: string; operator: string; values?: string[] };
const exprs = (name: string): Expr[] => simulationStages().find((s) => s.metadata.name === name)!.spec.selector.matchExpressions;
const has = (list: Expr[], key: string, operator: string, value?: string) => list.some((e) => e.key === key && e.operator === operator && (value === undefined || e.values?.includes(value)));

test('never-ready pods run unready; fail and complete stages exclude each other', () => {
  const stages = simulationStages();
  for (const s of stages) assert.ok(s.spec.weight > 0, `${s.metadata.name} must outweigh the default stages`);
  const nr = exprs('conduit-pod-never-ready');
  assert.ok(has(nr, `.metadata.annotations["${NEVER_READY_ANNOTATION}"]`, 'In', 'true'));
  assert.ok(has(nr, '.status.phase', 'In', 'Pending'));
  const template = stages.find((s) => s.metadata.name === 'conduit-pod-never-ready')!.spec.next.statusTemplate;
  assert.match(template, /phase: Running/);
  assert.match(template, /type: Ready\n {2}status: "False"/);
  assert.ok(has(exprs('conduit-pod-fail'), `.metadata.annotations["${FAIL_ANNOTATION}"]`, 'In', 'true'));
  const complete = exprs('conduit-pod-complete-standalone');
  assert.ok(has(complete, `.metadata.annotations["${FAIL_ANNOTATION}"]`, 'NotIn', 'true'));
  assert.ok(has(complete, '.metadata.ownerReferences', 'DoesNotExist'));
  assert.ok(has(complete, '.spec.restartPolicy', 'In', 'Never'));
});

test('the smoke Deployment satisfies Pod Security "restricted"', () => {
  const [ns, deploy] = smokeObjects();
  assert.is(ns.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
  const pod = (deploy.spec as { template: { spec: { securityContext: Record<string, unknown>; containers: { securityContext: Record<string, unknown> }[] } } }).template.spec;
  assert.is(pod.securityContext.runAsNonRoot, true);
  assert.is(pod.containers[0].securityContext.allowPrivilegeEscalation, false);
});

test('CRD names are read from manifests, other kinds skipped', () => {
  const manifest = [
    'apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  annotations:\n    a: b\n  name: clusters.postgresql.cnpg.io\nspec: {}\n',
    'apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata:\n  name: "safe-upgrades.gateway.networking.k8s.io"\n',
    'kind: CustomResourceDefinition\nmetadata:\n  name: "gateways.gateway.networking.k8s.io"\n',
  ].join('---\n');
  assert.equal(crdNamesIn(manifest), ['clusters.postgresql.cnpg.io', 'gateways.gateway.networking.k8s.io']);
});

test.run();
