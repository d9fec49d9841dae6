import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { auditKey, parseAuditData, pruneAuditData, sanitizeAuditEntry, type AuditEntry } from '../../scripts/lib/domain/audit.ts';
import { clearSecrets, registerSecret } from '../../scripts/lib/core/redact.ts';

const test = suite('audit');

const base: AuditEntry = { time: '2026-11-29T14:00:00.000Z', actor: 'alice@laptop', action: 'deploy', result: 'succeeded', namespace: 'conduit' };

test('an entry keeps no secret: registered values, URL credentials, secret-named fields', () => {
  registerSecret('mk-4f9a8b7c6d5e');
  const clean = sanitizeAuditEntry({
    ...base,
    summary: 'rotated master key mk-4f9a8b7c6d5e',
    details: {
      databaseUrl: 'postgres://conduit:pg-pass-123@db:5432/conduit',
      masterKey: 'anything-at-all',
      nested: [{ password: 'p@ss-word-9' }, { apiKey: 987654 }],
      env: 'CONDUIT_API_TO_API_BACKEND_AUTH_KEY=abcdef123456 CONDUIT_MASTER_KEY: zyxw98765',
      note: 'set --set secrets.apiKey=qwerty-55 on the command line',
      revision: 7,
      chart: 'conduit-0.3.1',
    },
  });
  const text = JSON.stringify(clean);
  for (const secret of ['mk-4f9a8b7c6d5e', 'pg-pass-123', 'anything-at-all', 'p@ss-word-9', '987654', 'abcdef123456', 'zyxw98765', 'qwerty-55']) {
    assert.not.ok(text.includes(secret), `leaked ${secret}: ${text}`);
  }
  assert.is(clean.details?.revision, 7);
  assert.is(clean.details?.chart, 'conduit-0.3.1');
  assert.is(clean.actor, 'alice@laptop');
  clearSecrets();
});

test('huge details are cut so one entry stays small', () => {
  const clean = sanitizeAuditEntry({ ...base, details: { blob: 'x'.repeat(50_000) } });
  assert.ok(JSON.stringify(clean).length < 9000);
  assert.is(clean.details?.truncated, true);
});

test('keys sort by time and are valid ConfigMap keys', () => {
  const a = auditKey(new Date('2026-11-29T14:00:00.001Z'), 'aaaaaa');
  const b = auditKey(new Date('2026-11-29T14:00:00.002Z'), '000000');
  assert.is(a, '20261129T140000001Z-aaaaaa');
  assert.ok(a < b);
  assert.match(auditKey(new Date()), /^[-._a-zA-Z0-9]+$/);
});

test('pruning keeps the newest entries within both bounds', () => {
  const data: Record<string, string> = {};
  for (let i = 0; i < 10; i++) data[`k${i}`] = 'v'.repeat(100);
  assert.equal(Object.keys(pruneAuditData(data, 4)), ['k6', 'k7', 'k8', 'k9']);
  const bytes = pruneAuditData(data, 100, 350);
  assert.equal(Object.keys(bytes), ['k7', 'k8', 'k9']);
  assert.equal(Object.keys(pruneAuditData({ only: 'x'.repeat(1000) }, 10, 10)), ['only']);
});

test('entries parse oldest first; a broken one is reported, not fatal', () => {
  const entries = parseAuditData({ b: JSON.stringify({ ...base, action: 'rollback' }), a: JSON.stringify(base), c: '{nope' });
  assert.equal(
    entries.map((e) => [e.key, e.action]),
    [
      ['a', 'deploy'],
      ['b', 'rollback'],
      ['c', 'unreadable'],
    ],
  );
});

test.run();
