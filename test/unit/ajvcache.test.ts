import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cachedValidator } from '../../scripts/lib/core/ajvcache.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';

const schema = JSON.stringify({
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: { type: 'string', minLength: 2 }, home: { type: 'string', format: 'uri' } },
});

test('ajvcache: the validator checks, reports errors verbosely, and its code is written once to the cache', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ajvcache-'));
  const saved = process.env.CONDUIT_CACHE_DIR;
  process.env.CONDUIT_CACHE_DIR = dir;
  try {
    const v = cachedValidator(schema, { formats: true });
    assert.ok(v({ name: 'ok', home: 'https://example.org/' }));
    assert.not.ok(v({ name: 'x', home: 'not a uri', extra: 1 }));
    const keywords = (v.errors ?? []).map((e) => e.keyword).sort();
    assert.equal(keywords, ['additionalProperties', 'format', 'minLength']);
    // verbose: the failing schema travels with the error (used to list the allowed keys)
    const extra = v.errors!.find((e) => e.keyword === 'additionalProperties')!;
    assert.equal(Object.keys((extra.parentSchema as { properties: object }).properties), ['name', 'home']);
    const files = fs.readdirSync(path.join(dir, 'ajv'));
    assert.is(files.length, 1);
    assert.ok(files[0].endsWith('.cjs'));
    // The same text again in this process: the same function, nothing new on disk.
    assert.is(cachedValidator(schema, { formats: true }), v);
    assert.is(fs.readdirSync(path.join(dir, 'ajv')).length, 1);
    // Other options are another entry.
    const plain = JSON.stringify({ type: 'string' });
    cachedValidator(plain);
    cachedValidator(plain, { formats: true });
    assert.is(fs.readdirSync(path.join(dir, 'ajv')).length, 3);
  } finally {
    if (saved === undefined) delete process.env.CONDUIT_CACHE_DIR;
    else process.env.CONDUIT_CACHE_DIR = saved;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('ajvcache: a new process evaluates the cached code without loading the compiler; a damaged entry is rebuilt', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ajvcache-'));
  const script = path.join(dir, 'probe.ts');
  fs.writeFileSync(
    script,
    [
      `import { createRequire } from 'node:module';`,
      `import { cachedValidator } from ${JSON.stringify(path.join(REPO_ROOT, 'scripts', 'lib', 'core', 'ajvcache.ts'))};`,
      `const v = cachedValidator(${JSON.stringify(schema)}, { formats: true });`,
      `const req = createRequire(${JSON.stringify(path.join(REPO_ROOT, 'package.json'))});`,
      `const compilerLoaded = Object.keys(req.cache).some((k) => k.endsWith('/ajv/dist/ajv.js'));`,
      `console.log(JSON.stringify({ valid: v({ name: 'no' }), invalid: v({}), compilerLoaded }));`,
    ].join('\n'),
  );
  const probe = () => JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', script], { cwd: REPO_ROOT, env: { ...process.env, CONDUIT_CACHE_DIR: dir }, encoding: 'utf8' }));
  try {
    assert.equal(probe(), { valid: true, invalid: false, compilerLoaded: true });
    assert.equal(probe(), { valid: true, invalid: false, compilerLoaded: false });
    const [entry] = fs.readdirSync(path.join(dir, 'ajv'));
    fs.writeFileSync(path.join(dir, 'ajv', entry), 'this is not javascript (');
    assert.equal(probe(), { valid: true, invalid: false, compilerLoaded: true });
    assert.equal(probe(), { valid: true, invalid: false, compilerLoaded: false });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('ajvcache: a schema that is not JSON is a SyntaxError', () => {
  assert.throws(
    () => cachedValidator('{ "type": '),
    (e: unknown) => e instanceof SyntaxError,
  );
});

test.run();
