// The log pipeline's files agree with each other: the environment collector.yaml reads, what the
// DaemonSet and the kustomization give it, the collector release of the wrapper module and the image,
// and the least-privilege shape of the DaemonSet. (test/e2e/logs.test.ts runs the pipeline itself.)
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import YAML from 'yaml';
import { COLLECTOR_CONFIGS, collectorArgs, collectorEnv, LOGS_DIR } from '../../scripts/lib/adapters/otelcol.ts';
import { run } from '../../scripts/lib/core/exec.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';
import { OTELCOL, toolSpec } from '../../scripts/lib/adapters/tools.ts';

const read = (...p: string[]) => fs.readFileSync(path.join(LOGS_DIR, ...p), 'utf8');
const collector = read('otelcol', 'collector.yaml');
const processors = YAML.parse(read('otelcol', 'conduit-processors.yaml'));
const kustomization = YAML.parse(read('kustomization.yaml'));
const daemonSet = YAML.parse(read('kubernetes', 'daemonset.yaml'));
const pod = daemonSet.spec.template.spec;
const container = pod.containers[0];

test('collectorEnv and collectorArgs: every LOGS_* variable collector.yaml reads, and nothing else', () => {
  const read = new Set([...collector.matchAll(/\$\{env:(\w+)/g)].map((m) => m[1]));
  const all = collectorEnv({
    otlpEndpoint: 'http://127.0.0.1:4318',
    otlpEncoding: 'json',
    namespaces: 'conduit',
    podsDir: '/p',
    storageDir: '/s',
    healthEndpoint: '127.0.0.1:1',
    metricsHost: '127.0.0.1',
    metricsPort: 2,
  });
  assert.equal(Object.keys(all).sort(), [...read].sort());
  assert.equal(collectorEnv({ otlpEndpoint: 'http://x:4318' }), { LOGS_OTLP_ENDPOINT: 'http://x:4318' }, 'unset settings keep the defaults of the file');
  assert.equal(collectorArgs(['/a/b.yaml', 'c.yaml']), ['--config=file:/a/b.yaml', `--config=file:${path.resolve('c.yaml')}`]);
});

test('conduit-processors.yaml holds only processors, and collector.yaml runs both of them after the memory limiter', () => {
  assert.equal(Object.keys(processors), ['processors']);
  assert.equal(Object.keys(processors.processors), ['transform/conduit_parse', 'transform/conduit_redact']);
  assert.is(processors.processors['transform/conduit_redact'].error_mode, 'propagate', 'redaction fails closed');
  const pipeline = YAML.parse(collector).service.pipelines.logs;
  assert.equal(pipeline.processors, ['memory_limiter', 'transform/conduit_parse', 'transform/conduit_redact']);
});

test('the kustomization ships exactly the files of logs/ (one source of truth), with no endpoint of ours', () => {
  const files = (dir: string) =>
    fs
      .readdirSync(path.join(LOGS_DIR, dir))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => `${dir}/${f}`)
      .sort();
  assert.equal([...kustomization.resources].sort(), files('kubernetes'));
  const config = kustomization.configMapGenerator.find((g: { name: string }) => g.name === 'conduit-log-collector-config');
  assert.equal(
    config.files,
    COLLECTOR_CONFIGS.map((f) => path.relative(LOGS_DIR, f)),
  );
  assert.equal(files('otelcol'), [...config.files].sort());
  const env = kustomization.configMapGenerator.find((g: { name: string }) => g.name === 'conduit-log-collector-env');
  assert.equal(env.literals, ['LOGS_OTLP_ENDPOINT=', 'LOGS_NAMESPACES=conduit'], 'the operator sets the endpoint in an overlay');
  // The DaemonSet passes the generated files in the same order as the tests and `logs.ts check`.
  assert.equal(
    container.args,
    COLLECTOR_CONFIGS.map((f) => `--config=file:/etc/otelcol/${path.basename(f)}`),
  );
  const mount = container.volumeMounts.find((m: { name: string }) => m.name === 'config');
  assert.equal([mount.mountPath, pod.volumes.find((v: { name: string }) => v.name === 'config').configMap.name], ['/etc/otelcol', config.name]);
});

test('the DaemonSet has least privilege: no API token, no capability, read-only pod logs and root filesystem', () => {
  assert.is(pod.automountServiceAccountToken, false);
  assert.is(YAML.parse(read('kubernetes', 'serviceaccount.yaml')).automountServiceAccountToken, false);
  assert.equal(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
  assert.equal(container.securityContext, { allowPrivilegeEscalation: false, privileged: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  const hostPaths = pod.volumes.filter((v: { hostPath?: unknown }) => v.hostPath).map((v: { name: string; hostPath: { path: string } }) => [v.name, v.hostPath.path]);
  assert.equal(hostPaths, [
    ['pod-logs', '/var/log/pods'],
    ['offsets', '/var/lib/conduit-log-collector'],
  ]);
  const mounts = Object.fromEntries(container.volumeMounts.map((m: { name: string; readOnly?: boolean }) => [m.name, m.readOnly ?? false]));
  assert.equal(mounts, { config: true, 'pod-logs': true, offsets: false }, 'only the offset directory is writable');
  assert.ok(container.resources.limits.memory, 'a memory limit for memory_limiter to work with');
  const env = Object.fromEntries(container.env.map((e: { name: string; value: string }) => [e.name, e.value]));
  assert.equal([env.LOGS_PODS_DIR, env.LOGS_STORAGE_DIR], ['/var/log/pods', '/var/lib/conduit-log-collector']);
  const ns = YAML.parse(read('kubernetes', 'namespace.yaml'));
  assert.is(ns.metadata.labels['pod-security.kubernetes.io/enforce'], 'privileged', 'hostPath needs it; the Conduit namespace stays restricted');
});

test('one collector release: the wrapper module, the tool, the image', () => {
  const goMod = fs.readFileSync(path.join(REPO_ROOT, 'tools', 'go', 'otelcol', 'go.mod'), 'utf8');
  const direct = /require \(([^)]*)\)/
    .exec(goMod)![1]
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((p) => p.length === 2);
  for (const [mod, version] of direct) {
    if (/^go\.opentelemetry\.io\/collector\/(confmap|component)(\/|$)/.test(mod)) continue; // stable modules: v1.x of the same release
    assert.is(version, `v${OTELCOL}`, mod);
  }
  assert.is(toolSpec('otelcol').version, OTELCOL);
  assert.is(container.image, `otel/opentelemetry-collector-contrib:${OTELCOL}`);
});

test('logs.ts: --help names the verb; a missing verb is a usage error; a missing file fails before any tool runs', async () => {
  const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'scripts/logs.ts', ...args], { cwd: REPO_ROOT, timeoutMs: 60_000, env: { CONDUIT_NO_TOOL_INSTALL: '1' } });
  const help = await cli('--help');
  assert.is(help.exitCode, 0);
  assert.match(help.stdout, /check\s+Run `otelcol validate`/);
  const none = await cli();
  assert.is(none.exitCode, 2);
  assert.match(none.stderr, /missing verb/);
  const missing = await cli('check', '--config', 'logs/otelcol/nope.yaml', '--json');
  assert.is(missing.exitCode, 1);
  assert.equal(JSON.parse(missing.stdout).error, 'collector configuration logs/otelcol/nope.yaml does not exist');
});

test.run();
