// The three application components: one shared pod template, restricted security, probes, graceful
// shutdown, env names the application reads, labels and checksums.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { configEnv, container, envOf, find, ofKind, renderObjects, RELEASE, WEBUI_ON } from './helpers.ts';

const COMPONENTS = [
  { name: 'api', port: 8080, uid: 1000, dirs: ['/tmp', '/home/appuser'], readiness: '/health/ready' },
  { name: 'admin', port: 8080, uid: 1000, dirs: ['/tmp', '/home/appuser'], readiness: '/health' },
  { name: 'webui', port: 3000, uid: 1001, dirs: ['/tmp', '/app/.next/cache'], readiness: '/api/health' },
];

test('defaults render every component with its Deployment, Service, PDB, ServiceAccount and ConfigMap', async () => {
  const objects = await renderObjects({ values: WEBUI_ON });
  for (const c of COMPONENTS) {
    for (const kind of ['Deployment', 'Service', 'PodDisruptionBudget', 'ServiceAccount', 'ConfigMap']) {
      const name = kind === 'ConfigMap' ? `${RELEASE}-${c.name}-env` : `${RELEASE}-${c.name}`;
      find(objects, kind, name);
    }
  }
  assert.is(ofKind(objects, 'HorizontalPodAutoscaler').length, 0, 'no HPA by default');
});

test('pods follow Pod Security "restricted" with the app user, writable emptyDirs and no token', async () => {
  const objects = await renderObjects({ values: WEBUI_ON });
  for (const c of COMPONENTS) {
    const pod = find(objects, 'Deployment', `${RELEASE}-${c.name}`).spec.template.spec;
    assert.is(pod.automountServiceAccountToken, false, c.name);
    assert.is(pod.enableServiceLinks, false, c.name);
    assert.is(pod.securityContext.runAsNonRoot, true);
    assert.is(pod.securityContext.runAsUser, c.uid, `${c.name} uid`);
    assert.is(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
    const sc = pod.containers[0].securityContext;
    assert.equal(
      [sc.runAsNonRoot, sc.readOnlyRootFilesystem, sc.allowPrivilegeEscalation, sc.privileged, sc.capabilities.drop, sc.seccompProfile.type],
      [true, true, false, false, ['ALL'], 'RuntimeDefault'],
      c.name,
    );
    const mounts = pod.containers[0].volumeMounts.map((m: { mountPath: string }) => m.mountPath);
    assert.equal(mounts, c.dirs, `${c.name} writable dirs`);
    for (const v of pod.volumes) assert.ok(v.emptyDir, `${c.name} volume ${v.name} is an emptyDir`);
    assert.is(find(objects, 'ServiceAccount', `${RELEASE}-${c.name}`).automountServiceAccountToken, false);
  }
});

test('ports, probes, preStop and grace period fit the application', async () => {
  const objects = await renderObjects({ values: WEBUI_ON });
  for (const c of COMPONENTS) {
    const k = container(objects, c.name);
    assert.equal(k.ports, [{ name: 'http', containerPort: c.port, protocol: 'TCP' }], c.name);
    assert.is(k.readinessProbe.httpGet.path, c.readiness, `${c.name} readiness`);
    assert.is(k.readinessProbe.httpGet.port, 'http');
    assert.ok(k.readinessProbe.periodSeconds >= 10, 'readiness period >= 10 s (API /health opens a Redis connection per call)');
    if (c.name !== 'webui') {
      assert.is(k.startupProbe.httpGet.path, '/health/live');
      assert.ok(k.startupProbe.periodSeconds * k.startupProbe.failureThreshold >= 300, 'startup allows >= 5 min of migrations');
      assert.is(k.livenessProbe.httpGet.path, '/health/live');
    }
    const sleep = k.lifecycle.preStop.sleep.seconds;
    assert.ok(sleep >= 10 && sleep <= 15, `${c.name} preStop ${sleep}`);
    const pod = find(objects, 'Deployment', `${RELEASE}-${c.name}`).spec.template.spec;
    assert.ok(pod.terminationGracePeriodSeconds >= 60, `${c.name} grace`);
    assert.equal(find(objects, 'Service', `${RELEASE}-${c.name}`).spec.ports[0], { name: 'http', port: c.port, targetPort: 'http', protocol: 'TCP' });
  }
});

test('rolling updates never lower capacity and spread over zones and nodes', async () => {
  const objects = await renderObjects({ values: WEBUI_ON });
  for (const c of COMPONENTS) {
    const d = find(objects, 'Deployment', `${RELEASE}-${c.name}`);
    assert.is(d.spec.strategy.rollingUpdate.maxUnavailable, 0);
    const keys = d.spec.template.spec.topologySpreadConstraints.map((t: { topologyKey: string }) => t.topologyKey);
    assert.equal(keys, ['topology.kubernetes.io/zone', 'kubernetes.io/hostname']);
  }
});

test('the API and Admin read DATABASE_URL, REDIS_URL, the backend key and RabbitMQ settings under their real names', async () => {
  const objects = await renderObjects({ values: WEBUI_ON });
  for (const c of ['api', 'admin']) {
    const env = envOf(container(objects, c));
    const cfg = configEnv(objects, c);
    assert.match(env.get('DATABASE_URL')!.value!, /^postgres:\/\/conduit:\$\(CONDUIT_DATABASE_PASSWORD\)@conduit-pg-rw\.conduit\.svc:5432\/conduit\?Pooling=true&MinPoolSize=\d+&MaxPoolSize=\d+$/);
    assert.match(env.get('REDIS_URL')!.value!, /^redis:\/\/default:\$\(CONDUIT_REDIS_PASSWORD\)@conduit-redis\.conduit\.svc:6379$/);
    assert.ok(env.get('CONDUIT_API_TO_API_BACKEND_AUTH_KEY')!.valueFrom.secretKeyRef, 'backend key from a Secret');
    assert.ok(env.get('CONDUITLLM__RABBITMQ__PASSWORD')!.valueFrom.secretKeyRef);
    assert.ok(env.get('CONDUITLLM__RABBITMQ__USERNAME')!.valueFrom.secretKeyRef);
    assert.is(cfg.CONDUITLLM__RABBITMQ__HOST, 'conduit-rabbitmq.conduit.svc');
    assert.is(cfg.CONDUITLLM__RABBITMQ__PORT, '5672');
    assert.is(cfg.CONDUITLLM__RABBITMQ__VHOST, '/');
    assert.is(cfg.ASPNETCORE_ENVIRONMENT, 'Production');
    // Names the application never reads must not appear.
    for (const dead of ['CONDUIT_MASTER_KEY', 'ConnectionStrings__DefaultConnection', 'REDIS_URL_SIGNALR', 'CONDUIT_REDIS_INSTANCE_NAME', 'FORCE_RECREATE_DB_ON_FAILURE']) {
      assert.not.ok(env.has(dead) || dead in cfg, `${c} sets ${dead}`);
    }
    // $(VAR) references only work for variables defined earlier in the list.
    const names = container(objects, c).env.map((e: { name: string }) => e.name);
    assert.ok(names.indexOf('CONDUIT_DATABASE_PASSWORD') < names.indexOf('DATABASE_URL'));
    assert.ok(names.indexOf('CONDUIT_REDIS_PASSWORD') < names.indexOf('REDIS_URL'));
  }
  assert.is(configEnv(objects, 'admin').CONDUIT_ENABLE_HTTPS_REDIRECTION, 'false');
});

test('the backend key is the same Secret key on all three components', async () => {
  const objects = await renderObjects({ values: WEBUI_ON });
  const refs = ['api', 'admin', 'webui'].map((c) => JSON.stringify(envOf(container(objects, c)).get('CONDUIT_API_TO_API_BACKEND_AUTH_KEY')!.valueFrom));
  assert.is(new Set(refs).size, 1, refs.join(' '));
});

test('the WebUI gets in-cluster and browser-facing API URLs', async () => {
  const cfg = configEnv(await renderObjects({ values: WEBUI_ON }), 'webui');
  assert.is(cfg.CONDUIT_API_BASE_URL, 'http://conduit-api.conduit.svc:8080');
  assert.is(cfg.CONDUIT_ADMIN_API_BASE_URL, 'http://conduit-admin.conduit.svc:8080');
  assert.ok(cfg.CONDUIT_API_EXTERNAL_URL && cfg.CONDUIT_ADMIN_API_EXTERNAL_URL);
  const hosted = configEnv(
    await renderObjects({ values: { ...WEBUI_ON, global: { environment: 'staging' }, ingress: { enabled: true, hosts: { webui: 'ui.example.com', admin: 'admin.example.com' } } } }),
    'webui',
  );
  assert.is(hosted.CONDUIT_API_EXTERNAL_URL, 'https://ui.example.com', 'same origin as the WebUI');
  assert.is(hosted.CONDUIT_ADMIN_API_EXTERNAL_URL, 'https://admin.example.com');
});

test('recommended labels on every object; checksums roll pods when configuration changes', async () => {
  const objects = await renderObjects({ values: WEBUI_ON });
  for (const o of objects) {
    const l = o.metadata.labels ?? {};
    for (const k of ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/component', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/version', 'helm.sh/chart']) {
      assert.ok(l[k], `${o.kind}/${o.metadata.name} lacks ${k}`);
    }
  }
  const before = find(objects, 'Deployment', 'conduit-api').spec.template.metadata.annotations['checksum/config'];
  const changed = await renderObjects({ values: { api: { env: { LOG_LEVEL: 'Debug' } } } });
  const after = find(changed, 'Deployment', 'conduit-api').spec.template.metadata.annotations['checksum/config'];
  assert.is.not(before, after);
  assert.is(configEnv(changed, 'api').LOG_LEVEL, 'Debug');
  assert.is(
    find(changed, 'Deployment', 'conduit-admin').spec.template.metadata.annotations['checksum/config'],
    find(objects, 'Deployment', 'conduit-admin').spec.template.metadata.annotations['checksum/config'],
    'other components keep their checksum',
  );
});

