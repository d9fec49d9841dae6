// Render-time refusals: each names the keys to change and why.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { find, merge, ofKind, renderError, renderObjects, S3, WEBUI_ON, type K8sObject } from './helpers.ts';

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

test('the Core API without Redis is refused at any replica count; so is the Admin API', async () => {
  // One replica, Admin off: the old chart accepted this, yet the API cannot start (BatchSpendUpdateService needs Redis).
  const msg = await renderError({ values: { redis: { mode: 'none' }, admin: { enabled: false } } });
  assert.match(msg, /^conduit: the Core API requires Redis, but redis\.mode is none\./);
  assert.match(msg, /BatchSpendUpdateService/);
  assert.match(msg, /Set redis\.mode to standalone/);
  assert.match(await renderError({ values: merge(S3, { api: { replicaCount: 2 }, redis: { mode: 'none' } }) }), /^conduit: the Core API requires Redis/);
  assert.match(await renderError({ values: { redis: { mode: 'none' }, api: { enabled: false } } }), /^conduit: the Admin API requires Redis \(REDIS_URL\)/);
  // Without either .NET component Redis may be left out.
  await renderObjects({ values: { redis: { mode: 'none' }, api: { enabled: false }, admin: { enabled: false } } });
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
  assert.match(
    await renderError({ values: merge(S3, { api: { autoscaling: { enabled: true, maxReplicas: 10 }, updateStrategy: { maxSurge: '25%' } }, database: { maxConnections: 280 } }) }),
    /api 13 pods x 20/,
  );
});

test('bounds in the wrong order are refused', async () => {
  assert.match(
    await renderError({ values: merge(S3, { api: { autoscaling: { enabled: true, minReplicas: 5, maxReplicas: 3 } } }) }),
    /^conduit: api\.autoscaling\.minReplicas \(5\) is above api\.autoscaling\.maxReplicas \(3\)/,
  );
  assert.match(
    await renderError({ values: { database: { pool: { admin: { minPoolSize: 20 } } } } }),
    /^conduit: database\.pool\.admin\.minPoolSize \(20\) is above database\.pool\.admin\.maxPoolSize \(10\)/,
  );
});

