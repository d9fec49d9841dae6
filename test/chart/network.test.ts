// Ingress (streaming-safe, same-origin routing, /hubs affinity), Gateway API routes, NetworkPolicies.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { find, merge, ofKind, renderObjects, S3, WEBUI_ON, type K8sObject } from './helpers.ts';

const HOSTS = {
  ...WEBUI_ON,
  global: { environment: 'staging' },
  ingress: { enabled: true, tls: { clusterIssuer: 'letsencrypt' }, hosts: { api: 'api.example.com', admin: 'admin.example.com', webui: 'ui.example.com' } },
};

test('Ingresses are streaming-safe and carry the cert-manager issuer', async () => {
  const objects = await renderObjects({ values: HOSTS });
  for (const name of ['conduit-api', 'conduit-admin', 'conduit-webui', 'conduit-webui-api']) {
    const a = find(objects, 'Ingress', name).metadata.annotations!;
    assert.is(a['nginx.ingress.kubernetes.io/proxy-buffering'], 'off', name);
    assert.is(a['nginx.ingress.kubernetes.io/proxy-request-buffering'], 'off');
    assert.ok(Number(a['nginx.ingress.kubernetes.io/proxy-read-timeout']) >= 600);
    assert.ok(Number(a['nginx.ingress.kubernetes.io/proxy-send-timeout']) >= 600);
    assert.is(a['nginx.ingress.kubernetes.io/proxy-body-size'], '30m');
    assert.is(a['cert-manager.io/cluster-issuer'], name === 'conduit-webui-api' ? undefined : 'letsencrypt', `${name}: one certificate request per TLS Secret`);
  }
  assert.equal(find(objects, 'Ingress', 'conduit-webui-api').spec.tls, find(objects, 'Ingress', 'conduit-webui').spec.tls, 'the same-origin Ingress reuses the WebUI certificate');
  const api = find(objects, 'Ingress', 'conduit-api');
  assert.equal(api.spec.tls, [{ hosts: ['api.example.com'], secretName: 'conduit-api-tls' }]);
  assert.is(api.spec.ingressClassName, 'nginx');
  assert.is(api.metadata.annotations!['nginx.ingress.kubernetes.io/affinity'], undefined, 'no affinity at one replica');
});

test('the WebUI host sends /v1 and /hubs to the API (same origin)', async () => {
  const objects = await renderObjects({ values: HOSTS });
  const rule = find(objects, 'Ingress', 'conduit-webui-api').spec.rules[0];
  assert.is(rule.host, 'ui.example.com');
  assert.equal(
    rule.http.paths.map((p: { path: string; backend: { service: { name: string } } }) => [p.path, p.backend.service.name]),
    [
      ['/v1', 'conduit-api'],
      ['/hubs', 'conduit-api'],
    ],
  );
  assert.is(find(objects, 'Ingress', 'conduit-webui').spec.rules[0].http.paths[0].backend.service.name, 'conduit-webui');
});

test('more than one API replica pins /hubs clients with a cookie scoped to /hubs', async () => {
  const objects = await renderObjects({ values: merge(S3, HOSTS, { api: { replicaCount: 3 } }) });
  for (const name of ['conduit-api', 'conduit-webui-api']) {
    const a = find(objects, 'Ingress', name).metadata.annotations!;
    assert.is(a['nginx.ingress.kubernetes.io/affinity'], 'cookie', name);
    assert.is(a['nginx.ingress.kubernetes.io/session-cookie-path'], '/hubs');
  }
  assert.is(find(objects, 'Ingress', 'conduit-admin').metadata.annotations!['nginx.ingress.kubernetes.io/affinity'], undefined);
});

test('Gateway API: HTTPRoutes with long timeouts and the same-origin rule', async () => {
  const objects = await renderObjects({ values: merge(HOSTS, { ingress: { enabled: false }, gatewayApi: { enabled: true, parentRefs: [{ name: 'public', namespace: 'gateways' }] } }) });
  assert.is(ofKind(objects, 'Ingress').length, 0);
  const ui = find(objects, 'HTTPRoute', 'conduit-webui');
  assert.equal(ui.spec.parentRefs, [{ name: 'public', namespace: 'gateways' }]);
  assert.equal(
    ui.spec.rules[0].matches.map((m: { path: { value: string } }) => m.path.value),
    ['/v1', '/hubs'],
  );
  assert.is(ui.spec.rules[0].backendRefs[0].name, 'conduit-api');
  assert.is(ui.spec.rules[1].backendRefs[0].name, 'conduit-webui');
  assert.is(find(objects, 'HTTPRoute', 'conduit-api').spec.rules[0].timeouts.request, '600s');
});

