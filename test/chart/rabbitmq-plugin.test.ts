// The RabbitMQ broker gets the delayed-message-exchange plugin the app's delayed redelivery needs
// (MassTransit UseDelayedRedelivery in ConduitLLM.Http/Program.Messaging.cs and ConduitLLM.Admin/Program.cs
// declares x-delayed-message exchanges; the stock image lacks the plugin). The rendered init container's
// script is run here for real with busybox (the applets the init container image runs) against a
// loopback HTTP server: a verified file is installed, anything else is refused and leaves nothing behind.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../scripts/lib/core/exec.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';
import { find, renderObjects } from './helpers.ts';

const dockerfile = fs.readFileSync(path.join(REPO_ROOT, 'docker', 'rabbitmq.Dockerfile'), 'utf8');
const arg = (name: string) => new RegExp(`^ARG ${name}=(\\S+)$`, 'm').exec(dockerfile)![1];

async function cluster(values: Record<string, unknown> = {}) {
  return find(await renderObjects({ values }), 'RabbitmqCluster', 'conduit-rabbitmq');
}

test('by default the pinned broker gets the pinned plugin through a verified init container (same pins as docker/rabbitmq.Dockerfile)', async () => {
  const rc = await cluster();
  assert.is(`docker.io/library/${rc.spec.image.replace(/^docker\.io\/library\//, '')}`, `docker.io/library/${arg('RABBITMQ_IMAGE')}`, 'broker image');
  assert.ok(rc.spec.rabbitmq.additionalPlugins.includes('rabbitmq_delayed_message_exchange'));
  const pod = rc.spec.override.statefulSet.spec.template.spec;
  const init = pod.initContainers[0];
  const env = Object.fromEntries(init.env.map((e: { name: string; value: string }) => [e.name, e.value]));
  const version = arg('DELAYED_EXCHANGE_VERSION');
  assert.is(env.PLUGIN_SHA256, arg('DELAYED_EXCHANGE_SHA256'));
  assert.is(env.PLUGIN_FILE, `rabbitmq_delayed_message_exchange-${version}.ez`);
  assert.is(env.PLUGIN_URL, `https://github.com/rabbitmq/rabbitmq-delayed-message-exchange/releases/download/v${version}/rabbitmq_delayed_message_exchange-${version}.ez`);
  // The broker's major.minor must match the plugin's.
  assert.is(/rabbitmq:(\d+\.\d+)/.exec(rc.spec.image)![1], version.split('.').slice(0, 2).join('.'));
  assert.equal(init.securityContext, {
    runAsNonRoot: true,
    runAsUser: 999,
    runAsGroup: 999,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  });
  const broker = pod.containers.find((c: { name: string }) => c.name === 'rabbitmq');
  assert.equal(broker.env, [{ name: 'RABBITMQ_PLUGINS_DIR', value: '/opt/rabbitmq/plugins:/opt/conduit/plugins' }]);
  assert.equal(broker.volumeMounts, [{ name: 'conduit-plugins', mountPath: env.PLUGIN_DIR, readOnly: true }]);
  assert.equal(init.volumeMounts, [{ name: 'conduit-plugins', mountPath: env.PLUGIN_DIR }]);
});

test('an image that already has the plugin needs no init container; a mirror URL keeps the checksum', async () => {
  assert.not.ok('override' in (await cluster({ rabbitmq: { operator: { image: 'registry.example.com/conduit-rabbitmq:4.2-delayed', delayedMessageExchange: { install: false } } } })).spec);
  const mirrored = await cluster({ rabbitmq: { operator: { delayedMessageExchange: { url: 'https://mirror.example.com/rmq/{version}/plugin.ez' } } } });
  const env = mirrored.spec.override.statefulSet.spec.template.spec.initContainers[0].env;
  assert.ok(env.some((e: { name: string; value: string }) => e.name === 'PLUGIN_URL' && e.value === 'https://mirror.example.com/rmq/4.2.0/plugin.ez'));
});

test('the init script, run with busybox: installs a verified plugin; refuses a wrong checksum or a failed download and leaves no file', async () => {
  const rc = await cluster();
  const init = rc.spec.override.statefulSet.spec.template.spec.initContainers[0];
  assert.equal(init.command.slice(0, 2), ['sh', '-c']);
  const script: string = init.command[2];
  const good = Buffer.from('fake plugin archive for the test\n');
  const server = http.createServer((req, res) => {
    if (req.url === '/plugin.ez') res.end(good);
    else res.writeHead(404).end('not found');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-rmq-plugin-'));
  // Only busybox applets on the PATH, as in the init container image.
  const bin = path.join(work, 'bin');
  fs.mkdirSync(bin);
  for (const applet of ['sh', 'timeout', 'wget', 'sha256sum', 'mv', 'rm', 'echo']) fs.symlinkSync('/bin/busybox', path.join(bin, applet));
  const install = async (url: string, sha256: string) => {
    const dir = fs.mkdtempSync(path.join(work, 'plugins-'));
    const r = await run(path.join(bin, 'sh'), ['-c', script], {
      env: { PATH: bin, PLUGIN_URL: url, PLUGIN_FILE: 'rabbitmq_delayed_message_exchange-4.2.0.ez', PLUGIN_SHA256: sha256, PLUGIN_DIR: dir },
      timeoutMs: 60_000,
    });
    return { ...r, files: fs.readdirSync(dir), dir };
  };
  try {
    const sha = crypto.createHash('sha256').update(good).digest('hex');
    const ok = await install(`http://127.0.0.1:${port}/plugin.ez`, sha);
    assert.is(ok.exitCode, 0, ok.stderr);
    assert.equal(ok.files, ['rabbitmq_delayed_message_exchange-4.2.0.ez']);
    assert.ok(fs.readFileSync(path.join(ok.dir, ok.files[0])).equals(good));

    const tampered = await install(`http://127.0.0.1:${port}/plugin.ez`, 'f'.repeat(64));
    assert.is(tampered.exitCode, 1);
    assert.match(tampered.stderr, /is not f{64}: refused/);
    assert.equal(tampered.files, [], 'nothing left for the broker to load');

    const missing = await install(`http://127.0.0.1:${port}/gone.ez`, sha);
    assert.is(missing.exitCode, 1);
    assert.match(missing.stderr, /cannot download/);
    assert.equal(missing.files, []);
  } finally {
    server.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
});

test.run();