test('latest is refused in production, allowed elsewhere; a digest is always fine', async () => {
  const msg = await renderError({ values: merge(WEBUI_ON, { webui: { image: { tag: 'latest' } } }) });
  assert.match(msg, /^conduit: webui\.image\.tag is latest, which is refused when global\.environment is production/);
  assert.match(msg, /Set webui\.image\.tag to an immutable tag \(master-<7-char commit sha>, e\.g\. the chart's appVersion master-[0-9a-f]{7}\) or webui\.image\.digest \(sha256:\.\.\.\)\./);
  await renderObjects({ values: { global: { environment: 'staging' }, api: { image: { tag: 'latest' } } } });
  await renderObjects({ values: { api: { image: { tag: 'latest', digest: 'sha256:' + 'b'.repeat(64) } } } });
  assert.match(await renderError({ values: { redis: { standalone: { image: { tag: 'latest' } } } } }), /^conduit: redis\.standalone\.image\.tag is latest/);
});

test('the WebUI is off by default; enabled anywhere, it needs Clerk keys (its middleware guards /api/health too)', async () => {
  assert.not.ok(
    (await renderObjects()).some((o) => o.metadata.labels?.['app.kubernetes.io/component'] === 'webui'),
    'no WebUI object by default',
  );
  for (const environment of ['production', 'staging', 'local']) {
    const msg = await renderError({ values: { global: { environment }, webui: { enabled: true } } });
    assert.match(msg, /^conduit: webui\.enabled is true but webui\.clerk\.publishableKey or webui\.clerk\.existingSecret is empty\./, environment);
    assert.match(msg, /or set webui\.enabled=false/);
  }
  assert.match(await renderError({ values: { webui: { enabled: true, clerk: { publishableKey: 'pk_test_x' } } } }), /webui\.clerk\.existingSecret is empty/);
  await renderObjects({ values: WEBUI_ON });
});

test('an exposed WebUI needs a browser-reachable Admin API (its writes go there from the browser)', async () => {
  const exposed = merge(WEBUI_ON, { ingress: { enabled: true, hosts: { webui: 'ui.example.com' } } });
  const msg = await renderError({ values: exposed });
  assert.match(msg, /^conduit: ingress\.hosts\.webui exposes the WebUI \(ui\.example\.com\) but the Admin API is not exposed/);
  assert.match(msg, /Set ingress\.hosts\.admin \(with admin\.enabled=true\) or webui\.adminApiExternalUrl/);
  const viaHost = await renderObjects({ values: merge(exposed, { ingress: { hosts: { admin: 'admin.example.com' } } }) });
  assert.is(find(viaHost, 'ConfigMap', 'conduit-webui-env').data.CONDUIT_ADMIN_API_EXTERNAL_URL, 'https://admin.example.com');
  const viaUrl = await renderObjects({ values: merge(exposed, { webui: { adminApiExternalUrl: 'https://admin.corp.example.com' } }) });
  assert.is(find(viaUrl, 'ConfigMap', 'conduit-webui-env').data.CONDUIT_ADMIN_API_EXTERNAL_URL, 'https://admin.corp.example.com');
  // The Admin host without an enabled Admin API is no way in.
  assert.match(await renderError({ values: merge(exposed, { ingress: { hosts: { admin: 'admin.example.com' } }, admin: { enabled: false } }) }), /the Admin API is not exposed/);
});

test('external services need their host, credentials and a way through the NetworkPolicy', async () => {
  assert.match(await renderError({ values: { database: { mode: 'external' } } }), /^conduit: database\.mode is external but database\.external\.host is empty/);
  assert.match(
    await renderError({ values: { database: { mode: 'external', external: { host: 'db' } } } }),
    /^conduit: database\.mode is external but no password is given\. Set database\.auth\.existingSecret/,
  );
  assert.match(await renderError({ values: { redis: { mode: 'external' } } }), /^conduit: redis\.mode is external but neither redis\.external\.host nor redis\.external\.url is set/);
  assert.match(
    await renderError({ values: { rabbitmq: { mode: 'external', external: { host: 'localhost' }, auth: { password: 'x' } } } }),
    /rabbitmq\.external\.host is localhost, which makes the app silently use its in-memory bus/,
  );
  assert.match(await renderError({ values: { rabbitmq: { mode: 'external', external: { host: 'mq' } } } }), /^conduit: rabbitmq\.mode is external but no password is given/);
});

/**
 * Whether the NetworkPolicies selecting a pod with `labels` let it open TCP to ip:port (ipBlock peers,
 * as Kubernetes evaluates them). A stand-in for a CNI: the local cluster enforces no NetworkPolicy, so
 * this reads the rendered rules the way a network plugin would; it is no proof of a real plugin's behaviour.
 */
function egressAllowed(objects: K8sObject[], labels: Record<string, string>, ip: string, port: number): boolean {
  const toInt = (a: string) => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  const inCidr = (cidr: string) => {
    const [base, bits] = cidr.split('/');
    const mask = Number(bits) === 0 ? 0 : (0xffffffff << (32 - Number(bits))) >>> 0;
    return (toInt(ip) & mask) >>> 0 === (toInt(base) & mask) >>> 0;
  };
  const policies = ofKind(objects, 'NetworkPolicy').filter((p) => Object.entries(p.spec.podSelector.matchLabels ?? {}).every(([k, v]) => labels[k] === v) && p.spec.policyTypes.includes('Egress'));
  if (!policies.length) return true;
  return policies.some((p) =>
    (p.spec.egress ?? []).some(
      (rule: any) =>
        (rule.ports ?? []).some((pt: any) => pt.port === port && (pt.protocol ?? 'TCP') === 'TCP') &&
        (rule.to ?? []).some((peer: any) => peer.ipBlock && inCidr(peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some(inCidr)),
    ),
  );
}

test('external data services get their own egress, on the port from their settings, narrowed by their CIDRs', async () => {
  const external = {
    database: { mode: 'external', external: { host: 'pg.example.com', port: 6432 }, auth: { existingSecret: 'pg' } },
    redis: { mode: 'external', external: { url: 'rediss://cache.example.com:6380' } },
    rabbitmq: { mode: 'external', external: { host: 'mq.example.com', port: 5671 }, auth: { existingSecret: 'mq' } },
  };
  const objects = await renderObjects({ values: external });
  for (const component of ['api', 'admin']) {
    const pod = find(objects, 'Deployment', `conduit-${component}`).spec.template.metadata.labels;
    for (const port of [6432, 6380, 5671]) assert.ok(egressAllowed(objects, pod, '10.20.1.5', port), `${component} reaches 10.20.1.5:${port}`);
    assert.not.ok(egressAllowed(objects, pod, '10.20.1.5', 5432), `${component}: no port but the configured ones`);
  }
  // Narrowed: only the operator's ranges are open; an empty list is refused with the key named.
  const narrowed = await renderObjects({
    values: merge(external, { networkPolicy: { externalServices: { database: { cidrs: ['10.20.0.0/16'] }, redis: { cidrs: ['10.30.0.0/24'] }, rabbitmq: { cidrs: ['10.40.0.0/24'] } } } }),
  });
  const api = find(narrowed, 'Deployment', 'conduit-api').spec.template.metadata.labels;
  assert.ok(egressAllowed(narrowed, api, '10.20.1.5', 6432));
  assert.not.ok(egressAllowed(narrowed, api, '10.99.1.5', 6432), 'outside the database range');
  assert.ok(egressAllowed(narrowed, api, '10.30.0.9', 6380));
  assert.not.ok(egressAllowed(narrowed, api, '10.20.1.5', 6380), 'the database range does not open Redis');
  // Without these rules the app would be cut off (what the old chart rendered): the helper can say no.
  const none = await renderObjects({ values: { database: { mode: 'cnpg' } } });
  assert.not.ok(egressAllowed(none, find(none, 'Deployment', 'conduit-api').spec.template.metadata.labels, '10.20.1.5', 6380));
  for (const svc of ['database', 'redis', 'rabbitmq']) {
    const msg = await renderError({ values: merge(external, { networkPolicy: { externalServices: { [svc]: { cidrs: [] } } } }) });
    assert.match(msg, new RegExp(`^conduit: networkPolicy\\.externalServices\\.${svc}\\.cidrs is empty while ${svc}\\.mode is external`));
  }
  await renderObjects({ values: merge(external, { networkPolicy: { enabled: false, externalServices: { database: { cidrs: [] } } } }) });
});

test('S3 needs endpoint, bucket and a credentials Secret', async () => {
  assert.match(await renderError({ values: { mediaStorage: { type: 's3' } } }), /^conduit: mediaStorage\.type is s3 but mediaStorage\.s3\.endpoint or mediaStorage\.s3\.bucketName is empty/);
  assert.match(
    await renderError({ values: { mediaStorage: { type: 's3', s3: { endpoint: 'https://s3', bucketName: 'b' } } } }),
    /^conduit: mediaStorage\.type is s3 but mediaStorage\.s3\.existingSecret is empty/,
  );
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
