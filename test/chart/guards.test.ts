// Render-time refusals: each names the keys to change and why.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { merge, renderError, renderObjects, S3 } from './helpers.ts';

test('more than one API replica without S3 media storage is refused', async () => {
  const msg = await renderError({ values: { api: { replicaCount: 2 } } });
  assert.match(msg, /^conduit: api\.replicaCount=2 needs shared media storage, but mediaStorage\.type is inmemory\./);
  assert.match(msg, /Set mediaStorage\.type=s3/);
});

test('an API HPA without RabbitMQ is refused, saying what breaks', async () => {
  const msg = await renderError({ values: merge(S3, { api: { autoscaling: { enabled: true } }, rabbitmq: { mode: 'none' } }) });
  assert.match(msg, /^conduit: api\.autoscaling\.enabled=true needs RabbitMQ, but rabbitmq\.mode is none\./);
  assert.match(msg, /Admin changes never reach API pods/);
  assert.match(msg, /Set rabbitmq\.mode to operator or external/);
});

test('more than one Admin replica without RabbitMQ is refused', async () => {
  assert.match(await renderError({ values: { admin: { replicaCount: 3 }, rabbitmq: { mode: 'none' } } }), /^conduit: admin\.replicaCount=3 needs RabbitMQ/);
});

test('scaling out without Redis is refused; the Admin API without Redis is refused', async () => {
  const msg = await renderError({ values: merge(S3, { api: { replicaCount: 2 }, admin: { enabled: false }, redis: { mode: 'none' } }) });
  assert.match(msg, /^conduit: api\.replicaCount=2 needs Redis, but redis\.mode is none\./);
  assert.match(await renderError({ values: { redis: { mode: 'none' } } }), /^conduit: the Admin API requires Redis \(REDIS_URL\)/);
  await renderObjects({ values: { redis: { mode: 'none' }, admin: { enabled: false } } });
});

test('with RabbitMQ, Redis and S3 the API may scale out', async () => {
  await renderObjects({ values: merge(S3, { api: { replicaCount: 3 }, admin: { replicaCount: 2 } }) });
});

test('the connection budget (max replicas + surge) x pool must fit max_connections minus the reserve', async () => {
  const msg = await renderError({ values: merge(S3, { api: { autoscaling: { enabled: true, maxReplicas: 10 } } }) });
  // api: (10 + 1 surge) x 20 = 220, admin: (1 + 1) x 10 = 20 -> 240 > 200 - 25.
  assert.match(msg, /^conduit: the database connection budget does not fit: api 11 pods x 20 \+ admin 2 pods x 10 = 240 connections at peak/);
  assert.match(msg, /leaves 175\./);
  assert.match(msg, /Lower database\.pool\.api\.maxPoolSize/);
  // The same scale fits once the pool shrinks or the server allows more connections.
  await renderObjects({ values: merge(S3, { api: { autoscaling: { enabled: true, maxReplicas: 10 } }, database: { pool: { api: { maxPoolSize: 10 } } } }) });
  await renderObjects({ values: merge(S3, { api: { autoscaling: { enabled: true, maxReplicas: 10 } }, database: { maxConnections: 300 } }) });
  // A percentage surge is rounded up like Kubernetes does: 10 x 25% -> 3 extra pods.
  assert.match(await renderError({ values: merge(S3, { api: { autoscaling: { enabled: true, maxReplicas: 10 }, updateStrategy: { maxSurge: '25%' } }, database: { maxConnections: 280 } }) }), /api 13 pods x 20/);
});

test('bounds in the wrong order are refused', async () => {
  assert.match(await renderError({ values: merge(S3, { api: { autoscaling: { enabled: true, minReplicas: 5, maxReplicas: 3 } } }) }), /^conduit: api\.autoscaling\.minReplicas \(5\) is above api\.autoscaling\.maxReplicas \(3\)/);
  assert.match(await renderError({ values: { database: { pool: { admin: { minPoolSize: 20 } } } } }), /^conduit: database\.pool\.admin\.minPoolSize \(20\) is above database\.pool\.admin\.maxPoolSize \(10\)/);
});

test('latest is refused in production, allowed elsewhere; a digest is always fine', async () => {
  const msg = await renderError({ values: { webui: { image: { tag: 'latest' } } } });
  assert.match(msg, /^conduit: webui\.image\.tag is latest, which is refused when global\.environment is production/);
  assert.match(msg, /Set webui\.image\.tag to a release \(X\.Y\.Z\) or webui\.image\.digest\./);
  await renderObjects({ values: { global: { environment: 'staging' }, api: { image: { tag: 'latest' } } } });
  await renderObjects({ values: { api: { image: { tag: 'latest', digest: 'sha256:' + 'b'.repeat(64) } } } });
  assert.match(await renderError({ values: { redis: { standalone: { image: { tag: 'latest' } } } } }), /^conduit: redis\.standalone\.image\.tag is latest/);
});

