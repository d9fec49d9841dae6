import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { redact, registerSecret, redactValue, clearSecrets } from '../../scripts/lib/core/redact.ts';

test('redact masks URL credentials but keeps user and host', () => {
  assert.is(redact('postgres://conduit:s3cretPass@db:5432/conduit'), 'postgres://conduit:***@db:5432/conduit');
  assert.is(redact('redis://:hunter22@redis:6379'), 'redis://:***@redis:6379');
});

test('redact masks registered secret values wherever they appear', () => {
  clearSecrets();
  registerSecret('abcd1234efgh');
  assert.is(redact('key=abcd1234efgh in a sentence abcd1234efgh'), 'key=*** in a sentence ***');
  assert.equal(redactValue({ a: ['xabcd1234efghx'], b: 3 }), { a: ['x***x'], b: 3 });
  clearSecrets();
  assert.is(redact('abcd1234efgh'), 'abcd1234efgh');
});

test('redact masks secret-looking env assignments', () => {
  assert.is(redact('PGPASSWORD=topsecret pg_dump'), 'PGPASSWORD=*** pg_dump');
  assert.is(redact('CONDUIT_API_TO_API_BACKEND_AUTH_KEY=xyz123'), 'CONDUIT_API_TO_API_BACKEND_AUTH_KEY=***');
});
test.run();
