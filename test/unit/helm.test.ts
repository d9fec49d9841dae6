import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isUserError } from '../../scripts/lib/core/errors.ts';
import { Helm, kubeVersionArg } from '../../scripts/lib/adapters/helm.ts';
import { helmClient } from '../../scripts/lib/domain/target.ts';
import { CHART_DIR } from '../../scripts/lib/core/paths.ts';

const test = suite('helm client');

const scope = { context: 'prod-eu', namespace: 'conduit' };
const h4 = new Helm('/bin/helm', 4, scope);
const h3 = new Helm('/bin/helm3', 3, scope);
const install = { release: 'conduit', chart: '/repo/chart', valuesFiles: ['env.yaml', 'cluster.yaml'], stdinValues: true };

test('the scope goes after the positional arguments; none without a scope; a kubeconfig only when given', () => {
  assert.equal(h4.scopeArgs(), ['--kube-context', 'prod-eu', '--namespace', 'conduit']);
  assert.equal(new Helm('helm', 4).scopeArgs(), []);
  assert.equal(h4.withScope({ ...scope, kubeconfig: '/k.yaml' }).scopeArgs(), ['--kubeconfig', '/k.yaml', '--kube-context', 'prod-eu', '--namespace', 'conduit']);
  assert.equal(h4.statusArgs('conduit'), ['status', 'conduit', '--kube-context', 'prod-eu', '--namespace', 'conduit', '--output', 'json']);
  assert.equal(new Helm('helm', 4).historyArgs('conduit', 5), ['history', 'conduit', '--max', '5', '--output', 'json']);
  assert.equal(new Helm('helm', 3).valuesArgs('conduit'), ['get', 'values', 'conduit', '--all', '--output', 'json']);
});

test('upgrade: helm 4 rolls back on failure with its watcher and applies server-side; helm 3 is --atomic', () => {
  const a4 = h4.upgradeArgs({ ...install, timeout: '10m', historyMax: 10 });
  assert.equal(a4, [
    'upgrade',
    '--install',
    'conduit',
    '/repo/chart',
    '--kube-context',
    'prod-eu',
    '--namespace',
    'conduit',
    '--values',
    'env.yaml',
    '--values',
    'cluster.yaml',
    '--values',
    '-',
    '--timeout',
    '10m',
    '--history-max',
    '10',
    '--rollback-on-failure',
    '--wait=watcher',
    '--server-side=true',
    '--force-conflicts',
  ]);
  const a3 = h3.upgradeArgs({ ...install, stdinValues: false, timeout: '5m', skipOpenApiValidation: true });
  assert.equal(a3.slice(-5), ['--timeout', '5m', '--atomic', '--wait', '--disable-openapi-validation']);
  assert.not.ok(a3.includes('-'), 'no stdin document asked for');
  assert.equal(h4.upgradeDryRunArgs(install).slice(-3), ['--dry-run=server', '--output', 'json']);
  assert.throws(() => new Helm('helm', 4).upgradeArgs({ ...install, timeout: '1m' }), /needs a cluster scope/);
});

test('rollback waits (and takes back hand-edited fields on helm 4) unless told not to; uninstall', () => {
  const unscoped4 = new Helm('helm', 4);
  assert.equal(unscoped4.rollbackArgs({ release: 'conduit', revision: 7, timeout: '10m', historyMax: 10 }), [
    'rollback',
    'conduit',
    '7',
    '--timeout',
    '10m',
    '--wait=watcher',
    '--force-conflicts',
    '--history-max',
    '10',
  ]);
  assert.equal(new Helm('helm', 3).rollbackArgs({ release: 'conduit', timeout: '5m', historyMax: 10 }), ['rollback', 'conduit', '--timeout', '5m', '--wait', '--history-max', '10']);
  assert.equal(h4.rollbackArgs({ release: 'conduit', revision: 2, timeout: '5m', wait: false }), [
    'rollback',
    'conduit',
    '2',
    '--kube-context',
    'prod-eu',
    '--namespace',
    'conduit',
    '--timeout',
    '5m',
  ]);
  assert.equal(h4.uninstallArgs({ release: 'conduit', timeout: '5m' }), ['uninstall', 'conduit', '--kube-context', 'prod-eu', '--namespace', 'conduit', '--timeout', '5m']);
});

