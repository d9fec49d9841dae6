// Console logging of the two APIs: the chart switches the .NET console logger to JSON with a UTC
// timestamp and sets per-category levels, all through the `Logging__*` environment variables the
// apps read (ConduitLLM.Http builds its configuration from environment variables only).
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadComposeFile } from '../../scripts/lib/domain/compose-model.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';
import { configEnv, find, renderError, renderObjects, RELEASE, WEBUI_ON } from './helpers.ts';

const JSON_CONSOLE = {
  Logging__Console__FormatterName: 'json',
  Logging__Console__FormatterOptions__TimestampFormat: 'yyyy-MM-ddTHH:mm:ss.fffzzz',
  Logging__Console__FormatterOptions__UseUtcTimestamp: 'true',
};
const DEFAULT_LEVELS = { Logging__LogLevel__Default: 'Information', 'Logging__LogLevel__Microsoft.AspNetCore': 'Warning' };

const loggingEnv = (env: Record<string, string>) => Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('Logging__')));

test('by default both APIs log one JSON object per line with a UTC timestamp, without per-request lines', async () => {
  const objects = await renderObjects({ values: WEBUI_ON });
  for (const c of ['api', 'admin']) assert.equal(loggingEnv(configEnv(objects, c)), { ...JSON_CONSOLE, ...DEFAULT_LEVELS }, c);
  assert.equal(loggingEnv(configEnv(objects, 'webui')), {}, 'the WebUI (Next.js) reads no Logging__ setting');
});

test('format simple leaves the .NET default formatter and keeps the levels', async () => {
  const objects = await renderObjects({ values: { logging: { format: 'simple' } } });
  for (const c of ['api', 'admin']) assert.equal(loggingEnv(configEnv(objects, c)), DEFAULT_LEVELS, c);
});

test('levels: categories are added, changed, or removed with null; a component env entry wins for that component', async () => {
  const objects = await renderObjects({
    values: {
      logging: { levels: { 'Microsoft.AspNetCore': null, 'Microsoft.EntityFrameworkCore.Database.Command': 'Warning', Default: 'Warning' } },
      api: { env: { Logging__LogLevel__Default: 'Debug' } },
    },
  });
  assert.equal(loggingEnv(configEnv(objects, 'admin')), {
    ...JSON_CONSOLE,
    Logging__LogLevel__Default: 'Warning',
    'Logging__LogLevel__Microsoft.EntityFrameworkCore.Database.Command': 'Warning',
  });
  assert.is(configEnv(objects, 'api').Logging__LogLevel__Default, 'Debug');
});

test('changing the log settings rolls the pods (config checksum)', async () => {
  const checksum = async (values: Record<string, unknown>) => find(await renderObjects({ values }), 'Deployment', `${RELEASE}-api`).spec.template.metadata.annotations['checksum/config'];
  const json = await checksum({});
  assert.is.not(await checksum({ logging: { format: 'simple' } }), json);
  assert.is.not(await checksum({ logging: { levels: { Default: 'Warning' } } }), json);
});

test('the schema refuses an unknown format, an unknown level and a category name that is no .NET name', async () => {
  assert.match(await renderError({ values: { logging: { format: 'text' } } }), /logging[./]format/);
  assert.match(await renderError({ values: { logging: { levels: { Default: 'Info' } } } }), /logging[./]levels/);
  // Helm's schema library reports a bad property name at a wrong path, but names the key and the rule.
  assert.match(await renderError({ values: { logging: { levels: { 'Microsoft AspNetCore': 'Warning' } } } }), /'Microsoft AspNetCore' does not match pattern/);
});

test('the chart, the Compose stack and the shipped collector agree on the timestamp format', () => {
  const compose = loadComposeFile(path.join(REPO_ROOT, 'compose', 'compose.yaml'));
  for (const svc of ['api', 'admin']) {
    assert.equal(loggingEnv(compose.services[svc].environment as Record<string, string>), { ...JSON_CONSOLE, ...DEFAULT_LEVELS }, `compose ${svc}`);
  }
  // .NET "yyyy-MM-ddTHH:mm:ss.fffzzz" on a UTC DateTimeOffset = 2025-08-28T10:15:30.123+00:00.
  const processors = fs.readFileSync(path.join(REPO_ROOT, 'logs', 'otelcol', 'conduit-processors.yaml'), 'utf8');
  assert.ok(processors.includes('Time(log.cache["json"]["Timestamp"], "%Y-%m-%dT%H:%M:%S.%L%j")'), 'the collector parses that format');
});

test.run();
