// The rollout's pure parts: waves from the registry (errors name the key), the gate derived from our
// rule files, the judgement of Prometheus answers, the state rebuilt from audit entries, and the
// Prometheus client against a loopback HTTP server (credentials, unreachable, refused).
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadRegistry } from '../../scripts/lib/domain/clusters.ts';
import { planWaves, rolloutState, type RolloutRecord } from '../../scripts/lib/domain/rollout.ts';
import { gateChecksFromRules, gateQueries, judge } from '../../scripts/lib/domain/rollout-gate.ts';
import { loadRules, loadRuleFile } from '../../scripts/lib/domain/rules.ts';
import { resumable } from '../../scripts/lib/engines/rollout.ts';
import { PrometheusClient, PrometheusUnreachable } from '../../scripts/lib/adapters/prometheus.ts';
import { redact } from '../../scripts/lib/core/redact.ts';
import type { StoredAuditEntry } from '../../scripts/lib/domain/audit.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';
import { freePort } from '../helpers/prometheus-server.ts';
import { startStandInExporter } from '../helpers/slo-exporter.ts';
import { loadCatalog, seriesIndex } from '../../scripts/lib/domain/catalog.ts';

async function rejects(p: Promise<unknown>, check: (e: Error) => boolean): Promise<void> {
  const e = await p.then(
    () => undefined,
    (x: Error) => x,
  );
  assert.ok(e, 'expected a rejection');
  assert.ok(check(e!), e!.message);
}

const FIXTURE = path.join(REPO_ROOT, 'test', 'fixtures', 'values', 'clusters.yaml');

