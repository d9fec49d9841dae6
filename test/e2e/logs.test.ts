// The log pipeline for real: the pinned OpenTelemetry Collector (tools/go/otelcol) runs the shipped
// configuration (logs/otelcol/) on loopback against pod log files in the Kubernetes CRI format that
// hold the lines ConduitLLM 7c3fd76 really prints, and exports over OTLP/HTTP to a receiver in this
// test. No secret may leave the collector; timestamp, severity, category, message and the pod's
// namespace/name/container must. Then the Kubernetes objects (logs/kustomization.yaml) go through an
// operator's overlay onto the local cluster.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import YAML from 'yaml';
import { run } from '../../scripts/lib/core/exec.ts';
import type { Kube, KubeObject } from '../../scripts/lib/adapters/kube.ts';
import { COLLECTOR_CONFIGS, collectorArgs, collectorEnv, LOGS_DIR, validateCollectorConfig } from '../../scripts/lib/adapters/otelcol.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';
import { OTELCOL, tool } from '../../scripts/lib/adapters/tools.ts';
import { freePort } from './services.ts';
import { localCluster, sleep } from './support/localcluster.ts';

// ---------------------------------------------------------------------------------------------
// The application's console output, as the .NET JSON console formatter writes it
// (Logging__Console__FormatterName=json): System.Text.Json's default encoder escapes " & ' + < > `
// as \uXXXX, so `&` in a query string and `+` in a timestamp offset reach the file escaped.

function dotnetString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c > 0x7e || `"&'+<>\``.includes(ch)) out += `\\u${c.toString(16).toUpperCase().padStart(4, '0')}`;
    else out += ch;
  }
  return out + '"';
}

interface DotnetEntry {
  timestamp: string; // what TimestampFormat yyyy-MM-ddTHH:mm:ss.fffzzz gives for a UTC DateTimeOffset
  eventId?: number;
  level: 'Trace' | 'Debug' | 'Information' | 'Warning' | 'Error' | 'Critical';
  category: string;
  template: string;
  args?: Record<string, string | null>;
  /** The formatted message when the state formats itself (ASP.NET Core's hosting logs), else the filled template. */
  message?: string;
  exception?: string;
}

function dotnetJsonLine(e: DotnetEntry): string {
  const message = e.message ?? e.template.replace(/\{(\w+)\}/g, (_, k: string) => e.args?.[k] ?? '');
  const state = [['Message', message], ...Object.entries(e.args ?? {}), ['{OriginalFormat}', e.template]]
    .map(([k, v]) => `${dotnetString(k as string)}:${v === null ? 'null' : dotnetString(v as string)}`)
    .join(',');
  return (
    `{"Timestamp":${dotnetString(e.timestamp)},"EventId":${e.eventId ?? 0},"LogLevel":${dotnetString(e.level)},"Category":${dotnetString(e.category)},` +
    `"Message":${dotnetString(message)}${e.exception ? `,"Exception":${dotnetString(e.exception)}` : ''},"State":{${state}}}`
  );
}

/** One CRI log line (containerd/CRI-O): `<RFC3339Nano> <stream> <F|P> <content>`. */
function cri(time: string, content: string, stream: 'stdout' | 'stderr' = 'stdout', tag: 'F' | 'P' = 'F'): string {
  return `${time} ${stream} ${tag} ${content}\n`;
}

// Secrets, random per run, so a match can only come from this test's input.
const REDIS_PASSWORD = `Rp${crypto.randomBytes(12).toString('hex')}`;
const alnum = (n: number) =>
  crypto
    .randomBytes(n * 2)
    .toString('base64')
    .replace(/[^A-Za-z0-9]/g, '')
    .slice(0, n);
// A virtual key: condt_ + 44 base64 characters (AdminVirtualKeyService.cs:80-86). SignalR clients
// put it URL-encoded into ?access_token=, which is how the request line carries it.
const KEY_PARTS = [alnum(20), alnum(19)];
const VIRTUAL_KEY = `condt_${KEY_PARTS[0]}+${KEY_PARTS[1]}/Ab=`;
const HUB_TOKEN = `tok${crypto.randomBytes(16).toString('hex')}`;
const SECRETS = { REDIS_PASSWORD, HUB_TOKEN, VIRTUAL_KEY, VIRTUAL_KEY_URL: encodeURIComponent(VIRTUAL_KEY), VIRTUAL_KEY_PART_1: KEY_PARTS[0], VIRTUAL_KEY_PART_2: KEY_PARTS[1] };
// RedisUrlParser.ParseRedisUrl (ConduitLLM.Configuration/Utilities/RedisUrlParser.cs:104-122) of
// REDIS_URL=redis://default:<password>@conduit-redis:6379.
const REDIS_CONNECTION = `conduit-redis:6379,password=${REDIS_PASSWORD},user=default,abortConnect=false,connectTimeout=10000,syncTimeout=10000`;