test('images: appVersion by default, digest wins, global registry overrides', async () => {
  const objects = await renderObjects({ values: WEBUI_ON });
  assert.match(container(objects, 'api').image, /^ghcr\.io\/knnlabs\/conduit-http:master-[0-9a-f]{7}$/);
  const digest = 'sha256:' + 'a'.repeat(64);
  const o2 = await renderObjects({
    values: { ...WEBUI_ON, global: { imageRegistry: 'mirror.example.com', imagePullSecrets: ['mirror'] }, admin: { image: { digest, pullSecrets: ['admin-only', 'mirror'] } } },
  });
  assert.equal(find(o2, 'Deployment', 'conduit-admin').spec.template.spec.imagePullSecrets, [{ name: 'mirror' }, { name: 'admin-only' }]);
  assert.equal(find(o2, 'Deployment', 'conduit-api').spec.template.spec.imagePullSecrets, [{ name: 'mirror' }]);
  assert.is(find(await renderObjects({ values: WEBUI_ON }), 'Deployment', 'conduit-api').spec.template.spec.imagePullSecrets, undefined);
  assert.is(container(o2, 'admin').image, `mirror.example.com/knnlabs/conduit-admin@${digest}`);
  assert.match(container(o2, 'webui').image, /^mirror\.example\.com\/knnlabs\/conduit-webui:/);
});

test.run();
