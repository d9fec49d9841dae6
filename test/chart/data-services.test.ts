// PostgreSQL, Redis, RabbitMQ and media storage in each of their modes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { configEnv, container, envOf, find, ofKind, renderError, renderObjects } from './helpers.ts';

const EXTERNAL_DB = {
  database: { mode: 'external', external: { host: 'db.example.com', port: 6432, sslMode: 'Require' }, auth: { existingSecret: 'pg', existingSecretPasswordKey: 'pw' } },
  networkPolicy: { enabled: false },
};

test('cnpg: a CloudNativePG Cluster with max_connections, bootstrapped from the chart-generated basic-auth Secret', async () => {
  const objects = await renderObjects();
  const cluster = find(objects, 'Cluster', 'conduit-pg');
  assert.is(cluster.apiVersion, 'postgresql.cnpg.io/v1');
  assert.is(cluster.spec.instances, 3);
  assert.is(cluster.spec.postgresql.parameters.max_connections, '200');
  assert.equal(cluster.spec.bootstrap.initdb, { database: 'conduit', owner: 'conduit', secret: { name: 'conduit-postgres' } });
  assert.is(cluster.spec.enableSuperuserAccess, false);
  const secret = find(objects, 'Secret', 'conduit-postgres');
  assert.is(secret.type, 'kubernetes.io/basic-auth');
  assert.is(Buffer.from(secret.data.username, 'base64').toString(), 'conduit');
  assert.match(Buffer.from(secret.data.password, 'base64').toString(), /^[A-Za-z0-9]{32}$/);
  // The PodMonitor follows monitoring.serviceMonitor.enabled (database.cnpg.monitoring.podMonitor defaults to true).
  assert.is(ofKind(objects, 'PodMonitor').length, 0);
  const withMonitor = await renderObjects({ values: { monitoring: { serviceMonitor: { enabled: true } } } });
  assert.equal(find(withMonitor, 'PodMonitor', 'conduit-pg').spec.podMetricsEndpoints, [
    { port: 'metrics', interval: '30s', relabelings: [{ action: 'replace', targetLabel: 'job', replacement: 'conduit-postgresql' }] },
  ]);
  const optedOut = await renderObjects({ values: { monitoring: { serviceMonitor: { enabled: true } }, database: { cnpg: { monitoring: { podMonitor: false } } } } });
  assert.is(ofKind(optedOut, 'PodMonitor').length, 0);
});

test('external database: no Cluster, the URL points at the server with SslMode, the password from the given Secret', async () => {
  const objects = await renderObjects({ values: EXTERNAL_DB });
  assert.is(ofKind(objects, 'Cluster').length, 0);
  assert.not.ok(
    objects.some((o) => o.kind === 'Secret' && o.metadata.name === 'conduit-postgres'),
    'no generated DB secret',
  );
  const env = envOf(container(objects, 'api'));
  assert.is(env.get('DATABASE_URL')!.value, 'postgres://conduit:$(CONDUIT_DATABASE_PASSWORD)@db.example.com:6432/conduit?Pooling=true&MinPoolSize=2&MaxPoolSize=20&SslMode=Require');
  assert.equal(env.get('CONDUIT_DATABASE_PASSWORD')!.valueFrom, { secretKeyRef: { name: 'pg', key: 'pw' } });
  assert.match(envOf(container(objects, 'admin')).get('DATABASE_URL')!.value!, /MaxPoolSize=10&SslMode=Require$/);
});

test('redis standalone: hardened StatefulSet, password on stdin, maxmemory and eviction policy, persistence', async () => {
  const objects = await renderObjects();
  const sts = find(objects, 'StatefulSet', 'conduit-redis');
  const pod = sts.spec.template.spec;
  const c = pod.containers[0];
  assert.is(pod.automountServiceAccountToken, false);
  assert.is(c.securityContext.readOnlyRootFilesystem, true);
  assert.equal(c.securityContext.capabilities.drop, ['ALL']);
  assert.ok(pod.securityContext.runAsNonRoot);
  assert.not.match(JSON.stringify(c.args), /requirepass [A-Za-z0-9]{8}/, 'no literal password in argv');
  assert.match(c.args[0], /\| exec redis-server \/etc\/redis\/redis\.conf -$/);
  assert.ok(c.env.find((e: { name: string }) => e.name === 'REDIS_PASSWORD').valueFrom.secretKeyRef);
  const conf = find(objects, 'ConfigMap', 'conduit-redis-config').data['redis.conf'];
  assert.match(conf, /^maxmemory 200mb$/m);
  assert.match(conf, /^maxmemory-policy noeviction$/m, 'spend batches and bans carry TTLs: nothing may be evicted');
  assert.match(conf, /^appendonly yes$/m);
  assert.is(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage, '2Gi');
  const eph = await renderObjects({ values: { redis: { standalone: { persistence: { enabled: false }, maxmemoryPolicy: 'allkeys-lru' } } } });
  const s2 = find(eph, 'StatefulSet', 'conduit-redis');
  assert.is(s2.spec.volumeClaimTemplates, undefined);
  assert.ok(s2.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'data').emptyDir);
  assert.match(find(eph, 'ConfigMap', 'conduit-redis-config').data['redis.conf'], /^maxmemory-policy allkeys-lru$/m);
});