const NS = 'conduit';
const API_POD = { dir: `${NS}_conduit-api-7c9d8f6b5-x2k4p_0b4a3c1e-5d6f-4a7b-8c9d-0e1f2a3b4c5d`, name: 'conduit-api-7c9d8f6b5-x2k4p', container: 'api' };
const ADMIN_POD = { dir: `${NS}_conduit-admin-59f8c7d6b-q7m2n_1c5b4d2f-6e7a-4b8c-9d0e-1f2a3b4c5d6e`, name: 'conduit-admin-59f8c7d6b-q7m2n', container: 'admin' };
const WEBUI_POD = { dir: `${NS}_conduit-webui-6b7c8d9e0-z9y8x_2d6c5e3a-7f8b-4c9d-8e1f-2a3b4c5d6e7f`, name: 'conduit-webui-6b7c8d9e0-z9y8x', container: 'webui' };
const STAGING_POD = { dir: 'conduit-staging_conduit-api-5d4c3b2a1-m3n4b_5a9f8b6d-0c1e-4f2a-9b4c-5d6e7f809102', container: 'api' };
const OTHER_NS_POD = { dir: 'monitoring_prometheus-0_3e7d6f4b-8a9c-4d0e-9f2a-3b4c5d6e7f80', container: 'prometheus' };
const OWN_POD = { dir: `${NS}_conduit-log-collector-h8j5k_4f8e7a5c-9b0d-4e1f-8a3b-4c5d6e7f8091`, container: 'otelcol' };

function podLog(root: string, pod: { dir: string; container: string }): string {
  const dir = path.join(root, pod.dir, pod.container);
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, '0.log');
}

const REQUEST_LINE = dotnetJsonLine({
  timestamp: '2025-08-28T10:15:32.250+00:00',
  eventId: 1,
  level: 'Information',
  category: 'Microsoft.AspNetCore.Hosting.Diagnostics',
  // HostingRequestStartingLog (ASP.NET Core): the URL with its query string, also as State.QueryString.
  template: 'Request starting {Protocol} {Method} {Scheme}://{Host}{PathBase}{Path}{QueryString} - {ContentType} {ContentLength}',
  args: {
    Protocol: 'HTTP/1.1',
    Method: 'GET',
    Scheme: 'http',
    Host: 'conduit-api:8080',
    PathBase: '',
    Path: '/hubs/image-generation',
    QueryString: `?id=Xw3&access_token=${encodeURIComponent(VIRTUAL_KEY)}`,
    ContentType: null,
    ContentLength: null,
  },
  message: `Request starting HTTP/1.1 GET http://conduit-api:8080/hubs/image-generation?id=Xw3&access_token=${encodeURIComponent(VIRTUAL_KEY)} - - -`,
});