test('an exposed WebUI in production needs Clerk keys', async () => {
  const exposed = { ingress: { enabled: true, hosts: { webui: 'ui.example.com' } } };
  assert.match(await renderError({ values: exposed }), /^conduit: the WebUI is exposed \(ingress\.hosts\.webui\) in production without Clerk sign-in/);
  await renderObjects({ values: merge(exposed, { webui: { clerk: { publishableKey: 'pk_live_x', existingSecret: 'clerk' } } }) });
});

test('external services need their host, credentials and a way through the NetworkPolicy', async () => {
  assert.match(await renderError({ values: { database: { mode: 'external' } } }), /^conduit: database\.mode is external but database\.external\.host is empty/);
  assert.match(await renderError({ values: { database: { mode: 'external', external: { host: 'db' } } } }), /^conduit: database\.mode is external but no password is given\. Set database\.auth\.existingSecret/);
  assert.match(await renderError({ values: { redis: { mode: 'external' } } }), /^conduit: redis\.mode is external but neither redis\.external\.host nor redis\.external\.url is set/);
  assert.match(await renderError({ values: { rabbitmq: { mode: 'external', external: { host: 'localhost' }, auth: { password: 'x' } } } }), /rabbitmq\.external\.host is localhost, which makes the app silently use its in-memory bus/);
  assert.match(await renderError({ values: { rabbitmq: { mode: 'external', external: { host: 'mq' } } } }), /^conduit: rabbitmq\.mode is external but no password is given/);
  const np = await renderError({ values: { database: { mode: 'external', external: { host: 'db' }, auth: { existingSecret: 'pg' } } } });
  assert.match(np, /^conduit: networkPolicy\.enabled is true and a data service is external .* networkPolicy\.extraEgress is empty/);
});

test('S3 needs endpoint, bucket and a credentials Secret', async () => {
  assert.match(await renderError({ values: { mediaStorage: { type: 's3' } } }), /^conduit: mediaStorage\.type is s3 but mediaStorage\.s3\.endpoint or mediaStorage\.s3\.bucketName is empty/);
  assert.match(await renderError({ values: { mediaStorage: { type: 's3', s3: { endpoint: 'https://s3', bucketName: 'b' } } } }), /^conduit: mediaStorage\.type is s3 but mediaStorage\.s3\.existingSecret is empty/);
});

test('an existing Secret without a key name is refused', async () => {
  assert.match(await renderError({ values: { masterKey: { existingSecret: 'mk', existingSecretKey: '' } } }), /^conduit: masterKey\.existingSecret is "mk" but no key is given/);
  assert.match(await renderError({ values: { database: { auth: { existingSecret: 'pg', existingSecretPasswordKey: '' } } } }), /^conduit: database\.auth\.existingSecret is "pg" but no key is given/);
});

test('Gateway API routes need a parent Gateway', async () => {
  assert.match(await renderError({ values: { gatewayApi: { enabled: true } } }), /^conduit: gatewayApi\.enabled is true but gatewayApi\.parentRefs is empty/);
});

test('the schema refuses what the application cannot parse', async () => {
  assert.match(await renderError({ values: { database: { auth: { password: 'p@ss/word' } } } }), /\/database\/auth\/password.*does not match pattern/);
  assert.match(await renderError({ values: { redis: { auth: { password: 'a,b' } } } }), /\/redis\/auth\/password.*does not match pattern/);
  assert.match(await renderError({ values: { rabbitmq: { vhost: 'conduit' } } }), /\/rabbitmq\/vhost.*does not match pattern/);
  assert.match(await renderError({ values: { redis: { mode: 'external', external: { host: 'cache:6379/2' } } } }), /\/redis\/external\/host.*does not match pattern/);
  assert.match(await renderError({ values: { api: { image: { digest: 'sha256:nothex' } } } }), /\/api\/image\/digest.*does not match pattern/);
  assert.match(await renderError({ values: { api: { image: { tag: 'bad tag' } } } }), /\/api\/image\/tag.*does not match pattern/);
  assert.match(await renderError({ values: { api: { terminationGracePeriodSeconds: 30 } } }), /\/api\/terminationGracePeriodSeconds/);
  assert.match(await renderError({ values: { api: { containerSecurityContext: { readOnlyRootFilesystem: true, privileged: true } } } }), /\/api\/containerSecurityContext\/privileged/);
  assert.match(await renderError({ values: { api: { replicas: 2 } } }), /additional properties 'replicas' not allowed/);
});

test.run();
