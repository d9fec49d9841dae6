// The audit trail in a real ConfigMap: append, read back, concurrent writers, and no secret stored.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { appendAudit, AUDIT_CONFIGMAP, readAudit } from '../../scripts/lib/domain/audit.ts';
import type { Kube } from '../../scripts/lib/adapters/kube.ts';
import { clearSecrets, registerSecret } from '../../scripts/lib/core/redact.ts';
import { localCluster, rejection, scratchNamespace } from './support/localcluster.ts';

const test = suite('audit trail');
let kube: Kube;
let ns: { name: string; cleanup: () => Promise<void> };

test.before(async () => {
  kube = await localCluster();
  ns = await scratchNamespace(kube, 'e2e-audit');
});
test.after(async () => {
  await ns?.cleanup();
  clearSecrets();
});

test('entries are appended and read back in order, and the ConfigMap holds no secret', async () => {
  const masterKey = 'mk-e2e-7f3c9a1b2d';
  registerSecret(masterKey);
  await appendAudit(kube, { time: '2026-11-29T14:00:00.000Z', actor: 'alice@laptop', action: 'deploy', result: 'started', namespace: ns.name, release: 'conduit', summary: 'deploy conduit 0.3.2' });
  await appendAudit(kube, {
    time: '2026-11-29T14:01:00.000Z',
    actor: 'alice@laptop',
    action: 'rotate-master-key',
    result: 'succeeded',
    namespace: ns.name,
    summary: `new master key ${masterKey}`,
    details: { masterKey, databaseUrl: 'postgres://conduit:db-pass-e2e@db:5432/conduit', env: 'CONDUIT_API_TO_API_BACKEND_AUTH_KEY=auth-e2e-value', revision: 4 },
  });
  const entries = await readAudit(kube, ns.name);
  assert.equal(
    entries.map((e) => [e.action, e.result]),
    [
      ['deploy', 'started'],
      ['rotate-master-key', 'succeeded'],
    ],
  );
  assert.is(entries[1].details?.revision, 4);
  const cm = await kube.call(['get', 'configmap', AUDIT_CONFIGMAP, '-o', 'json'], { namespace: ns.name });
  for (const secret of [masterKey, 'db-pass-e2e', 'auth-e2e-value']) assert.not.ok(cm.includes(secret), `the ConfigMap contains ${secret}`);
  assert.match(cm, /"app.kubernetes.io\/managed-by": "conduit-deploy"/);
});

test('concurrent writers lose no entry', async () => {
  const before = (await readAudit(kube, ns.name)).length;
  await Promise.all(Array.from({ length: 5 }, (_, i) => appendAudit(kube, { time: new Date().toISOString(), actor: `writer-${i}`, action: 'scale', result: 'succeeded', namespace: ns.name })));
  const after = await readAudit(kube, ns.name);
  assert.is(after.length, before + 5);
  assert.equal(
    after
      .filter((e) => e.action === 'scale')
      .map((e) => e.actor)
      .sort(),
    ['writer-0', 'writer-1', 'writer-2', 'writer-3', 'writer-4'],
  );
  assert.equal((await readAudit(kube, ns.name, { limit: 2 })).length, 2);
});

test('writing into a namespace that does not exist is a clear error', async () => {
  const e = await rejection(() => appendAudit(kube, { time: new Date().toISOString(), actor: 'x', action: 'deploy', result: 'failed', namespace: 'does-not-exist-e2e' }));
  assert.match(e.message, /namespace does-not-exist-e2e does not exist/);
});

test.run();
