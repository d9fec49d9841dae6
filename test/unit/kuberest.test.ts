import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { kubeconfigPath, resourceByName, resourceOf, resourcePath, restConfigFor } from '../../scripts/lib/adapters/kuberest.ts';

const test = suite('direct Kubernetes API client');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-kuberest-'));

function kubeconfig(name: string, user: Record<string, unknown>, cluster: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): string {
  const file = path.join(dir, name);
  fs.writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'one',
      clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority-data': Buffer.from('CA').toString('base64'), ...cluster } }],
      contexts: [{ name: 'one', context: { cluster: 'c', user: 'u', ...extra } }],
      users: [{ name: 'u', user }],
    }),
  );
  return file;
}

test('client certificates from files are read relative to the kubeconfig; the context namespace is the default', () => {
  fs.writeFileSync(path.join(dir, 'admin.crt'), 'CERT');
  fs.writeFileSync(path.join(dir, 'admin.key'), 'KEY');
  const file = kubeconfig('certs.yaml', { 'client-certificate': 'admin.crt', 'client-key': 'admin.key' }, {}, { namespace: 'conduit' });
  const c = restConfigFor({ kubeconfig: file, context: 'one' })!;
  assert.ok(c);
  assert.is(c.server.href, 'https://127.0.0.1:6443/');
  assert.is(c.ca?.toString(), 'CA');
  assert.is(c.cert?.toString(), 'CERT');
  assert.is(c.key?.toString(), 'KEY');
  assert.is(c.namespace, 'conduit');
  assert.is(restConfigFor({ kubeconfig: file })?.namespace, 'conduit', 'current-context when none is named');
});

test('a bearer token is used; without a context namespace the default namespace is "default"', () => {
  const c = restConfigFor({ kubeconfig: kubeconfig('token.yaml', { token: 'abc' }) })!;
  assert.is(c.token, 'abc');
  assert.is(c.namespace, 'default');
});

test('what kubectl would do differently is left to kubectl: exec plugins, auth providers, proxies, unknown contexts, merged KUBECONFIG', () => {
  assert.is(restConfigFor({ kubeconfig: kubeconfig('exec.yaml', { exec: { command: 'aws' } }) }), undefined);
  assert.is(restConfigFor({ kubeconfig: kubeconfig('ap.yaml', { 'auth-provider': { name: 'oidc' } }) }), undefined);
  assert.is(restConfigFor({ kubeconfig: kubeconfig('proxy.yaml', { token: 'x' }, { 'proxy-url': 'http://proxy:3128' }) }), undefined);
  assert.is(restConfigFor({ kubeconfig: kubeconfig('ctx.yaml', { token: 'x' }), context: 'other' }), undefined);
  assert.is(restConfigFor({ kubeconfig: path.join(dir, 'missing.yaml') }), undefined);
  assert.is(kubeconfigPath(undefined, { KUBECONFIG: `/a${path.delimiter}/b` }), undefined);
  assert.is(kubeconfigPath(undefined, { KUBECONFIG: '/a' }), '/a');
  assert.is(kubeconfigPath('/explicit', { KUBECONFIG: '/a' }), '/explicit');
});

test('resource names as kubectl takes them map to REST paths; unknown kinds are not guessed', () => {
  assert.is(resourcePath(resourceByName('deploy')!, { namespace: 'ns', name: 'api' }), '/apis/apps/v1/namespaces/ns/deployments/api');
  assert.is(resourcePath(resourceByName('leases.coordination.k8s.io')!, { namespace: 'ns' }), '/apis/coordination.k8s.io/v1/namespaces/ns/leases');
  assert.is(resourcePath(resourceByName('namespace')!, { namespace: 'ignored', name: 'conduit' }), '/api/v1/namespaces/conduit');
  assert.is(resourcePath(resourceByName('configmap')!, { namespace: 'ns', name: 'a b' }), '/api/v1/namespaces/ns/configmaps/a%20b');
  assert.is(resourceByName('hpa')?.kind, 'HorizontalPodAutoscaler');
  assert.is(resourceByName('clusters.postgresql.cnpg.io'), undefined);
  assert.is(resourceOf({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease' })?.plural, 'leases');
  assert.is(resourceOf({ apiVersion: 'autoscaling/v1', kind: 'HorizontalPodAutoscaler' }), undefined, 'only the versions it knows');
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
test.run();