function np(objects: K8sObject[], name: string) {
  return find(objects, 'NetworkPolicy', name).spec;
}
const component = (peer: { podSelector?: { matchLabels?: Record<string, string> } }) => peer.podSelector?.matchLabels?.['app.kubernetes.io/component'];

test('NetworkPolicies are on by default and deny everything not listed', async () => {
  const objects = await renderObjects({ values: WEBUI_ON });
  for (const c of ['api', 'admin', 'webui', 'redis', 'test']) assert.equal(np(objects, `conduit-${c}`).policyTypes, ['Ingress', 'Egress'], c);
  // No rules at all (not an empty list, which the API server drops): all egress denied.
  assert.not.ok('egress' in np(objects, 'conduit-redis'));
  assert.not.ok('ingress' in np(objects, 'conduit-test'));
  const redisFrom = np(objects, 'conduit-redis').ingress[0].from.map(component);
  assert.equal(redisFrom, ['api', 'admin']);
});

test('the helm test pods reach DNS and the http port of each enabled component, nothing else', async () => {
  const egress = np(await renderObjects({ values: WEBUI_ON }), 'conduit-test').egress;
  assert.is(egress.length, 2);
  assert.equal(
    egress[0].ports.map((p: { port: number }) => p.port),
    [53, 53],
  );
  assert.equal(egress[1].to.map(component), ['api', 'admin', 'webui']);
  assert.equal(egress[1].ports, [{ protocol: 'TCP', port: 'http' }]);
  const noUi = np(await renderObjects({ values: { webui: { enabled: false } } }), 'conduit-test').egress;
  assert.equal(noUi[1].to.map(component), ['api', 'admin']);
});

test('NetworkPolicy: ingress controller, WebUI and test pods in; monitoring to the API metrics port', async () => {
  const objects = await renderObjects({ values: WEBUI_ON });
  const api = np(objects, 'conduit-api');
  const from = api.ingress[0].from;
  assert.equal(from[0].namespaceSelector.matchLabels, { 'kubernetes.io/metadata.name': 'ingress-nginx' });
  assert.equal(from.slice(1).map(component), ['test', 'webui']);
  assert.equal(api.ingress[1].from[0].namespaceSelector.matchLabels, { 'kubernetes.io/metadata.name': 'monitoring' });
  assert.equal(api.ingress[1].ports, [{ protocol: 'TCP', port: 'http' }]);
  assert.is(np(objects, 'conduit-admin').ingress.length, 1, 'no scraping of Admin unless its ServiceMonitor is on');
  assert.equal(np(objects, 'conduit-webui').ingress[0].from.slice(1).map(component), ['test']);
});

test('NetworkPolicy egress: DNS, data services, and the internet on 443 for the API only', async () => {
  const objects = await renderObjects({ values: WEBUI_ON });
  const ports = (rules: { ports: { port: number }[] }[]) => rules.map((r) => r.ports.map((p) => p.port).join(','));
  assert.equal(ports(np(objects, 'conduit-api').egress), ['53,53', '5432', '6379', '5672', '443']);
  assert.equal(ports(np(objects, 'conduit-admin').egress), ['53,53', '5432', '6379', '5672']);
  assert.equal(ports(np(objects, 'conduit-webui').egress), ['53,53', '8080', '443'], 'Clerk, which the WebUI always needs now');
  const internet = np(objects, 'conduit-api').egress[4].to[0].ipBlock;
  assert.is(internet.cidr, '0.0.0.0/0');
  assert.ok(internet.except.includes('10.0.0.0/8'), 'private ranges excluded');
  const pg = np(objects, 'conduit-api').egress[1].to[0].podSelector.matchLabels;
  assert.equal(pg, { 'cnpg.io/cluster': 'conduit-pg' });
  const custom = await renderObjects({ values: { networkPolicy: { apiEgress: { cidrs: ['203.0.113.0/24'], except: [], ports: [443, 8443] } } } });
  const rule = np(custom, 'conduit-api').egress[4];
  assert.equal(rule.to, [{ ipBlock: { cidr: '203.0.113.0/24' } }]);
  assert.equal(
    rule.ports.map((p: { port: number }) => p.port),
    [443, 8443],
  );
  assert.is(ofKind(await renderObjects({ values: { networkPolicy: { enabled: false } } }), 'NetworkPolicy').length, 0);
});

test.run();