/** Pod log files as the kubelet/containerd would leave them after the apps started. */
function writeStartupLogs(root: string): void {
  fs.writeFileSync(
    podLog(root, API_POD),
    [
      // ConduitLLM.Http/Program.Configuration.cs:23 (Console.WriteLine: plain text whatever the formatter)
      cri('2025-08-28T10:15:29.100000000Z', '[Conduit] Database will be initialized automatically.'),
      // ConduitLLM.Http/Program.Caching.cs:62: the connection string with the password
      cri('2025-08-28T10:15:29.300000000Z', `[Conduit] Redis connection string configured: ${REDIS_CONNECTION}`),
      // ConduitLLM.Configuration/Extensions/DataProtectionExtensions.cs:57
      cri(
        '2025-08-28T10:15:29.400000000Z',
        dotnetJsonLine({
          timestamp: '2025-08-28T10:15:29.398+00:00',
          level: 'Information',
          category: 'Microsoft.AspNetCore.DataProtection.IDataProtectionBuilder',
          template: 'Data Protection configured to use Redis for key persistence at {RedisEndpoint}',
          args: { RedisEndpoint: REDIS_CONNECTION },
        }),
      ),
      // ConduitLLM.Configuration/Services/RedisConnectionFactory.cs:74-75: "password=" becomes
      // "password=******" in front of the password, which stays.
      cri(
        '2025-08-28T10:15:30.000000000Z',
        dotnetJsonLine({
          timestamp: '2025-08-28T10:15:29.999+00:00',
          level: 'Information',
          category: 'ConduitLLM.Configuration.Services.RedisConnectionFactory',
          template: 'Attempting to connect to Redis: {ConnectionString}',
          args: { ConnectionString: REDIS_CONNECTION.replace('password=', 'password=******') },
        }),
      ),
      cri(
        '2025-08-28T10:15:31.000000000Z',
        dotnetJsonLine({
          timestamp: '2025-08-28T10:15:30.950+00:00',
          eventId: 14,
          level: 'Information',
          category: 'Microsoft.Hosting.Lifetime',
          template: 'Now listening on: {address}',
          args: { address: 'http://[::]:8080' },
        }),
      ),
      // RedisConnectionFactory.cs:120-121, with the exception (multi-line in .NET, one JSON string here).
      cri(
        '2025-08-28T10:15:31.500000000Z',
        dotnetJsonLine({
          timestamp: '2025-08-28T10:15:31.480+00:00',
          level: 'Error',
          category: 'ConduitLLM.Configuration.Services.RedisConnectionFactory',
          template: 'Failed to connect to Redis at {ConnectionString}',
          args: { ConnectionString: REDIS_CONNECTION.replace('password=', 'password=******') },
          exception: `StackExchange.Redis.RedisConnectionException: It was not possible to connect to the redis server(s). UnableToConnect on conduit-redis:6379/Interactive\n   at StackExchange.Redis.ConnectionMultiplexer.ConnectImplAsync(ConfigurationOptions configuration, TextWriter writer, Nullable\`1 serverType)`,
        }),
      ),
    ].join(''),
  );
  fs.writeFileSync(
    podLog(root, ADMIN_POD),
    // ConduitLLM.Configuration/Services/RedisUrlValidator.cs:33-38: a URL the validator's regex does
    // not match (here a "/0" database suffix) is logged as it is, password included.
    cri(
      '2025-08-28T10:15:33.000000000Z',
      dotnetJsonLine({
        timestamp: '2025-08-28T10:15:32.990+00:00',
        level: 'Warning',
        category: 'ConduitLLM.Admin.Program',
        template: '{ServiceName}: Redis URL format appears invalid. Expected format: redis://[username]:[password]@hostname:port. URL: {RedisUrl}',
        args: { ServiceName: 'Admin Service', RedisUrl: `redis://default:${REDIS_PASSWORD}@conduit-redis:6379/0` },
      }),
    ),
  );
  // The WebUI (Next.js) prints plain text; console.error goes to stderr.
  fs.writeFileSync(
    podLog(root, WEBUI_POD),
    cri('2025-08-28T10:15:34.000000000Z', '   ▲ Next.js 15.5.2') +
      cri('2025-08-28T10:15:35.000000000Z', 'Error generating ephemeral key: Error: fetch failed', 'stderr') +
      // Not a known leak: the generic rules (a virtual key anywhere, a password in a URL) on an error line.
      cri('2025-08-28T10:15:35.500000000Z', `Error: key ${VIRTUAL_KEY} rejected by postgres://conduit:${REDIS_PASSWORD}@db:5432/conduit`, 'stderr'),
  );
  fs.writeFileSync(podLog(root, STAGING_POD), cri('2025-08-28T10:15:35.800000000Z', '[Conduit] Database will be initialized automatically.'));
  fs.writeFileSync(podLog(root, OTHER_NS_POD), cri('2025-08-28T10:15:36.000000000Z', 'ts=2025-08-28T10:15:36Z level=info msg="not a Conduit pod"'));
  fs.writeFileSync(podLog(root, OWN_POD), cri('2025-08-28T10:15:37.000000000Z', '{"level":"info","msg":"the collector\'s own log"}'));
}

// ---------------------------------------------------------------------------------------------
// An OTLP/HTTP logs receiver on loopback (JSON encoding; the exporter gzips by default).

interface OtlpAttr {
  key: string;
  value: Record<string, unknown>;
}
interface ReceivedRecord {
  resource: Record<string, unknown>;
  timeUnixNano?: string;
  severityText?: string;
  severityNumber?: number;
  body: unknown;
  attributes: Record<string, unknown>;
}

