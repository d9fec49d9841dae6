// Credentials: generated once and kept, or taken from existing Secrets; never in a ConfigMap.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { container, envOf, find, ofKind, renderObjects } from './helpers.ts';

const decode = (b64: string) => Buffer.from(b64, 'base64').toString();

test('generated credentials are URL-safe, long, and kept across upgrades and uninstalls', async () => {
  const objects = await renderObjects();
  const cases: [string, string, number][] = [
    ['conduit-master-key', 'master-key', 48],
    ['conduit-postgres', 'password', 32],
    ['conduit-redis', 'redis-password', 32],
  ];
  for (const [name, key, len] of cases) {
    const s = find(objects, 'Secret', name);
    assert.is(s.metadata.annotations?.['helm.sh/resource-policy'], 'keep', `${name} is kept`);
    assert.match(decode(s.data[key]), new RegExp(`^[A-Za-z0-9]{${len}}$`), `${name}/${key}`);
  }
});

test('existing Secrets replace every generated one', async () => {
  const objects = await renderObjects({
    values: {
      masterKey: { existingSecret: 'mk', existingSecretKey: 'key' },
      database: { auth: { existingSecret: 'pg', existingSecretPasswordKey: 'pgpw' } },
      redis: { auth: { existingSecret: 'rd', existingSecretPasswordKey: 'rdpw' } },
      webui: { enabled: true, clerk: { publishableKey: 'pk_test_x', existingSecret: 'clerk', secretKeyKey: 'sk' } },
    },
  });
  assert.is(ofKind(objects, 'Secret').length, 0, 'the chart creates no Secret');
  const api = envOf(container(objects, 'api'));
  assert.equal(api.get('CONDUIT_API_TO_API_BACKEND_AUTH_KEY')!.valueFrom, { secretKeyRef: { name: 'mk', key: 'key' } });
  assert.equal(api.get('CONDUIT_DATABASE_PASSWORD')!.valueFrom, { secretKeyRef: { name: 'pg', key: 'pgpw' } });
  assert.equal(api.get('CONDUIT_REDIS_PASSWORD')!.valueFrom, { secretKeyRef: { name: 'rd', key: 'rdpw' } });
  assert.is(find(objects, 'Cluster', 'conduit-pg').spec.bootstrap.initdb.secret.name, 'pg');
  const redis = find(objects, 'StatefulSet', 'conduit-redis').spec.template.spec.containers[0];
  assert.equal(redis.env.find((e: { name: string }) => e.name === 'REDIS_PASSWORD').valueFrom, { secretKeyRef: { name: 'rd', key: 'rdpw' } });
  const webui = envOf(container(objects, 'webui'));
  assert.equal(webui.get('CLERK_SECRET_KEY')!.valueFrom, { secretKeyRef: { name: 'clerk', key: 'sk' } });
  assert.equal(webui.get('CONDUIT_API_TO_API_BACKEND_AUTH_KEY')!.valueFrom, { secretKeyRef: { name: 'mk', key: 'key' } });
});

test('no secret value lands in a ConfigMap, an annotation or a pod spec', async () => {
  const values = { database: { auth: { password: 'DbPassw0rdInline' } }, redis: { auth: { password: 'RedisPassw0rdInline' } } };
  const objects = await renderObjects({ values });
  const secrets = ofKind(objects, 'Secret').flatMap((s) => Object.values(s.data as Record<string, string>).map(decode));
  assert.ok(secrets.includes('DbPassw0rdInline') && secrets.includes('RedisPassw0rdInline'), 'inline passwords go to Secrets');
  for (const o of objects.filter((x) => x.kind !== 'Secret')) {
    const text = JSON.stringify(o);
    for (const s of secrets.filter((v) => v.length >= 12)) assert.not.ok(text.includes(s), `${o.kind}/${o.metadata.name} contains a secret value`);
  }
  for (const cm of ofKind(objects, 'ConfigMap')) {
    for (const [k, v] of Object.entries(cm.data ?? {})) {
      assert.not.match(String(v), /:\/\/[^/\s]*:[^@/\s]+@/, `${cm.metadata.name}/${k} holds a URL with credentials`);
      assert.not.match(k, /PASSWORD|SECRET|AUTH_KEY|DATABASE_URL|REDIS_URL/, `${cm.metadata.name} has ${k}`);
    }
  }
});

test.run();
