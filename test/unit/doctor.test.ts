// tools.ts doctor: the verdict from made-up facts (what is required when, and the fix for each
// problem), the probes running at once, and the URL probe against real loopback servers.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { collectFacts, evaluate, GIB, probeUrl, proxyLookupUrl, renderChecks, verdict, type Check, type DoctorFacts, type DoctorProbes } from '../../scripts/lib/engines/tools.ts';
import { firstProxy, goVersionAtLeast, requiredGoVersion } from '../../scripts/lib/adapters/golang.ts';
import type { ToolStatus } from '../../scripts/lib/adapters/tools.ts';

const TOOL_NAMES = ['helm', 'kubectl', 'etcd'];
const tools = (state: ToolStatus['state'], names = TOOL_NAMES, downloadable = true): DoctorFacts['tools'] =>
  names.map((name) => ({ name, version: '1.0.0', path: `/cache/tools/${name}/1.0.0/${name}`, state, description: name, downloadable }));

/** A machine with everything: every tool cached, Go, proxy and release hosts reachable, Docker, a running cluster. */
function healthy(): DoctorFacts {
  return {
    node: { version: '20.20.2', required: '>=20.11' },
    go: { path: '/usr/local/go/bin/go', version: '1.26.8', proxy: 'https://proxy.golang.org,direct', cache: '/root/.cache/go-build', modCache: '/root/go/pkg/mod', required: '1.26.0' },
    goProxy: { setting: 'https://proxy.golang.org,direct', url: 'https://proxy.golang.org', reachable: true, status: 200, ms: 40 },
    engines: { docker: { bin: 'docker', client: true, server: '27.3.1', buildx: true, compose: true }, podman: { bin: 'podman', compose: false, runc: false } },
    disk: { cache: { path: '/cache', measured: '/cache', freeBytes: 50 * GIB }, goCache: { path: '/root/.cache/go-build', measured: '/root/.cache/go-build', freeBytes: 50 * GIB } },
    tools: tools('installed'),
    settings: { toolsSource: 'auto', noToolInstall: false, cacheDir: '/cache', platform: 'linux/amd64' },
    releaseHosts: ['get.helm.sh', 'dl.k8s.io'].map((host) => ({ host, url: `https://${host}/`, reachable: true, status: 200, ms: 30 })),
    cluster: { created: true, running: true, version: 'v1.36.3', nodes: 3, readyNodes: 3 },
  };
}

function judge(change: (f: DoctorFacts) => void): { checks: Record<string, Check>; exitCode: number } {
  const f = healthy();
  change(f);
  const list = evaluate(f);
  return { checks: Object.fromEntries(list.map((c) => [c.id, c])), exitCode: verdict(list).exitCode };
}

const offline = (f: DoctorFacts) => f.releaseHosts.forEach((h) => Object.assign(h, { reachable: false, status: undefined, error: 'ENOTFOUND' }));
const noGo = (f: DoctorFacts) => (f.go = { error: 'go is not on the PATH', required: '1.26.0' });

test('a complete machine: every check passes, exit 0', () => {
  const f = healthy();
  const checks = evaluate(f);
  assert.equal(
    checks.map((c) => c.id),
    ['node', 'tools', 'go', 'goproxy', 'release-hosts', 'disk', 'engine', 'cluster'],
  );
  assert.equal(
    checks.filter((c) => c.status !== 'ok').map((c) => c.id),
    [],
  );
  assert.equal(verdict(checks), { ok: true, exitCode: 0, failed: [], warnings: [] });
  assert.match(renderChecks(checks), /Everything required is there\.$/);
  assert.not.match(renderChecks(checks), /fix:/);
});

test('Node older than the engines range fails with how to get a newer one', () => {
  const { checks, exitCode } = judge((f) => (f.node.version = '20.10.0'));
  assert.is(checks.node.status, 'fail');
  assert.match(checks.node.fix!, /Node\.js 20\.11 or newer/);
  assert.is(exitCode, 1);
});

