// The registry client: image references read as Docker and the kubelet read them, WWW-Authenticate
// challenges, docker config credentials, and the manifest check's answers against a small HTTP
// server on loopback that speaks the distribution API's bearer-token flow (the e2e suite covers a
// real registry with basic auth).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { redact } from '../../scripts/lib/core/redact.ts';
import {
  checkManifest,
  dockerConfigCredentials,
  isLoopbackRegistry,
  manifestReference,
  parseAuthChallenges,
  parseImageReference,
  registryBaseUrl,
  MANIFEST_ACCEPT,
} from '../../scripts/lib/adapters/registry.ts';

const DIGEST = 'sha256:' + 'ab'.repeat(32);

test('references: registry, repository, tag and digest', () => {
  assert.equal(parseImageReference('ghcr.io/knnlabs/conduit-http:master-7c3fd76'), {
    original: 'ghcr.io/knnlabs/conduit-http:master-7c3fd76',
    registry: 'ghcr.io',
    repository: 'knnlabs/conduit-http',
    tag: 'master-7c3fd76',
  });
  const withPort = parseImageReference('127.0.0.1:5000/conduit/conduit-admin:1.2.3');
  assert.equal([withPort.registry, withPort.repository, withPort.tag], ['127.0.0.1:5000', 'conduit/conduit-admin', '1.2.3']);
  const pinned = parseImageReference(`ghcr.io/knnlabs/conduit-webui:master-7c3fd76@${DIGEST}`);
  assert.equal([pinned.tag, pinned.digest, manifestReference(pinned)], ['master-7c3fd76', DIGEST, DIGEST], 'the digest is what is asked for');
  const byDigest = parseImageReference(`registry.example.com/a/b/c@${DIGEST}`);
  assert.equal([byDigest.repository, byDigest.tag, byDigest.digest], ['a/b/c', undefined, DIGEST]);
  assert.equal(parseImageReference('localhost/fixture').registry, 'localhost');
  assert.equal(parseImageReference('localhost:5000/fixture:1').registry, 'localhost:5000');
  assert.equal(parseImageReference('[::1]:5000/fixture:1').registry, '[::1]:5000');
});

test('references: Docker Hub defaults (docker.io, library/, latest) and its aliases', () => {
  const redis = parseImageReference('redis:7.4.6-alpine');
  assert.equal([redis.registry, redis.repository, redis.tag], ['docker.io', 'library/redis', '7.4.6-alpine']);
  assert.equal(parseImageReference('busybox').tag, 'latest', 'no tag and no digest means latest');
  assert.equal(parseImageReference('oliver006/redis_exporter:v1.74.0').repository, 'oliver006/redis_exporter');
  assert.equal(parseImageReference('docker.io/library/postgres:17.6-bookworm').repository, 'library/postgres');
  assert.equal(parseImageReference('docker.io/rclone/rclone:1.76.0').registry, 'docker.io');
  assert.equal(parseImageReference('index.docker.io/busybox:1.37.0').registry, 'docker.io');
  assert.equal(parseImageReference('index.docker.io/busybox:1.37.0').repository, 'library/busybox');
  // A first component without a dot, a port or "localhost" is a Docker Hub namespace, not a host.
  assert.equal(parseImageReference('knnlabs/conduit-http:1').registry, 'docker.io');
  assert.is(registryBaseUrl('docker.io'), 'https://registry-1.docker.io');
});

test('references that cannot be pulled are refused with the reason', () => {
  assert.throws(() => parseImageReference(''), /is empty/);
  assert.throws(() => parseImageReference('ghcr.io/KnnLabs/conduit-http:1'), /component "KnnLabs" must be lower-case/);
  assert.throws(() => parseImageReference('ghcr.io/knnlabs/conduit-http:-bad'), /the tag "-bad"/);
  assert.throws(() => parseImageReference('ghcr.io/knnlabs/conduit-http@sha256:xyz'), /digest "sha256:xyz" is not algorithm:hex/);
  assert.throws(() => parseImageReference('ghcr.io/'), /repository is empty/);
  assert.throws(() => parseImageReference('ghcr.io/a//b:1'), /component ""/);
});

test('plain HTTP for loopback registries only', () => {
  for (const h of ['127.0.0.1:5000', 'localhost:5000', 'localhost', '[::1]:5000', '127.1.2.3']) assert.ok(isLoopbackRegistry(h), h);
  for (const h of ['ghcr.io', '10.0.0.1:5000', 'localhost.example.com', '128.0.0.1']) assert.not.ok(isLoopbackRegistry(h), h);
  assert.is(registryBaseUrl('127.0.0.1:5000'), 'http://127.0.0.1:5000');
  assert.is(registryBaseUrl('ghcr.io'), 'https://ghcr.io');
});