test('redis external: rediss with an ACL user, no /db suffix; without a password no credentials in the URL', async () => {
  const objects = await renderObjects({
    values: {
      redis: { mode: 'external', external: { host: 'cache.example.com', port: 6380, tls: true, username: 'conduit' }, auth: { existingSecret: 'redis', existingSecretPasswordKey: 'pw' } },
      networkPolicy: { enabled: false },
    },
  });
  assert.is(ofKind(objects, 'StatefulSet').length, 0);
  const env = envOf(container(objects, 'admin'));
  assert.is(env.get('REDIS_URL')!.value, 'rediss://conduit:$(CONDUIT_REDIS_PASSWORD)@cache.example.com:6380');
  const open = await renderObjects({ values: { redis: { mode: 'external', external: { host: 'cache' } }, networkPolicy: { enabled: false } } });
  assert.is(envOf(container(open, 'api')).get('REDIS_URL')!.value, 'redis://cache:6379');
  assert.not.ok(envOf(container(open, 'api')).has('CONDUIT_REDIS_PASSWORD'));
});

test('redis external URL: scheme, user, host and port come from redis.external.url; the password stays a reference', async () => {
  const objects = await renderObjects({
    values: {
      redis: { mode: 'external', external: { url: 'rediss://app@cache.example.com:6380' }, auth: { existingSecret: 'redis', existingSecretPasswordKey: 'pw' } },
      networkPolicy: { enabled: false },
    },
  });
  assert.is(envOf(container(objects, 'api')).get('REDIS_URL')!.value, 'rediss://app:$(CONDUIT_REDIS_PASSWORD)@cache.example.com:6380');
  const plain = await renderObjects({ values: { redis: { mode: 'external', external: { url: 'redis://cache' } }, networkPolicy: { enabled: false } } });
  assert.is(envOf(container(plain, 'admin')).get('REDIS_URL')!.value, 'redis://cache:6379');
  const both = await renderError({ values: { redis: { mode: 'external', external: { url: 'redis://cache:6379', host: 'cache' } }, networkPolicy: { enabled: false } } });
  assert.match(both, /redis\.external\.url and redis\.external\.host are both set/);
});

test('rabbitmq operator: RabbitmqCluster with the delayed-message plugin; the app reads the operator default user', async () => {
  const objects = await renderObjects({ values: { rabbitmq: { vhost: '/conduit' } } });
  const rmq = find(objects, 'RabbitmqCluster', 'conduit-rabbitmq');
  assert.ok(rmq.spec.rabbitmq.additionalPlugins.includes('rabbitmq_delayed_message_exchange'));
  assert.match(rmq.spec.rabbitmq.additionalConfig, /default_vhost = \/conduit/);
  const env = envOf(container(objects, 'api'));
  assert.equal(env.get('CONDUITLLM__RABBITMQ__PASSWORD')!.valueFrom, { secretKeyRef: { name: 'conduit-rabbitmq-default-user', key: 'password' } });
  assert.is(configEnv(objects, 'api').CONDUITLLM__RABBITMQ__VHOST, '/conduit');
});

test('rabbitmq external and none', async () => {
  const ext = await renderObjects({
    values: {
      rabbitmq: { mode: 'external', external: { host: 'mq.example.com' }, auth: { username: 'svc', existingSecret: 'mq', existingSecretPasswordKey: 'pw' } },
      networkPolicy: { enabled: false },
    },
  });
  assert.is(ofKind(ext, 'RabbitmqCluster').length, 0);
  const cfg = configEnv(ext, 'admin');
  assert.equal([cfg.CONDUITLLM__RABBITMQ__HOST, cfg.CONDUITLLM__RABBITMQ__PORT, cfg.CONDUITLLM__RABBITMQ__USERNAME], ['mq.example.com', '5672', 'svc']);
  assert.equal(envOf(container(ext, 'admin')).get('CONDUITLLM__RABBITMQ__PASSWORD')!.valueFrom, { secretKeyRef: { name: 'mq', key: 'pw' } });
  const none = await renderObjects({ values: { rabbitmq: { mode: 'none' } } });
  assert.not.ok(Object.keys(configEnv(none, 'api')).some((k) => k.startsWith('CONDUITLLM__RABBITMQ__')));
  assert.not.ok(envOf(container(none, 'api')).has('CONDUITLLM__RABBITMQ__PASSWORD'));
});

test('S3 media storage: names the app reads, keys from the Secret', async () => {
  const objects = await renderObjects({
    values: {
      mediaStorage: {
        type: 's3',
        s3: {
          endpoint: 'https://s3.example.com',
          bucketName: 'media',
          region: 'eu-west-1',
          publicBaseUrl: 'https://cdn.example.com',
          existingSecret: 's3',
          accessKeyIdKey: 'id',
          secretAccessKeyKey: 'key',
        },
      },
    },
  });
  for (const c of ['api', 'admin']) {
    const cfg = configEnv(objects, c);
    assert.equal(
      [cfg.CONDUIT_MEDIA_STORAGE_TYPE, cfg.CONDUIT_S3_ENDPOINT, cfg.CONDUIT_S3_BUCKET_NAME, cfg.CONDUIT_S3_REGION, cfg.CONDUIT_S3_PUBLIC_BASE_URL],
      ['S3', 'https://s3.example.com', 'media', 'eu-west-1', 'https://cdn.example.com'],
    );
    const env = envOf(container(objects, c));
    assert.equal(env.get('CONDUIT_S3_ACCESS_KEY_ID')!.valueFrom, { secretKeyRef: { name: 's3', key: 'id' } });
    assert.equal(env.get('CONDUIT_S3_SECRET_ACCESS_KEY')!.valueFrom, { secretKeyRef: { name: 's3', key: 'key' } });
  }
  assert.not.ok('CONDUIT_MEDIA_STORAGE_TYPE' in configEnv(await renderObjects(), 'api'), 'in-memory by default');
});

test.run();
