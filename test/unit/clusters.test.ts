import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadRegistry, selectClusters } from '../../scripts/lib/domain/clusters.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';

const FIXTURE = path.join(REPO_ROOT, 'test', 'fixtures', 'values', 'clusters.yaml');

test('the fixture registry loads into typed clusters with absolute layer paths', () => {
  const r = loadRegistry(FIXTURE);
  assert.equal(
    r.clusters.map((c) => c.name),
    ['local', 'prod-eu'],
  );
  const prod = r.clusters[1];
  assert.is(prod.protected, true);
  assert.is(prod.kubeVersion, '1.36');
  assert.ok(prod.layers.every((l) => path.isAbsolute(l) && fs.existsSync(l)));
  assert.is(selectClusters(r, {})[0].name, 'local');
  assert.is(selectClusters(r, { all: true }).length, 2);
  assert.throws(() => selectClusters(r, { cluster: 'nope' }), /unknown cluster "nope"/);
});

function withRegistry(text: string, fn: (file: string) => void) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'registry-test-'));
  try {
    fs.cpSync(path.dirname(FIXTURE), dir, { recursive: true });
    const file = path.join(dir, 'clusters.yaml');
    fs.writeFileSync(file, text);
    fn(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const ENTRY = (extra: string) =>
  `clusters:\n  dev:\n    description: a test cluster\n    protected: false\n    context: dev\n    namespace: conduit\n    release: conduit\n    environment: local\n    layers: [environments/local.yaml, clusters/local.yaml]\n${extra}`;

test('registry errors name the file, line and key', () => {
  withRegistry(ENTRY('    protectd: true\n'), (file) => {
    assert.throws(
      () => loadRegistry(file),
      (e: Error) => /clusters\.yaml:10:5: clusters\.dev\.protectd: unknown key/.test(e.message),
    );
  });
  withRegistry(ENTRY('').replace('protected: false', 'protected: "yes please"'), (file) => {
    assert.throws(
      () => loadRegistry(file),
      (e: Error) => /clusters\.yaml:4:5: clusters\.dev\.protected: must be boolean/.test(e.message),
    );
  });
  withRegistry(ENTRY('').replace('clusters/local.yaml', 'clusters/missing.yaml'), (file) => {
    assert.throws(
      () => loadRegistry(file),
      (e: Error) => /clusters\.yaml:9:\d+: clusters\.dev\.layers\[1\]: layer file .*missing\.yaml does not exist/.test(e.message),
    );
  });
  withRegistry(ENTRY('').replace('environment: local', 'environment: production'), (file) => {
    assert.throws(
      () => loadRegistry(file),
      (e: Error) => /clusters\.dev\.environment: environment "production" but the layers do not include environments\/production\.yaml/.test(e.message),
    );
  });
});

test.run();