test('WWW-Authenticate: bearer parameters, quoting, several challenges', () => {
  assert.equal(parseAuthChallenges('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:knnlabs/conduit-http:pull"'), [
    { scheme: 'bearer', params: { realm: 'https://ghcr.io/token', service: 'ghcr.io', scope: 'repository:knnlabs/conduit-http:pull' } },
  ]);
  assert.equal(parseAuthChallenges('Basic realm="Registry Realm"'), [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  assert.equal(parseAuthChallenges('basic REALM=registry , Bearer realm="https://auth.example.com/t?a=1,b",error="insufficient_scope"'), [
    { scheme: 'basic', params: { realm: 'registry' } },
    { scheme: 'bearer', params: { realm: 'https://auth.example.com/t?a=1,b', error: 'insufficient_scope' } },
  ]);
  assert.equal(parseAuthChallenges('Bearer realm="a \\"quoted\\" realm"')[0].params.realm, 'a "quoted" realm');
  assert.equal(parseAuthChallenges('Negotiate abc123==, Basic realm=x'), [
    { scheme: 'negotiate', params: {}, token68: 'abc123==' },
    { scheme: 'basic', params: { realm: 'x' } },
  ]);
  assert.equal(parseAuthChallenges(''), []);
});

test('docker config credentials: auths by host, the base64 auth field, Docker Hub keys; registered as secrets', () => {
  const config = {
    auths: {
      'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hub-pass-1234').toString('base64') },
      'ghcr.io': { username: 'octo', password: 'ghcr-pass-5678' },
      '127.0.0.1:5000': { auth: Buffer.from('local:with:colons').toString('base64') },
    },
  };
  assert.equal(dockerConfigCredentials(config, 'docker.io'), { username: 'hubuser', password: 'hub-pass-1234' });
  assert.equal(dockerConfigCredentials(config, 'ghcr.io'), { username: 'octo', password: 'ghcr-pass-5678' });
  assert.equal(dockerConfigCredentials(config, '127.0.0.1:5000'), { username: 'local', password: 'with:colons' });
  assert.is(dockerConfigCredentials(config, 'quay.io'), undefined);
  assert.is(dockerConfigCredentials({ 'ghcr.io': { username: 'old', password: 'dockercfg-pass' } }, 'ghcr.io')?.username, 'old', 'the older .dockercfg layout');
  assert.is(dockerConfigCredentials(null, 'ghcr.io'), undefined);
  assert.not.match(redact('ghcr-pass-5678 hub-pass-1234'), /pass-\d/);
});

