// tools.ts doctor as a user runs it: on this machine as it is (its real cache, engines, network and
// local cluster), and on a machine with nothing (an empty cache, no Go, no module proxy).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../scripts/lib/core/exec.ts';
import { releaseHosts, toolNames } from '../../scripts/lib/adapters/tools.ts';
import { runScript } from '../helpers/zxscript.ts';

const IDS = ['node', 'tools', 'go', 'goproxy', 'release-hosts', 'disk', 'engine', 'cluster'];
// Without a mirror, the hosts probed are the official release hosts.
const doctor = (env: Record<string, string | undefined> = {}) => runScript('tools', ['doctor', '--json'], { env: { CONDUIT_TOOLS_MIRROR: undefined, ...env }, timeoutMs: 120_000 });

interface Report {
  ok: boolean;
  failed: string[];
  warnings: string[];
  checks: { id: string; title: string; required: boolean; status: string; summary: string; fix?: string }[];
  facts: { node: { version: string }; tools: { name: string; state: string }[]; releaseHosts: { host: string; reachable: boolean }[]; settings: { cacheDir: string } };
}

function assertShape(doc: Report, exitCode: number): void {
  assert.equal(
    doc.checks.map((c) => c.id),
    IDS,
  );
  for (const c of doc.checks) {
    assert.ok(['ok', 'warn', 'fail', 'skip'].includes(c.status), `${c.id}: ${c.status}`);
    assert.type(c.required, 'boolean');
    assert.ok(c.summary.length > 0, c.id);
    if (c.status === 'warn' || c.status === 'fail') assert.ok(c.fix, `${c.id} has a problem but no fix`);
    if (c.status === 'fail') assert.ok(c.required, `${c.id} fails but is optional`);
  }
  assert.equal(
    doc.failed,
    doc.checks.filter((c) => c.status === 'fail').map((c) => c.id),
  );
  assert.equal(
    doc.warnings,
    doc.checks.filter((c) => c.status === 'warn').map((c) => c.id),
  );
  assert.is(exitCode, doc.ok ? 0 : 1);
  assert.is(doc.ok, doc.failed.length === 0);
  assert.is(doc.facts.node.version, process.versions.node);
  assert.equal(
    doc.facts.tools.map((t) => t.name),
    toolNames(),
  );
  assert.equal(
    doc.facts.releaseHosts.map((h) => h.host),
    releaseHosts(),
  );
}

test('doctor --json on this machine: one JSON document, every check judged, the exit code is the verdict', async () => {
  const r = await doctor();
  const doc = JSON.parse(r.stdout) as Report;
  assertShape(doc, r.exitCode);
  assert.match(r.stderr, /probe Node, Go, module proxy, release hosts/);
  // The machine the tests run on has what the tests need: Node, and every pinned tool.
  assert.is(doc.checks[0].status, 'ok');
  assert.is(doc.checks.find((c) => c.id === 'tools')?.status, 'ok', JSON.stringify(doc.checks[1]));
});

test('doctor on a machine with nothing to build with: tools, Go and the module proxy are required and missing (exit 1)', async () => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-doctor-empty-'));
  try {
    const withoutGo = (process.env.PATH ?? '')
      .split(path.delimiter)
      .filter((d) => d && !fs.existsSync(path.join(d, 'go')))
      .join(path.delimiter);
    const r = await doctor({ CONDUIT_CACHE_DIR: cache, PATH: withoutGo, CONDUIT_GO: undefined, GOPROXY: 'off', CONDUIT_TOOLS_SOURCE: 'build', CONDUIT_NO_TOOL_INSTALL: undefined });
    const doc = JSON.parse(r.stdout) as Report;
    assertShape(doc, r.exitCode);
    assert.is(r.exitCode, 1);
    assert.equal(doc.failed, ['tools', 'go', 'goproxy']);
    const byId = Object.fromEntries(doc.checks.map((c) => [c.id, c]));
    assert.match(byId.tools.fix!, new RegExp(`npx zx scripts/tools\\.ts install ${toolNames().join(' ')}$`));
    assert.match(byId.go.fix!, /https:\/\/go\.dev\/dl\//);
    assert.is(byId.goproxy.fix, 'go env -w GOPROXY=https://proxy.golang.org,direct');
    assert.is(byId['release-hosts'].status, 'skip');
    assert.match(byId.cluster.summary, /not created yet/);
    assert.is(doc.facts.settings.cacheDir, cache);
    assert.equal(fs.readdirSync(cache), [], 'doctor wrote into the cache');
  } finally {
    fs.rmSync(cache, { recursive: true, force: true });
  }
});

test('tools.ts --help lists doctor; doctor takes no names', async () => {
  const help = await runScript('tools', ['--help'], { timeoutMs: 60_000 });
  assert.match(help.stdout, /doctor\s+Check this machine/);
  const bad = await runScript('tools', ['doctor', 'helm'], { timeoutMs: 60_000 });
  assert.is(bad.exitCode, 2);
});

test.run();