test('template and lint: offline with a namespace, or live on the scope (lookups resolve)', () => {
  const offline = new Helm('helm', 4).templateArgs({
    release: 'r',
    chart: 'c',
    namespace: 'ns',
    valuesFiles: ['a.yaml'],
    valuesYaml: 'x: 1\n',
    set: ['k=v'],
    kubeVersion: '1.35',
    showOnly: ['templates/x.yaml'],
  });
  assert.equal(offline, ['template', 'r', 'c', '--namespace', 'ns', '--values', 'a.yaml', '--values', '-', '--set', 'k=v', '--kube-version', 'v1.35.0', '--show-only', 'templates/x.yaml']);
  assert.equal(h4.templateArgs({ ...install, live: true, skipOpenApiValidation: true }), [
    'template',
    'conduit',
    '/repo/chart',
    '--kube-context',
    'prod-eu',
    '--namespace',
    'conduit',
    '--values',
    'env.yaml',
    '--values',
    'cluster.yaml',
    '--values',
    '-',
    '--dry-run=server',
    '--disable-openapi-validation',
  ]);
  assert.throws(() => new Helm('helm', 4).templateArgs({ release: 'r', chart: 'c', live: true }), /needs a cluster scope/);
  assert.equal(new Helm('helm', 3).lintArgs({ chart: 'c' }), ['lint', 'c', '--strict']);
  assert.equal(new Helm('helm', 3).lintArgs({ chart: 'c', namespace: 'ns', strict: false, kubeVersion: 'v1.36.3', stdinValues: true }), [
    'lint',
    'c',
    '--namespace',
    'ns',
    '--values',
    '-',
    '--kube-version',
    'v1.36.3',
  ]);
  assert.throws(() => kubeVersionArg('latest'), /invalid Kubernetes version/);
});

test('packaging and publishing arguments; the post-renderer is a plugin on helm 4 only', () => {
  const h = new Helm('helm', 4);
  assert.equal(h.packageArgs({ chart: 'chart', destination: 'dist' }), ['package', 'chart', '--destination', 'dist']);
  assert.equal(h.packageArgs({ chart: 'chart', destination: 'dist', sign: { key: 'k', keyring: 'ring.gpg', passphraseFile: 'pass' } }), [
    'package',
    'chart',
    '--destination',
    'dist',
    '--sign',
    '--key',
    'k',
    '--keyring',
    'ring.gpg',
    '--passphrase-file',
    'pass',
  ]);
  assert.equal(h.verifyArgs('p.tgz', 'pub.gpg'), ['verify', 'p.tgz', '--keyring', 'pub.gpg']);
  assert.equal(h.repoIndexArgs({ dir: 'dist', url: 'https://c.example.com', merge: 'old.yaml' }), ['repo', 'index', 'dist', '--url', 'https://c.example.com', '--merge', 'old.yaml']);
  assert.equal(h.pushArgs({ pkg: 'p.tgz', registry: 'oci://r/charts', plainHttp: true }), ['push', 'p.tgz', 'oci://r/charts', '--plain-http']);
  const route = { executable: '/gate/gate.sh', plugin: 'conduit-gate', pluginsDir: '/gate/plugins' };
  assert.equal(h.postRendererArgs(route), { args: ['--post-renderer', 'conduit-gate'], env: { HELM_PLUGINS: '/gate/plugins' } });
  assert.equal(new Helm('helm', 3).postRendererArgs(route), { args: ['--post-renderer', '/gate/gate.sh'], env: {} });
});

test('real helm: a render, and a read that fails is a UserError naming the command', async () => {
  const helm = await helmClient(4);
  const out = await helm.render({ release: 'conduit', chart: CHART_DIR, namespace: 'conduit', showOnly: ['templates/api/service.yaml'] });
  assert.match(out, /kind: Service/);
  const missing = helm.withScope({ context: 'no-such-context', kubeconfig: path.join(CHART_DIR, 'no-such-kubeconfig.yaml'), namespace: 'conduit' });
  const e = await missing.status('conduit').then(
    () => undefined,
    (err: unknown) => err,
  );
  assert.ok(isUserError(e), String(e));
  assert.match((e as Error).message, /^helm status failed: /);
});

test.run();