// OTLP/JSON writes 64-bit integers as strings.
const attrValue = (v: Record<string, unknown>): unknown => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : undefined) ?? v.boolValue ?? v.doubleValue ?? null;
const attrMap = (list: OtlpAttr[] | undefined): Record<string, unknown> => Object.fromEntries((list ?? []).map((a) => [a.key, attrValue(a.value)]));

interface Receiver {
  url: string;
  /** Every request body as received (decompressed text): what left the collector. */
  payloads: string[];
  records: ReceivedRecord[];
  /** While true, every request is answered 503 (a backend outage) and its records are not kept. */
  failing: boolean;
  refused: number;
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const payloads: string[] = [];
  const records: ReceivedRecord[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = zlib.gunzipSync(body);
      const text = body.toString('utf8');
      payloads.push(text);
      if (receiver.failing) {
        receiver.refused++;
        res.writeHead(503).end();
      } else if (req.url === '/v1/logs' && String(req.headers['content-type']).startsWith('application/json')) {
        const doc = JSON.parse(text);
        for (const rl of doc.resourceLogs ?? []) {
          for (const sl of rl.scopeLogs ?? []) {
            for (const r of sl.logRecords ?? []) {
              records.push({
                resource: attrMap(rl.resource?.attributes),
                timeUnixNano: r.timeUnixNano,
                severityText: r.severityText,
                severityNumber: r.severityNumber,
                body: r.body ? attrValue(r.body) : undefined,
                attributes: attrMap(r.attributes),
              });
            }
          }
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } else res.writeHead(404).end();
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const receiver: Receiver = { url: `http://127.0.0.1:${port}`, payloads, records, failing: false, refused: 0, close: () => new Promise((r) => server.close(() => r())) };
  return receiver;
}

// ---------------------------------------------------------------------------------------------
// The collector process.

interface Collector {
  output: () => string;
  stop(): Promise<void>;
}

async function startCollector(settings: Parameters<typeof collectorEnv>[0]): Promise<Collector> {
  const bin = await tool('otelcol');
  const child: ChildProcess = spawn(bin, collectorArgs(), { env: { ...process.env, ...collectorEnv(settings) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const kill = () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL');
  process.once('exit', kill);
  const health = `http://${settings.healthEndpoint}/`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(health).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      kill();
      throw new Error(`the collector did not become healthy:\n${output.slice(-3000)}`);
    }
    await sleep(200);
  }
  return {
    output: () => output,
    stop: async () => {
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(15_000).then(kill)]);
      process.removeListener('exit', kill);
    },
  };
}

async function until<T>(what: string, fn: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const nanos = (iso: string) => String(BigInt(Date.parse(iso)) * 1_000_000n);

// ---------------------------------------------------------------------------------------------

const pipeline = suite('log pipeline');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-logs-'));
const podsDir = path.join(work, 'pods');
const storageDir = path.join(work, 'offsets');
let receiver: Receiver;
let collector: Collector;
let settings: Parameters<typeof collectorEnv>[0];
const byBody = (prefix: string) => receiver.records.filter((r) => typeof r.body === 'string' && r.body.startsWith(prefix));

pipeline.before(async () => {
  writeStartupLogs(podsDir);
  receiver = await startReceiver();
  settings = {
    otlpEndpoint: receiver.url,
    otlpEncoding: 'json',
    namespaces: '{conduit,conduit-staging}',
    podsDir,
    storageDir,
    healthEndpoint: `127.0.0.1:${await freePort()}`,
    metricsHost: '127.0.0.1',
    metricsPort: await freePort(),
  };
  collector = await startCollector(settings);
});

pipeline.after(async () => {
  await collector?.stop();
  await receiver?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

pipeline('otelcol validate accepts the shipped configuration and refuses a broken statement', async () => {
  assert.equal(await validateCollectorConfig(), { ok: true, files: ['logs/otelcol/collector.yaml', 'logs/otelcol/conduit-processors.yaml'], problems: [] });
  const broken = path.join(work, 'broken-processors.yaml');
  fs.writeFileSync(broken, fs.readFileSync(COLLECTOR_CONFIGS[1], 'utf8').replace('"(?i)(access_token=)', '"(?i)(access_token=')); // unbalanced group
  const r = await validateCollectorConfig([COLLECTOR_CONFIGS[0], broken]);
  assert.is(r.ok, false);
  assert.match(r.problems.join('\n'), /transform\/conduit_redact/);
});

pipeline('logs.ts check passes on the shipped files and names the problem of a bad override', async () => {
  const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'scripts/logs.ts', 'check', '--json', ...args], { cwd: REPO_ROOT, timeoutMs: 120_000 });
  const ok = await cli();
  assert.is(ok.exitCode, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout), { ok: true, collector: OTELCOL, files: ['logs/otelcol/collector.yaml', 'logs/otelcol/conduit-processors.yaml'], problems: [] });
  const override = path.join(work, 'override.yaml');
  fs.writeFileSync(override, 'service:\n  pipelines:\n    logs:\n      exporters: [loki]\n');
  const bad = await cli(...COLLECTOR_CONFIGS.flatMap((f) => ['--config', f]), '--config', override);
  assert.is(bad.exitCode, 1);
  assert.match(JSON.parse(bad.stdout).problems.join('\n'), /references exporter "loki" which is not configured/);
});

pipeline('start-up lines and lines appended later arrive parsed, with the pod they came from', async () => {
  // Appended while the collector runs: a long request line that the runtime split into two partial
  // CRI entries (P, then F), which the container parser joins.
  const cut = Math.floor(REQUEST_LINE.length / 2);
  fs.appendFileSync(podLog(podsDir, API_POD), cri('2025-08-28T10:15:32.300000000Z', REQUEST_LINE.slice(0, cut), 'stdout', 'P') + cri('2025-08-28T10:15:32.300000001Z', REQUEST_LINE.slice(cut)));
  fs.appendFileSync(
    podLog(podsDir, API_POD),
    cri(
      '2025-08-28T10:15:32.500000000Z',
      dotnetJsonLine({
        timestamp: '2025-08-28T10:15:32.499+00:00',
        eventId: 2,
        level: 'Information',
        category: 'Microsoft.AspNetCore.Hosting.Diagnostics',
        template: 'Request finished {Protocol} {Method} {Scheme}://{Host}{PathBase}{Path}{QueryString} - {StatusCode} {ContentLength} {ContentType} {ElapsedMilliseconds}ms',
        args: {
          Protocol: 'HTTP/1.1',
          Method: 'POST',
          Scheme: 'http',
          Host: 'conduit-api:8080',
          PathBase: '',
          Path: '/hubs/notifications/negotiate',
          QueryString: `?access_token=${HUB_TOKEN}&negotiateVersion=1`,
          StatusCode: '200',
          ContentLength: '316',
          ContentType: 'application/json',
          ElapsedMilliseconds: '4.1207',
        },
      }),
    ),
  );
  await until('13 records at the receiver', () => receiver.records.length >= 13 || undefined);
  await sleep(2500); // one more batch period: anything else that would arrive has arrived

  // Exactly the namespaces of LOGS_NAMESPACES, without the collector's own pods.
  assert.is(receiver.records.length, 13, receiver.records.map((r) => r.body).join('\n'));
  assert.equal([...new Set(receiver.records.map((r) => r.resource['k8s.namespace.name']))].sort(), [NS, 'conduit-staging']);
  assert.not.ok(
    receiver.records.some((r) => r.resource['k8s.container.name'] === 'otelcol'),
    'the collector does not read itself',
  );

  const [dp] = byBody('Data Protection configured');
  assert.equal(dp.resource, { 'k8s.namespace.name': NS, 'k8s.pod.name': API_POD.name, 'k8s.pod.uid': API_POD.dir.split('_')[2], 'k8s.container.name': 'api', 'k8s.container.restart_count': '0' });
  assert.is(dp.timeUnixNano, nanos('2025-08-28T10:15:29.398Z'), "the app's own timestamp");
  assert.is(dp.severityText, 'Information');
  assert.is(dp.severityNumber, 9);
  assert.is(dp.attributes.category, 'Microsoft.AspNetCore.DataProtection.IDataProtectionBuilder');
  assert.is(dp.attributes.message_template, 'Data Protection configured to use Redis for key persistence at {RedisEndpoint}');
  assert.is(dp.body, 'Data Protection configured to use Redis for key persistence at conduit-redis:6379,password=***,user=default,abortConnect=false,connectTimeout=10000,syncTimeout=10000');
  assert.is(dp.attributes.RedisEndpoint, 'conduit-redis:6379,password=***,user=default,abortConnect=false,connectTimeout=10000,syncTimeout=10000');

  const [failed] = byBody('Failed to connect to Redis');
  assert.equal([failed.severityText, failed.severityNumber], ['Error', 17]);
  assert.match(String(failed.attributes['exception.stacktrace']), /^StackExchange\.Redis\.RedisConnectionException: .*\n {3}at StackExchange/);

  const [listening] = byBody('Now listening on');
  assert.equal([listening.body, listening.attributes.event_id, listening.attributes.address], ['Now listening on: http://[::]:8080', 14, 'http://[::]:8080']);

  const [invalid] = byBody('Admin Service: Redis URL format appears invalid');
  assert.equal([invalid.resource['k8s.pod.name'], invalid.resource['k8s.container.name'], invalid.severityText, invalid.severityNumber], [ADMIN_POD.name, 'admin', 'Warning', 13]);
  assert.is(invalid.attributes.RedisUrl, 'redis://default:***@conduit-redis:6379/0');

  // Plain Console.WriteLine lines keep the runtime's timestamp and have no severity.
  const [plain] = byBody('[Conduit] Redis connection string configured');
  assert.is(plain.body, `[Conduit] Redis connection string configured: conduit-redis:6379,password=***,user=default,abortConnect=false,connectTimeout=10000,syncTimeout=10000`);
  assert.equal([plain.timeUnixNano, plain.severityNumber ?? 0, plain.attributes['log.iostream']], [nanos('2025-08-28T10:15:29.300Z'), 0, 'stdout']);

  const webui = receiver.records.filter((r) => r.resource['k8s.container.name'] === 'webui');
  assert.equal(
    webui.map((r) => [r.body, r.attributes['log.iostream']]),
    [
      ['   ▲ Next.js 15.5.2', 'stdout'],
      ['Error generating ephemeral key: Error: fetch failed', 'stderr'],
      ['Error: key condt_*** rejected by postgres://conduit:***@db:5432/conduit', 'stderr'],
    ],
  );

  // The split line arrived once, whole, and decoded (\u0026 is & again).
  const requests = byBody('Request starting');
  assert.is(requests.length, 1);
  assert.is(requests[0].body, 'Request starting HTTP/1.1 GET http://conduit-api:8080/hubs/image-generation?id=Xw3&access_token=*** - - -');
  assert.is(requests[0].attributes.QueryString, '?id=Xw3&access_token=***');
  assert.is(requests[0].attributes.Path, '/hubs/image-generation');
  const [finished] = byBody('Request finished');
  assert.is(finished.attributes.QueryString, '?access_token=***&negotiateVersion=1');
});

pipeline('no secret leaves the collector, neither in what it exports nor in its own log', async () => {
  assert.ok(receiver.payloads.length > 0);
  const exported = receiver.payloads.join('\n');
  for (const [name, value] of Object.entries(SECRETS)) {
    assert.not.ok(exported.includes(value), `${name} was exported`);
    assert.not.ok(collector.output().includes(value), `${name} is in the collector's log`);
  }
  // Each redaction really had something to do (the inputs above carry every form).
  for (const masked of ['password=***', 'redis://default:***@', 'access_token=***']) assert.ok(exported.includes(masked), masked);
});

pipeline('after a restart the collector resumes where it stopped: nothing lost, nothing repeated', async () => {
  const before = receiver.records.length;
  // A line the backend refuses (outage) before the collector stops: it waits in the disk queue.
  receiver.failing = true;
  fs.appendFileSync(podLog(podsDir, API_POD), cri('2025-08-28T10:19:00.000000000Z', '[Conduit] Using Redis-cached services (high-performance mode) with PostgreSQL distributed locking'));
  await until('a refused export', () => receiver.refused > 0 || undefined);
  await collector.stop();
  receiver.failing = false;
  // A line written while the collector is down.
  fs.appendFileSync(podLog(podsDir, ADMIN_POD), cri('2025-08-28T10:20:00.000000000Z', '[ConduitLLM.Admin] Distributed cache configured with Redis'));
  collector = await startCollector(settings);
  await until('the line written while the collector was down', () => byBody('[ConduitLLM.Admin] Distributed cache').length > 0 || undefined);
  await until('the line the backend refused before the restart', () => byBody('[Conduit] Using Redis-cached services').length > 0 || undefined);
  await sleep(2500);
  assert.is(receiver.records.length, before + 2, 'the two new lines, once each, and nothing read before');
});

pipeline.run();

// ---------------------------------------------------------------------------------------------
// The Kubernetes objects through an operator's overlay (docs/logs.md), on the local cluster: the
// namespace admits the hostPath pods, the DaemonSet runs on every node, and the ConfigMap holds
// exactly the files the pipeline test ran.

const k8s = suite('log collector on Kubernetes');
let kube: Kube;

k8s.before(async () => {
  kube = await localCluster();
});

k8s('an overlay of logs/ deploys the collector on every node with the shipped configuration', async () => {
  const ns = `conduit-logs-${crypto.randomBytes(3).toString('hex')}`;
  const overlay = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-logs-overlay-'));
  try {
    fs.writeFileSync(
      path.join(overlay, 'kustomization.yaml'),
      YAML.stringify({
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        namespace: ns,
        resources: [path.relative(overlay, LOGS_DIR)],
        configMapGenerator: [
          { name: 'conduit-log-collector-env', behavior: 'merge', literals: ['LOGS_OTLP_ENDPOINT=http://otel-gateway.observability:4318', 'LOGS_NAMESPACES={conduit,conduit-staging}'] },
        ],
      }),
    );
    const manifest = await kube.call(['kustomize', overlay]);
    const objects = YAML.parseAllDocuments(manifest).map((d) => d.toJS() as KubeObject);
    assert.equal(objects.map((o) => o.kind).sort(), ['ConfigMap', 'ConfigMap', 'DaemonSet', 'Namespace', 'ServiceAccount']);
    await kube.applyManifest(manifest);
    try {
      await kube.rolloutStatus('daemonset/conduit-log-collector', { namespace: ns, timeoutSeconds: 120 });
      const ds = (await kube.get('daemonset', 'conduit-log-collector', { namespace: ns })) as KubeObject & { status: { desiredNumberScheduled: number; numberReady: number } };
      const nodes = await kube.list('node');
      assert.is(ds.status.desiredNumberScheduled, nodes.length, 'one collector per node');
      assert.is(ds.status.numberReady, nodes.length);

      const configName = (ds as any).spec.template.spec.volumes.find((v: { name: string }) => v.name === 'config').configMap.name; // eslint-disable-line @typescript-eslint/no-explicit-any
      assert.match(configName, /^conduit-log-collector-config-[a-z0-9]+$/, 'a hashed name: a config change rolls the pods');
      const config = (await kube.get('configmap', configName, { namespace: ns })) as KubeObject & { data: Record<string, string> };
      for (const f of COLLECTOR_CONFIGS) assert.is(config.data[path.basename(f)], fs.readFileSync(f, 'utf8'), path.basename(f));
      const envName = (ds as any).spec.template.spec.containers[0].envFrom[0].configMapRef.name; // eslint-disable-line @typescript-eslint/no-explicit-any
      const env = (await kube.get('configmap', envName, { namespace: ns })) as KubeObject & { data: Record<string, string> };
      assert.equal(env.data, { LOGS_OTLP_ENDPOINT: 'http://otel-gateway.observability:4318', LOGS_NAMESPACES: '{conduit,conduit-staging}' });
    } finally {
      await kube.delete('namespace', ns, { wait: false }).catch(() => false);
    }
  } finally {
    fs.rmSync(overlay, { recursive: true, force: true });
  }
});

k8s('the collector pod is refused by a namespace that enforces the baseline Pod Security level', async () => {
  const ns = `conduit-logs-psa-${crypto.randomBytes(3).toString('hex')}`;
  await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { 'conduit.test/e2e': 'true', 'pod-security.kubernetes.io/enforce': 'baseline' } } });
  try {
    await kube.apply(YAML.parse(fs.readFileSync(path.join(LOGS_DIR, 'kubernetes', 'serviceaccount.yaml'), 'utf8')), { namespace: ns });
    const ds = YAML.parse(fs.readFileSync(path.join(LOGS_DIR, 'kubernetes', 'daemonset.yaml'), 'utf8'));
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'collector', namespace: ns }, spec: ds.spec.template.spec };
    const err = await kube.apply(pod, { namespace: ns, dryRun: 'server' }).then(
      () => undefined,
      (e: Error) => e,
    );
    assert.ok(err, 'admitted');
    assert.match(err!.message, /hostPath/, err!.message);
  } finally {
    await kube.delete('namespace', ns, { wait: false }).catch(() => false);
  }
});

k8s.run();
