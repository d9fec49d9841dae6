// chart/files/ holds byte-identical copies of alerts/*.rules.yaml and dashboards/*.json.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { syncChartFiles } from '../../scripts/lib/domain/chartfiles.ts';

test('the chart copies in this repository are up to date', () => {
  const r = syncChartFiles({ check: true });
  assert.equal(r.stale, [], 'run: npx zx scripts/monitoring.ts sync');
  assert.ok(r.current.some((f) => f.startsWith('chart/files/alerts/')));
  assert.ok(r.current.some((f) => f.startsWith('chart/files/dashboards/')));
});

function fixture(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'chartfiles-'));
  const w = (p: string, s: string) => {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), s);
  };
  w('alerts/a.rules.yaml', 'groups: []\n');
  w('alerts/tests/a.test.yaml', 'tests: []\n');
  w('dashboards/d.json', '{"uid":"d"}\n');
  w('dashboards/versions.yaml', 'd: {}\n');
  w('chart/files/alerts/old.rules.yaml', 'groups: []\n');
  w('chart/files/alerts/README.md', 'keep me\n');
  w('chart/files/backup/backup.sh', '#!/bin/sh\n');
  w('chart/files/dashboards/d.json', '{"uid":"d","stale":true}\n');
  return root;
}

test('check mode reports drift and changes nothing', () => {
  const root = fixture();
  const before = fs.readFileSync(path.join(root, 'chart/files/dashboards/d.json'), 'utf8');
  const r = syncChartFiles({ check: true, root });
  assert.equal(r.stale.sort(), ['chart/files/alerts/a.rules.yaml', 'chart/files/alerts/old.rules.yaml', 'chart/files/dashboards/d.json']);
  assert.equal(r.removed, ['chart/files/alerts/old.rules.yaml']);
  assert.is(fs.readFileSync(path.join(root, 'chart/files/dashboards/d.json'), 'utf8'), before);
  assert.ok(fs.existsSync(path.join(root, 'chart/files/alerts/old.rules.yaml')));
  assert.not.ok(fs.existsSync(path.join(root, 'chart/files/alerts/a.rules.yaml')));
  fs.rmSync(root, { recursive: true, force: true });
});

test('sync copies, deletes stale copies and leaves other files alone', () => {
  const root = fixture();
  syncChartFiles({ check: false, root });
  assert.is(fs.readFileSync(path.join(root, 'chart/files/alerts/a.rules.yaml'), 'utf8'), 'groups: []\n');
  assert.is(fs.readFileSync(path.join(root, 'chart/files/dashboards/d.json'), 'utf8'), '{"uid":"d"}\n');
  assert.not.ok(fs.existsSync(path.join(root, 'chart/files/alerts/old.rules.yaml')));
  assert.ok(fs.existsSync(path.join(root, 'chart/files/alerts/README.md')));
  assert.ok(fs.existsSync(path.join(root, 'chart/files/backup/backup.sh')));
  assert.not.ok(fs.existsSync(path.join(root, 'chart/files/dashboards/versions.yaml')));
  assert.not.ok(fs.existsSync(path.join(root, 'chart/files/alerts/tests')));
  assert.equal(syncChartFiles({ check: true, root }).stale, []);
  fs.rmSync(root, { recursive: true, force: true });
});

test.run();
