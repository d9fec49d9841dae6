import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { classifyKubectlError, Kube, toKubectlInput } from '../../scripts/lib/adapters/kube.ts';

const test = suite('kube');

test('server errors are classified by their reason', () => {
  const cases: [string, string][] = [
    ['Error from server (AlreadyExists): error when creating "STDIN": leases.coordination.k8s.io "conduit-deploy-lock" already exists', 'AlreadyExists'],
    [
      'Error from server (Conflict): error when replacing "STDIN": Operation cannot be fulfilled on leases.coordination.k8s.io "x": the object has been modified; please apply your changes to the latest version and try again',
      'Conflict',
    ],
    ['Error from server (NotFound): configmaps "conduit-audit" not found', 'NotFound'],
    ['Error from server (Forbidden): error when creating "STDIN": pods "priv" is forbidden: violates PodSecurity "restricted:latest"', 'Forbidden'],
    ['The Deployment "x" is invalid: spec.replicas: Invalid value: -1', 'Invalid'],
    ['The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?', 'Unreachable'],
    ['error: context "nope" does not exist', 'Unreachable'],
    ['error: timed out waiting for the condition', 'Other'],
  ];
  for (const [stderr, reason] of cases) assert.is(classifyKubectlError(stderr), reason, stderr);
  assert.is(classifyKubectlError('anything', true), 'Timeout');
});

test('every call is pinned to the kubeconfig and context, namespace when given', () => {
  const k = new Kube('/bin/kubectl', { kubeconfig: '/tmp/kc.yaml', context: 'kwok-conduit' });
  assert.equal(k.argv(['get', 'pods'], 'conduit'), ['--kubeconfig', '/tmp/kc.yaml', '--context', 'kwok-conduit', '--namespace', 'conduit', 'get', 'pods']);
  assert.equal(new Kube('/bin/kubectl').argv(['version']), ['version']);
});

test('objects go to stdin as one object or a List', () => {
  const a = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a' } };
  const b = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'b' } };
  assert.equal(JSON.parse(toKubectlInput(a)), a);
  assert.equal(JSON.parse(toKubectlInput([a])), a);
  assert.equal(JSON.parse(toKubectlInput([a, b])), { apiVersion: 'v1', kind: 'List', items: [a, b] });
});

test.run();