test('missing tools with Go and the module proxy but no release host: built on first use (warning), Go and proxy become required', () => {
  const { checks, exitCode } = judge((f) => {
    f.tools = [...tools('installed', ['helm']), ...tools('missing', ['kubectl', 'etcd'])];
    offline(f);
  });
  assert.is(checks.tools.status, 'warn');
  assert.match(checks.tools.summary, /1 of 3 in place; missing: kubectl, etcd; they are built from source on first use/);
  assert.is(checks.tools.fix, 'npx zx scripts/tools.ts install kubectl etcd');
  assert.is(checks.go.required, true);
  assert.is(checks.goproxy.required, true);
  assert.is(checks['release-hosts'].status, 'warn');
  assert.match(checks['release-hosts'].summary, /0 of 2 reachable; unreachable: get\.helm\.sh \(ENOTFOUND\), dl\.k8s\.io \(ENOTFOUND\)/);
  assert.is(exitCode, 0);
});

test('missing tools, no Go, no release host: tools and Go fail with their fixes, exit 1', () => {
  const { checks, exitCode } = judge((f) => {
    f.tools = tools('missing');
    offline(f);
    noGo(f);
  });
  assert.is(checks.tools.status, 'fail');
  assert.match(checks.tools.fix!, /^Install Go \(see Go\), then: npx zx scripts\/tools\.ts install helm kubectl etcd$/);
  assert.is(checks.go.status, 'fail');
  assert.match(checks.go.summary, /go is not on the PATH \(helm, kubectl, etcd can only be built from source\)/);
  assert.match(checks.go.fix!, /Go >= 1\.26\.0 from https:\/\/go\.dev\/dl\//);
  assert.equal(verdict(Object.values(checks)).failed, ['tools', 'go']);
  assert.is(exitCode, 1);
});

test('missing tools, no Go, release hosts reachable: downloaded (warning), Go optional', () => {
  const { checks, exitCode } = judge((f) => {
    f.tools = tools('missing');
    noGo(f);
  });
  assert.is(checks.tools.status, 'warn');
  assert.match(checks.tools.summary, /downloaded on first use/);
  assert.is(checks.go.status, 'warn');
  assert.is(checks.go.required, false);
  assert.match(checks.go.summary, /only needed if a download fails/);
  assert.is(exitCode, 0);
});

test('a Go older than the wrapper modules declare counts as no Go', () => {
  const { checks, exitCode } = judge((f) => {
    f.tools = tools('missing');
    offline(f);
    f.go.version = '1.25.4';
  });
  assert.is(checks.go.status, 'fail');
  assert.match(checks.go.summary, /1\.25\.4 at \/usr\/local\/go\/bin\/go is older than 1\.26\.0/);
  assert.is(exitCode, 1);
});

test('CONDUIT_TOOLS_SOURCE=build ignores the release hosts; =download ignores Go', () => {
  const build = judge((f) => {
    f.tools = tools('missing');
    f.settings.toolsSource = 'build';
    noGo(f);
  });
  assert.is(build.checks['release-hosts'].status, 'skip');
  assert.is(build.checks.tools.status, 'fail');
  assert.is(build.checks.go.status, 'fail');
  const download = judge((f) => {
    f.tools = tools('missing');
    f.settings.toolsSource = 'download';
    offline(f);
  });
  assert.is(download.checks.tools.status, 'fail');
  assert.match(download.checks.tools.fix!, /^Make the release hosts reachable \(see release hosts\), then: npx zx scripts\/tools\.ts install/);
  assert.is(download.checks.go.required, false);
  assert.is(download.exitCode, 1);
});

test('a tool without a release download (otelcol) needs a source build even when the release hosts answer', () => {
  const withGo = judge((f) => (f.tools = [...tools('missing', ['helm', 'kubectl']), ...tools('missing', ['otelcol'], false)]));
  assert.is(withGo.checks.tools.status, 'warn');
  assert.match(withGo.checks.tools.summary, /missing: helm, kubectl, otelcol; helm, kubectl: downloaded; otelcol: built from source on first use/);
  assert.is(withGo.checks.go.required, true);
  const noGoAtAll = judge((f) => {
    f.tools = [...tools('missing', ['helm']), ...tools('missing', ['otelcol'], false)];
    noGo(f);
  });
  assert.is(noGoAtAll.checks.tools.status, 'fail');
  assert.match(noGoAtAll.checks.tools.summary, /no way to get otelcol: no download and no source build is possible/);
  assert.match(noGoAtAll.checks.go.summary, /otelcol can only be built from source/);
  assert.equal(verdict(Object.values(noGoAtAll.checks)).failed, ['tools', 'go']);
  const downloadOnly = judge((f) => {
    f.tools = tools('missing', ['otelcol'], false);
    f.settings.toolsSource = 'download';
  });
  assert.match(downloadOnly.checks.tools.fix!, /^export CONDUIT_TOOLS_SOURCE=auto \(otelcol: no release download, built from source\), then:/);
});

test('CONDUIT_TOOLS_MIRROR replaces the release hosts; a platform without downloads skips them', () => {
  const mirror = judge((f) => {
    f.settings.mirror = 'https://mirror.internal/tools';
    f.releaseHosts = [{ host: 'https://mirror.internal/tools', url: 'https://mirror.internal/tools/', reachable: false, error: 'ECONNREFUSED', ms: 3 }];
    f.tools = tools('missing');
  });
  assert.is(mirror.checks['release-hosts'].title, 'release mirror');
  assert.match(mirror.checks['release-hosts'].summary, /CONDUIT_TOOLS_MIRROR https:\/\/mirror\.internal\/tools is unreachable \(ECONNREFUSED\)/);
  assert.match(mirror.checks['release-hosts'].fix!, /CONDUIT_TOOLS_MIRROR/);
  assert.match(mirror.checks.tools.summary, /they are built from source on first use/);
  const other = judge((f) => {
    f.settings.platform = 'darwin/arm64';
    f.releaseHosts = [];
  });
  assert.is(other.checks['release-hosts'].status, 'skip');
  assert.match(other.checks['release-hosts'].summary, /no official downloads for darwin\/arm64/);
});

test('CONDUIT_NO_TOOL_INSTALL=1 with a missing tool, and an override that points nowhere, fail with the exact fix', () => {
  const frozen = judge((f) => {
    f.tools = [...tools('installed', ['helm']), ...tools('missing', ['kubectl'])];
    f.settings.noToolInstall = true;
  });
  assert.is(frozen.checks.tools.status, 'fail');
  assert.is(frozen.checks.tools.fix, 'unset CONDUIT_NO_TOOL_INSTALL && npx zx scripts/tools.ts install kubectl');
  const override = judge((f) => (f.tools = [{ ...tools('override-missing', ['helm3'])[0], path: '/opt/helm' }]));
  assert.is(override.checks.tools.status, 'fail');
  assert.match(override.checks.tools.summary, /helm3: \/opt\/helm does not exist/);
  assert.match(override.checks.tools.fix!, /^unset CONDUIT_TOOL_HELM3 /);
  assert.is(override.exitCode, 1);
});

test('GOPROXY=off or an unreachable proxy fails only when a build is needed', () => {
  const off = (f: DoctorFacts) => (f.goProxy = { setting: 'off', url: '', why: 'GOPROXY=off: no module can be downloaded', reachable: false, ms: 0 });
  const needed = judge((f) => {
    f.tools = tools('missing');
    offline(f);
    off(f);
  });
  assert.is(needed.checks.goproxy.status, 'fail');
  assert.is(needed.checks.goproxy.fix, 'go env -w GOPROXY=https://proxy.golang.org,direct');
  assert.match(needed.checks.tools.fix!, /^Make the Go module proxy reachable/);
  const cached = judge((f) => {
    off(f);
    offline(f);
    noGo(f);
  });
  assert.equal([cached.checks.goproxy.status, cached.checks.go.status, cached.checks.tools.status], ['warn', 'warn', 'ok']);
  assert.match(cached.checks.go.summary, /none is missing/);
  assert.is(cached.exitCode, 0);
  const refused = judge((f) => (f.goProxy = { setting: 'https://mirror.internal', url: 'https://mirror.internal', reachable: false, status: 404, error: 'HTTP 404', ms: 5 }));
  assert.match(refused.checks.goproxy.summary, /https:\/\/mirror\.internal answered HTTP 404; GOPROXY=https:\/\/mirror\.internal/);
});

test('disk: too little room for the cache fails; a cold source build with small Go caches warns', () => {
  const full = judge((f) => (f.disk.cache.freeBytes = 0.5 * GIB));
  assert.is(full.checks.disk.status, 'fail');
  assert.match(full.checks.disk.fix!, /CONDUIT_CACHE_DIR/);
  const toolsToCome = judge((f) => {
    f.tools = tools('missing');
    f.disk.cache.freeBytes = 1.5 * GIB;
  });
  assert.is(toolsToCome.checks.disk.status, 'fail');
  assert.match(toolsToCome.checks.disk.summary, /needs 2\.0 GiB/);
  const smallGoCache = judge((f) => {
    f.tools = tools('missing');
    offline(f);
    f.disk.goCache!.freeBytes = 5 * GIB;
  });
  assert.is(smallGoCache.checks.disk.status, 'warn');
  assert.match(smallGoCache.checks.disk.fix!, /go env -w GOCACHE=/);
  assert.is(smallGoCache.exitCode, 0);
});

test('container engine: optional, with the package or setting that makes it work', () => {
  const none = judge((f) => (f.engines = { docker: { bin: 'docker', client: false, buildx: false, compose: false }, podman: { bin: 'podman', compose: false, runc: false } }));
  assert.equal([none.checks.engine.status, none.checks.engine.required, none.exitCode], ['warn', false, 0]);
  assert.match(none.checks.engine.fix!, /apt-get install podman buildah runc podman-compose/);
  const noDaemon = judge((f) => (f.engines = { docker: { bin: 'docker', client: true, buildx: false, compose: false }, podman: { bin: 'podman', compose: false, runc: false } }));
  assert.match(noDaemon.checks.engine.summary, /docker cannot reach an engine/);
  assert.match(noDaemon.checks.engine.fix!, /^Start the Docker engine/);
  const podman = (p: Partial<DoctorFacts['engines']['podman']>, conf?: string) =>
    judge(
      (f) =>
        (f.engines = {
          docker: { bin: 'docker', client: false, buildx: false, compose: false },
          podman: { bin: 'podman', version: '4.3.1', compose: true, runc: true, runtime: 'runc', ...p },
          ...(conf ? { containersConf: conf } : {}),
        }),
    ).checks.engine;
  assert.is(podman({ compose: false }).fix, 'apt-get install podman-compose');
  assert.is(podman({ runc: false }).fix, 'apt-get install runc');
  assert.match(podman({ runtime: 'crun' }).summary, /CONTAINERS_CONF=test\/fixtures\/containers\.conf/);
  assert.not.match(podman({ runtime: 'crun' }, '/etc/mine.conf').summary, /test\/fixtures/);
  assert.is(podman({}).status, 'ok');
});

test('local cluster: informative, never required', () => {
  assert.match(judge((f) => (f.cluster = { created: false, running: false, nodes: 0, readyNodes: 0 })).checks.cluster.summary, /not created yet/);
  const stopped = judge((f) => (f.cluster = { created: true, running: false, nodes: 0, readyNodes: 0 }));
  assert.equal([stopped.checks.cluster.status, stopped.checks.cluster.fix, stopped.exitCode], ['warn', 'npx zx scripts/cluster.ts up', 0]);
});

test('the report shows a fix line under each problem and ends with the verdict', () => {
  const f = healthy();
  f.tools = tools('missing');
  offline(f);
  noGo(f);
  const text = renderChecks(evaluate(f));
  assert.match(text, /✖ pinned tools\s+required\s+0 of 3 in place/);
  assert.match(text, /\n\s+fix:\s+Install Go >= 1\.26\.0 from https:\/\/go\.dev\/dl\//);
  assert.match(text, /Required and missing: tools, go \(1 warning: release-hosts\)\./);
});

test('collectFacts runs the probes at the same time and measures the cache and Go cache filesystems', async () => {
  const slow = <T>(v: T) => new Promise<T>((r) => setTimeout(() => r(v), 150));
  const base = healthy();
  const disks: string[] = [];
  const probes: DoctorProbes = {
    settings: () => base.settings,
    node: () => base.node,
    go: () => slow(base.go),
    goProxy: (go) => slow({ ...base.goProxy, setting: go.proxy! }),
    engines: () => slow(base.engines),
    disk: (dir) => (disks.push(dir), { path: dir, measured: dir, freeBytes: GIB }),
    tools: () => base.tools,
    releaseHosts: () => slow(base.releaseHosts),
    cluster: () => slow(base.cluster),
  };
  const started = performance.now();
  const facts = await collectFacts(probes);
  const ms = performance.now() - started;
  assert.ok(ms < 450, `took ${ms} ms: the probes ran one after another`);
  assert.is(facts.goProxy.setting, base.go.proxy);
  assert.equal(disks, ['/cache', '/root/.cache/go-build']);
  assert.equal(facts.cluster, base.cluster);
});

test('probeUrl: any HTTP answer counts as reachable; refused, silent and missing endpoints do not', async () => {
  const server = http.createServer((req, res) => {
    res.statusCode = req.url === '/there' ? 200 : 404;
    res.end();
  });
  const silent = net.createServer(() => {}); // accepts connections, never answers
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (s: net.Server) => (s.address() as net.AddressInfo).port;
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const closedPort = port(closed);
  await new Promise<void>((r) => closed.close(() => r()));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-doctor-'));
  try {
    const [there, missing, refused, hanging, file, noFile] = await Promise.all([
      probeUrl(`http://127.0.0.1:${port(server)}/there`, { method: 'GET' }),
      probeUrl(`http://127.0.0.1:${port(server)}/missing`),
      probeUrl(`http://127.0.0.1:${closedPort}/`),
      probeUrl(`http://127.0.0.1:${port(silent)}/`, { timeoutMs: 300 }),
      probeUrl(pathToFileURL(dir).href),
      probeUrl(pathToFileURL(path.join(dir, 'nope')).href),
    ]);
    assert.equal([there.reachable, there.status], [true, 200]);
    assert.equal([missing.reachable, missing.status], [true, 404]);
    assert.equal([refused.reachable, refused.error], [false, 'ECONNREFUSED']);
    assert.is(hanging.reachable, false);
    assert.match(hanging.error!, /no answer within 0\.3s/);
    assert.ok(hanging.ms < 2000, `${hanging.ms} ms`);
    assert.equal([file.reachable, noFile.reachable], [true, false]);
  } finally {
    server.close();
    silent.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('Go helpers: the newest go directive of the wrapper modules, version comparison, the first GOPROXY entry', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-gomods-'));
  try {
    for (const [name, v] of [
      ['a', '1.24'],
      ['b', '1.26.0'],
      ['c', '1.25.3'],
    ]) {
      fs.mkdirSync(path.join(dir, name));
      fs.writeFileSync(path.join(dir, name, 'go.mod'), `module example.com/${name}\n\ngo ${v}\n`);
    }
    assert.is(requiredGoVersion(dir), '1.26.0');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.match(requiredGoVersion(), /^1\.\d+(\.\d+)?$/);
  assert.equal([goVersionAtLeast('1.26.8', '1.26.0'), goVersionAtLeast('1.25.9', '1.26.0'), goVersionAtLeast('1.27', '1.26.0')], [true, false, true]);
  assert.equal(firstProxy('https://goproxy.internal/,https://proxy.golang.org,direct'), { url: 'https://goproxy.internal' });
  assert.match(firstProxy('off').why!, /GOPROXY=off/);
  assert.match(firstProxy('direct').why!, /direct/);
  assert.match(proxyLookupUrl('https://p'), /^https:\/\/p\/[a-z0-9./!-]+\/@v\/v\d+\.\d+\.\d+\.info$/);
});

test.run();