/** A registry on loopback with the bearer flow: the token service wants user/pass, the manifest a token. */
async function bearerRegistry(): Promise<{ host: string; requests: { method: string; url: string; authorization?: string; accept?: string }[]; close: () => Promise<void> }> {
  const requests: { method: string; url: string; authorization?: string; accept?: string }[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization, accept: req.headers.accept });
    const host = req.headers.host!;
    if (req.url!.startsWith('/token')) {
      const u = new URL(req.url!, `http://${host}`);
      const anonymous = !req.headers.authorization;
      if (!anonymous && req.headers.authorization !== `Basic ${Buffer.from('robot:s3cret-pw').toString('base64')}`) return void res.writeHead(401).end();
      if (u.searchParams.get('service') !== 'test-registry') return void res.writeHead(400).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `tok-${anonymous ? 'anon' : 'robot'}-${u.searchParams.get('scope')}` }));
      return;
    }
    const m = /^\/v2\/(.+)\/manifests\/(.+)$/.exec(req.url!);
    const auth = req.headers.authorization ?? '';
    if (!m) return void res.writeHead(404).end();
    if (!auth.startsWith('Bearer ')) {
      res
        .writeHead(401, { 'www-authenticate': `Bearer realm="http://${host}/token",service="test-registry",scope="repository:${m[1]}:pull"`, 'content-type': 'application/json' })
        .end(req.method === 'GET' ? '{"errors":[{"code":"UNAUTHORIZED"}]}' : undefined);
      return;
    }
    const [repo, ref] = [m[1], m[2]];
    if (repo === 'private/app' && auth !== `Bearer tok-robot-repository:private/app:pull`) return void res.writeHead(401, { 'www-authenticate': 'Bearer realm="x"' }).end();
    if (repo === 'broken/app') return void res.writeHead(503).end();
    if (ref === 'v1' || ref === DIGEST)
      return void res.writeHead(200, { 'docker-content-digest': DIGEST, 'content-type': 'application/vnd.oci.image.index.v1+json' }).end(req.method === 'GET' ? '{}' : undefined);
    const body = JSON.stringify({
      errors: [{ code: repo === 'public/app' ? 'MANIFEST_UNKNOWN' : 'NAME_UNKNOWN', message: repo === 'public/app' ? 'manifest unknown' : 'repository name not known to registry' }],
    });
    res.writeHead(404, { 'content-type': 'application/json' }).end(req.method === 'GET' ? body : undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

test('manifest check: anonymous token, found with the digest, missing tag, unknown repository', async () => {
  const reg = await bearerRegistry();
  try {
    const found = await checkManifest(parseImageReference(`${reg.host}/public/app:v1`));
    assert.equal(found, { status: 'found', detail: 'HTTP 200', digest: DIGEST, authenticated: false });
    const head = reg.requests.filter((r) => r.method === 'HEAD');
    assert.is(head.length, 2, 'HEAD, 401, token, HEAD again');
    assert.is(head[0].accept, MANIFEST_ACCEPT);
    assert.match(head[0].accept!, /application\/vnd\.oci\.image\.index\.v1\+json/);
    assert.is(head[1].authorization, 'Bearer tok-anon-repository:public/app:pull');
    assert.ok(reg.requests.some((r) => r.url.startsWith('/token?') && !r.authorization));

    const missing = await checkManifest(parseImageReference(`${reg.host}/public/app:v2`));
    assert.is(missing.status, 'missing');
    assert.is(missing.detail, 'HTTP 404 MANIFEST_UNKNOWN: manifest unknown');
    const noRepo = await checkManifest(parseImageReference(`${reg.host}/nobody/app:v1x`));
    assert.is(noRepo.status, 'missing');
    assert.match(noRepo.detail, /NAME_UNKNOWN/);
    assert.is((await checkManifest(parseImageReference(`${reg.host}/public/app@${DIGEST}`))).status, 'found');
  } finally {
    await reg.close();
  }
});

test('manifest check: credentials go to the token service; wrong or absent ones are "denied", never "missing"', async () => {
  const reg = await bearerRegistry();
  try {
    const ref = parseImageReference(`${reg.host}/private/app:v1`);
    const ok = await checkManifest(ref, { credentials: { username: 'robot', password: 's3cret-pw' } });
    assert.equal([ok.status, ok.authenticated], ['found', true]);
    const wrong = await checkManifest(ref, { credentials: { username: 'robot', password: 'nope-nope' } });
    assert.is(wrong.status, 'denied');
    assert.match(wrong.detail, /credentials of the image pull Secret were refused/);
    assert.not.match(wrong.detail, /nope-nope|s3cret/);
    const anonymous = await checkManifest(ref);
    assert.is(anonymous.status, 'denied');
  } finally {
    await reg.close();
  }
});

test('manifest check: 5xx, refused connections, unknown hosts and timeouts are "unreachable", quickly', async () => {
  const reg = await bearerRegistry();
  try {
    const broken = await checkManifest(parseImageReference(`${reg.host}/broken/app:v1`));
    assert.equal([broken.status, broken.detail], ['unreachable', 'HTTP 503 (registry error)']);
  } finally {
    await reg.close();
  }
  // A port nothing listens on.
  const probe = http.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const freePort = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const refused = await checkManifest(parseImageReference(`127.0.0.1:${freePort}/public/app:v1`));
  assert.equal([refused.status, refused.detail], ['unreachable', 'connection refused']);
  const dns = await checkManifest(parseImageReference('registry.invalid/a/b:1'));
  assert.is(dns.status, 'unreachable');
  // A server that accepts and never answers: the check gives up at its timeout.
  const silent = http.createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  try {
    const started = Date.now();
    const slow = await checkManifest(parseImageReference(`127.0.0.1:${(silent.address() as AddressInfo).port}/a/b:1`), { timeoutMs: 300 });
    assert.equal([slow.status, slow.detail], ['unreachable', 'no answer in time']);
    assert.ok(Date.now() - started < 3000);
  } finally {
    silent.closeAllConnections();
    await new Promise((r) => silent.close(r));
  }
});

test.run();