function withRegistry<T>(text: string, fn: (file: string) => T): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-test-'));
  try {
    fs.cpSync(path.dirname(FIXTURE), dir, { recursive: true });
    const file = path.join(dir, 'clusters.yaml');
    fs.writeFileSync(file, text);
    return fn(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const cluster = (name: string, prometheus = true) =>
  `  ${name}:\n    description: ${name}\n    protected: false\n    context: ${name}\n    namespace: conduit-${name}\n    release: conduit\n    environment: local\n    layers: [environments/local.yaml, clusters/local.yaml]\n` +
  (prometheus ? `    prometheus:\n      url: http://127.0.0.1:9090/\n      bearerTokenEnv: PROM_TOKEN\n      selector: { cluster: ${name} }\n` : '');
const REGISTRY = (waves: string, clusters = cluster('a') + cluster('b') + cluster('c')) => `clusters:\n${clusters}rollout:\n  soak: 10m\n  interval: 15s\n  waves:\n${waves}`;
const WAVES = '    - { name: one, clusters: [a], soak: 1m }\n    - { name: two, clusters: [b, c] }\n';

test('the registry waves resolve into a plan: clusters in order, soak per wave or the default, --soak overrides', () => {
  const plan = withRegistry(REGISTRY(WAVES), (f) => planWaves(loadRegistry(f)));
  assert.equal(
    plan.waves.map((w) => [w.name, w.clusters.map((c) => c.name), w.soakSeconds]),
    [
      ['one', ['a'], 60],
      ['two', ['b', 'c'], 600],
    ],
  );
  assert.is(plan.intervalSeconds, 15);
  assert.equal(plan.waves[0].clusters[0].prometheus, {
    url: 'http://127.0.0.1:9090',
    bearerTokenEnv: 'PROM_TOKEN',
    bearerTokenFile: undefined,
    basicAuth: undefined,
    selector: { cluster: 'a' },
    timeoutSeconds: 10,
  });
  const fast = withRegistry(REGISTRY(WAVES), (f) => planWaves(loadRegistry(f), { soak: '5s', interval: '1s' }));
  assert.equal(
    fast.waves.map((w) => w.soakSeconds),
    [5, 5],
  );
});

test('registry errors of the rollout plan name the key and say what to change', () => {
  const fails = (text: string, re: RegExp) =>
    withRegistry(text, (f) =>
      assert.throws(
        () => planWaves(loadRegistry(f)),
        (e: Error) => re.test(e.message),
      ),
    );
  fails(REGISTRY('    - { name: one, clusters: [a, nope] }\n'), /clusters\.yaml:\d+:\d+: rollout\.waves\[0\]\.clusters\[1\]: unknown cluster "nope"/);
  fails(REGISTRY('    - { name: one, clusters: [a] }\n    - { name: two, clusters: [a] }\n'), /rollout\.waves\[1\]\.clusters\[0\]: cluster "a" is already in wave one/);
  fails(REGISTRY('    - { name: one, clusters: [a] }\n', cluster('a', false)), /clusters\.a\.prometheus: missing: the rollout gate has no Prometheus/);
  fails(REGISTRY('    - { name: one, clusters: [a] }\n    - { name: one, clusters: [b] }\n'), /rollout\.waves\[1\]\.name: wave "one" is named twice/);
  fails(`clusters:\n${cluster('a')}`, /has no rollout: plan/);
  // Schema errors (loadRegistry) name the key too.
  withRegistry(REGISTRY('    - { name: one, clusters: [a], soak: soon }\n'), (f) =>
    assert.throws(
      () => loadRegistry(f),
      (e: Error) => /clusters\.yaml:\d+:\d+: rollout\.waves\[0\]\.soak: must match pattern/.test(e.message),
    ),
  );
  withRegistry(REGISTRY(WAVES).replace('bearerTokenEnv: PROM_TOKEN', 'bearerToken: s3cr3t-in-the-file'), (f) =>
    assert.throws(
      () => loadRegistry(f),
      (e: Error) => /clusters\.a\.prometheus\.bearerToken: unknown key \(allowed: url, bearerTokenEnv, bearerTokenFile, basicAuth, selector, timeout\)/.test(e.message),
    ),
  );
  withRegistry(REGISTRY(WAVES).replace('http://127.0.0.1:9090/', 'https://user:pw@prom.example.com'), (f) =>
    assert.throws(
      () => loadRegistry(f),
      (e: Error) => /clusters\.a\.prometheus\.url: must match pattern/.test(e.message),
    ),
  );
});

test("the gate is read from our rule files: the short window of each critical SLO alert, at that alert's own threshold", () => {
  const checks = gateChecksFromRules(loadRules());
  const avail = checks.burn.find((b) => b.slo === 'conduit-api-availability')!;
  assert.is(avail.alert, 'ConduitApiAvailabilityBudgetBurnFast');
  assert.is(avail.series, 'slo:sli_error:ratio_rate5m');
  // The same numbers the alert's expression holds for that window.
  const rule = loadRules()
    .flatMap((g) => g.rules)
    .find((r) => r.name === avail.alert)!;
  assert.ok(rule.expr.includes(`slo:sli_error:ratio_rate5m{slo="conduit-api-availability"} > (${avail.factor} * ${avail.budget})`), rule.expr);
  assert.ok(checks.criticalAlerts.includes('ConduitApiAbsent'));
  assert.not.ok(
    checks.burn.some((b) => b.alert.endsWith('BurnSlow')),
    'the warning (slow-burn) alerts are not gates',
  );
  // Change the factor in a copy of the file: the gate follows.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rules-'));
  const file = path.join(dir, 'slo.rules.yaml');
  fs.writeFileSync(file, fs.readFileSync(path.join(REPO_ROOT, 'alerts', 'conduit-slo.rules.yaml'), 'utf8').replaceAll('(14.4 * 0.005)', '(10 * 0.005)'));
  const changed = gateChecksFromRules(loadRuleFile(file));
  assert.is(changed.burn.find((b) => b.slo === 'conduit-api-availability')!.threshold, 0.05);
  fs.rmSync(dir, { recursive: true });
  assert.throws(() => gateChecksFromRules([]), /no critical SLO burn-rate alert/);
});

test('queries select the cluster by namespace and selector; answers are judged against the thresholds', () => {
  const checks = gateChecksFromRules(loadRules());
  const qs = gateQueries(checks, 'conduit', { cluster: 'prod-eu' });
  assert.is(qs[0].expr, 'slo:sli_error:ratio_rate5m{slo="conduit-api-availability", namespace="conduit", cluster="prod-eu"}');
  assert.match(qs.at(-1)!.expr, /^ALERTS\{alertstate="firing", severity="critical", alertname=~"ConduitApiAbsent\|.*", namespace="conduit", cluster="prod-eu"\}$/);
  const burn = qs[0];
  assert.ok(judge(burn, [{ labels: {}, value: 0.01 }]).ok);
  const bad = judge(burn, [
    { labels: { job: 'a' }, value: 0.01 },
    { labels: { job: 'b' }, value: 0.3 },
  ]);
  assert.not.ok(bad.ok);
  assert.is(bad.value, 0.3);
  assert.match(bad.text, /error ratio 30\.00% > 7\.20% \(burn rate 60\.00x > 14\.4x, alert ConduitApiAvailabilityBudgetBurnFast\)/);
  const idle = judge(burn, [{ labels: {}, value: NaN }]);
  assert.ok(idle.ok, 'no requests (0/0) holds');
  assert.match(idle.text, /no requests in the last 5m/);
  assert.ok(judge(qs.at(-1)!, []).ok);
  const firing = judge(qs.at(-1)!, [{ labels: { alertname: 'ConduitRedisDown' }, value: 1 }]);
  assert.not.ok(firing.ok);
  assert.is(firing.text, 'firing: ConduitRedisDown');
});

const HEAD = {
  waves: [
    { name: 'one', clusters: ['a'] },
    { name: 'two', clusters: ['b'] },
  ],
  release: 'conduit',
  inputs: { imageTag: 't1', values: [], setKeys: [], digest: 'd1', helm: 4 as const },
};
let seq = 0;
function entry(cluster: string, wave: string, event: RolloutRecord['event'], extra: Partial<RolloutRecord> = {}, id = 'r1'): StoredAuditEntry {
  const t = new Date(Date.UTC(2026, 0, 1, 0, 0, seq++)).toISOString();
  return { key: t, time: t, actor: 'x', action: 'rollout', result: 'succeeded', cluster, namespace: cluster, details: { ...HEAD, id, wave, event, ...extra } };
}

test('the state of a rollout is rebuilt from the audit entries of all its clusters', () => {
  const started = [entry('a', 'one', 'deploying'), entry('a', 'one', 'deployed', { revision: 2, previousRevision: 1 }), entry('a', 'one', 'soak-passed')];
  const breached = [
    ...started,
    entry('b', 'two', 'deploying'),
    entry('b', 'two', 'deployed', { revision: 5, previousRevision: 4 }),
    entry('b', 'two', 'breached', { reason: 'x' }),
    entry('b', 'two', 'rolled-back'),
  ];
  // Entries come from several ConfigMaps in any order.
  const s = rolloutState([...breached].reverse())!;
  assert.is(s.outcome, 'breached');
  assert.equal(
    s.waves.map((w) => w.status),
    ['passed', 'breached'],
  );
  assert.is(s.next, 1);
  assert.is(s.clusters.b.deployed, false, 'rolled back: deployed again on resume');
  assert.is(s.clusters.a.deployed, true);
  const done = rolloutState([
    ...breached,
    entry('b', 'two', 'deploying'),
    entry('b', 'two', 'deployed', { revision: 7, previousRevision: 6 }),
    entry('b', 'two', 'soak-passed'),
    entry('b', 'two', 'completed'),
  ])!;
  assert.is(done.outcome, 'completed');
  assert.is(done.next, 2);
  assert.throws(() => resumable(done, HEAD.inputs), /has completed; there is nothing to resume/);
  const interrupted = rolloutState([...started.slice(0, 2), entry('a', 'one', 'interrupted')])!;
  assert.is(interrupted.outcome, 'interrupted');
  assert.is(interrupted.next, 0);
  assert.is(interrupted.clusters.a.deployed, true, 'interrupted in the soak: soaked again, not deployed again');
  assert.is(resumable(interrupted, HEAD.inputs).id, 'r1');
  assert.throws(() => resumable(interrupted, { ...HEAD.inputs, digest: 'other' }), /was started with other inputs \(image tag t1/);
  assert.is(rolloutState([...started, entry('a', 'one', 'aborted')])!.outcome, 'aborted');
  // The newest rollout wins; an older one can be named.
  const two = [...started, entry('a', 'one', 'deploying', {}, 'r2')];
  assert.is(rolloutState(two)!.id, 'r2');
  assert.is(rolloutState(two, 'r1')!.outcome, 'in-progress');
  assert.is(rolloutState([]), undefined);
  assert.throws(() => resumable(undefined, HEAD.inputs), /no rollout to resume/);
});

test('the Prometheus client sends the credential from the env var, never shows it, and tells unreachable from refused', async () => {
  let seen = '';
  const server = http.createServer((req, res) => {
    seen = req.headers.authorization ?? '';
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const q = new URLSearchParams(body).get('query') ?? '';
      if (seen !== 'Bearer tok-123456') return void res.writeHead(401).end('{"status":"error","error":"unauthorized"}');
      if (q === 'bad(') return void res.writeHead(400, { 'content-type': 'application/json' }).end('{"status":"error","errorType":"bad_data","error":"parse error"}');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: { a: '1' }, value: [1, 'NaN'] }] } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  try {
    process.env.E2E_PROM_TOKEN = 'tok-123456';
    const client = new PrometheusClient({ url, bearerTokenEnv: 'E2E_PROM_TOKEN', timeoutSeconds: 5 });
    const [s] = await client.query('up');
    assert.ok(Number.isNaN(s.value));
    assert.is(seen, 'Bearer tok-123456');
    assert.is(redact('token tok-123456'), 'token ***', 'the token is registered as a secret');
    await rejects(client.query('bad('), (e: Error) => !(e instanceof PrometheusUnreachable) && /refused the query bad\(: parse error/.test(e.message));
    process.env.E2E_PROM_TOKEN = 'wrong-token';
    const wrong = new PrometheusClient({ url, bearerTokenEnv: 'E2E_PROM_TOKEN', timeoutSeconds: 5 });
    await rejects(wrong.query('up'), (e: Error) => e instanceof PrometheusUnreachable && /HTTP 401 \(the credentials were refused\)/.test(e.message));
    delete process.env.E2E_PROM_TOKEN;
    assert.throws(() => new PrometheusClient({ url, bearerTokenEnv: 'E2E_PROM_TOKEN', timeoutSeconds: 5 }), /the env var E2E_PROM_TOKEN is not set/);
    const port = await freePort();
    const down = new PrometheusClient({ url: `http://127.0.0.1:${port}`, timeoutSeconds: 5 });
    await rejects(down.query('up'), (e: Error) => e instanceof PrometheusUnreachable && new RegExp(`127\\.0\\.0\\.1:${port} did not answer: ECONNREFUSED`).test(e.message));
  } finally {
    server.close();
  }
});

test('the stand-in exporter serves only what the metric catalog says the app exports: families, labels, buckets', async () => {
  const e = await startStandInExporter({ rps: 50, errorRatio: 0.1, slowRatio: 0.2 });
  try {
    await new Promise((r) => setTimeout(r, 300));
    const text = await (await fetch(`${e.url}/metrics`)).text();
    const catalog = loadCatalog();
    const index = seriesIndex(catalog);
    const samples = text.split('\n').filter((l) => l && !l.startsWith('#'));
    assert.ok(samples.length > 10);
    for (const line of samples) {
      const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line)!;
      assert.ok(m, line);
      const info = index.get(m[1]);
      assert.ok(info, `${m[1]} is in the catalog`);
      assert.ok(info!.metric.source.startsWith('conduit-'), `${m[1]} is one of the app's own families`);
      for (const label of m[2].split(',').map((kv) => kv.split('=')[0])) assert.ok(info!.labels.has(label) || label === 'le', `${m[1]}: label ${label} is in the catalog`);
    }
    const les = [...new Set(samples.filter((l) => l.includes('_bucket{')).map((l) => /le="([^"]+)"/.exec(l)![1]))];
    assert.equal(les, [...catalog.metrics.find((x) => x.name === 'http_server_request_duration_seconds')!.buckets!.map(String), '+Inf']);
  } finally {
    await e.close();
  }
});

test.run();
