import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  activeServices,
  checkEnv,
  checkImages,
  interpolate,
  parseDuration,
  parseEnvText,
  renderForPodman,
  resolveDocument,
  startLayers,
  variablesUsed,
  type ComposeDocument,
} from '../../scripts/lib/domain/compose-model.ts';
import { isUserError } from '../../scripts/lib/core/errors.ts';

test('interpolate follows the Compose Specification forms', () => {
  const env = { A: 'x', EMPTY: '' };
  assert.is(interpolate('$A-${A}', env, 't'), 'x-x');
  assert.is(interpolate('${MISSING:-d}|${EMPTY:-d}|${EMPTY-d}|${MISSING-d}', env, 't'), 'd|d||d');
  assert.is(interpolate('${A:+alt}|${EMPTY:+alt}|${EMPTY+alt}', env, 't'), 'alt||alt');
  assert.is(interpolate('$$A costs $$5', env, 't'), '$A costs $5');
  assert.is(interpolate('${A?}', env, 't'), 'x');
  assert.is(interpolate('${EMPTY?err}', env, 't'), '');
  assert.throws(() => interpolate('${EMPTY:?set it}', env, 'services.api.environment.X'), /services\.api\.environment\.X: required variable EMPTY is empty: set it/);
  assert.throws(() => interpolate('${MISSING?gone}', env, 't'), /MISSING is not set: gone/);
  assert.is(interpolate('${MISSING:?x}', env, 't', false), '');
});

test('parseEnvText: comments, export, quotes, inline comments; bad lines name the line', () => {
  const e = parseEnvText('# c\nexport A=1\nB="two words" \nC=\'$x\'\nD=plain # note\nE=\n');
  assert.equal(
    e.map((x) => [x.key, x.value]),
    [
      ['A', '1'],
      ['B', 'two words'],
      ['C', '$x'],
      ['D', 'plain'],
      ['E', ''],
    ],
  );
  try {
    parseEnvText('A=1\nnot a line\n', 'x.env');
    assert.unreachable();
  } catch (err) {
    assert.ok(isUserError(err));
    assert.match((err as Error).message, /x\.env:2/);
  }
});

const doc: ComposeDocument = {
  services: {
    db: { image: 'postgres:17.6', environment: { POSTGRES_PASSWORD: '${DB_PASSWORD:?set it}' } },
    api: { image: '${API_IMAGE:?}', depends_on: { db: { condition: 'service_healthy' } }, environment: { DATABASE_URL: 'postgres://u:${DB_PASSWORD:?x}@db/c', PORT: '${PORT:-8080}' } },
    ui: { image: 'ui:1.0', profiles: ['webui'], depends_on: ['api'], 'x-conduit-required': ['CLERK_SECRET_KEY'] },
    trace: { image: 'jaeger:2', profiles: ['tracing'] },
  },
};

test('profiles select services; start layers follow depends_on', () => {
  assert.equal(activeServices(doc, []), ['db', 'api']);
  assert.equal(activeServices(doc, ['webui']), ['db', 'api', 'ui']);
  assert.throws(() => activeServices(doc, ['nope']), /unknown profile "nope"/);
  assert.equal(startLayers(doc, ['db', 'api', 'ui']), [['db'], ['api'], ['ui']]);
  const cyclic: ComposeDocument = { services: { a: { depends_on: ['b'] }, b: { depends_on: ['a'] } } };
  assert.throws(() => startLayers(cyclic, ['a', 'b']), /cycle/);
  assert.throws(() => startLayers(doc, ['ui']), /depends on api, which is not active/);
});

test('variablesUsed: required via :? and x-conduit-required, only for active services', () => {
  const base = variablesUsed(doc, activeServices(doc, []));
  assert.equal([...base.keys()].sort(), ['API_IMAGE', 'DB_PASSWORD', 'PORT']);
  assert.ok(base.get('DB_PASSWORD')?.required);
  assert.not.ok(base.get('PORT')?.required);
  const withUi = variablesUsed(doc, activeServices(doc, ['webui']));
  assert.ok(withUi.get('CLERK_SECRET_KEY')?.required);
});

test('checkEnv refuses missing, placeholder, default, short and URL-unsafe secrets', () => {
  const uses = variablesUsed(doc, activeServices(doc, ['webui']));
  const problems = (env: Record<string, string>, placeholders?: Record<string, string>) => checkEnv(env, uses, { placeholders }).map((p) => `${p.variable} ${p.problem}`);
  assert.equal(problems({ API_IMAGE: 'a:1', DB_PASSWORD: 'k3J9d8s7f6g5h4j3k2', CLERK_SECRET_KEY: 'sk_live_abc' }), []);
  assert.equal(problems({ DB_PASSWORD: 'k3J9d8s7f6g5h4j3k2' }), ['API_IMAGE is not set', 'CLERK_SECRET_KEY is not set']);
  assert.equal(problems({ API_IMAGE: 'a:1', DB_PASSWORD: 'postgres', CLERK_SECRET_KEY: 'sk_live_x' }), ['DB_PASSWORD is a placeholder or a well-known default']);
  assert.equal(problems({ API_IMAGE: 'a:1', DB_PASSWORD: 'CHANGE_ME_db_password', CLERK_SECRET_KEY: 'sk_live_x' }), ['DB_PASSWORD is a placeholder or a well-known default']);
  assert.equal(problems({ API_IMAGE: 'a:1', DB_PASSWORD: 'short1', CLERK_SECRET_KEY: 'sk_live_x' }), ['DB_PASSWORD is shorter than 16 characters']);
  assert.equal(problems({ API_IMAGE: 'a:1', DB_PASSWORD: 'Qz8d7s6f5g4h3j2k1l', CLERK_SECRET_KEY: 'sk_live_x' }, { DB_PASSWORD: 'Qz8d7s6f5g4h3j2k1l' }), [
    'DB_PASSWORD still has the value from .env.example',
  ]);
  const pg = variablesUsed({ services: { p: { environment: { X: '${POSTGRES_PASSWORD}' } } } }, ['p']);
  assert.equal(
    checkEnv({ POSTGRES_PASSWORD: 'abc/def+ghi@jklmnop' }, pg).map((p) => p.problem),
    ['contains characters other than letters and digits'],
  );
});

test('checkImages refuses latest, master and untagged references but accepts versions, master-<sha> and digests', () => {
  const d: ComposeDocument = {
    services: {
      a: { image: 'x/y:latest' },
      b: { image: 'reg:5000/y' },
      c: { image: 'y:1.2.3' },
      d: { image: 'y@sha256:' + 'a'.repeat(64) },
      e: { image: 'local', build: '.' },
      f: { image: 'ghcr.io/knnlabs/conduit-http:master' },
      g: { image: 'ghcr.io/knnlabs/conduit-http:master-7c3fd76' },
    },
  };
  assert.equal(
    checkImages(d).map((p) => p.variable),
    ['services.a.image', 'services.b.image', 'services.f.image'],
  );
  assert.match(checkImages(d)[2].problem, /uses the moving tag master/);
});

test('renderForPodman: env into private files, $ escaped, paths absolute, json-file logs mapped', () => {
  const resolved = resolveDocument(
    {
      services: {
        s: {
          image: 'i:1',
          profiles: ['p'],
          'x-conduit-required': ['A'],
          environment: { SECRET: '${S}', LITERAL: 'a$$b' },
          volumes: ['./conf:/etc/conf:ro', 'named:/data', { type: 'bind', source: '../x', target: '/x' }],
          build: { context: '../docker', dockerfile: 'r.Dockerfile' },
          logging: { driver: 'json-file', options: { 'max-size': '10m', 'max-file': '5' } },
          healthcheck: { test: ['CMD-SHELL', 'echo $$HOME'] },
        },
      },
    },
    { S: 'p4ss' },
    ['s'],
  );
  const { document, envFiles } = renderForPodman(resolved, '/stack/compose', '/tmp/priv');
  const s = document.services.s;
  assert.equal(envFiles, { '/tmp/priv/s.env': 'SECRET=p4ss\nLITERAL=a$b\n' });
  assert.equal(s.env_file, ['/tmp/priv/s.env']);
  assert.is(s.environment, undefined);
  assert.is(s.profiles, undefined);
  assert.is(s['x-conduit-required'], undefined);
  assert.equal(s.volumes, ['/stack/compose/conf:/etc/conf:ro', 'named:/data', { type: 'bind', source: '/stack/x', target: '/x' }]);
  assert.equal(s.build, { context: path.resolve('/stack/docker'), dockerfile: 'r.Dockerfile' });
  assert.equal(s.logging, { driver: 'k8s-file', options: { 'max-size': '10m' } });
  assert.equal(s.healthcheck, { test: ['CMD-SHELL', 'echo $$HOME'] });
  assert.not.ok(JSON.stringify(document).includes('p4ss'), 'the secret stays out of the rendered compose file');
});

test('parseDuration', () => {
  assert.is(parseDuration('90'), 90_000);
  assert.is(parseDuration('90s'), 90_000);
  assert.is(parseDuration('1h30m'), 5_400_000);
  assert.is(parseDuration('250ms'), 250);
  assert.throws(() => parseDuration('soon'), /not a duration/);
  assert.throws(() => parseDuration('5x'), /not a duration/);
});

test.run();
