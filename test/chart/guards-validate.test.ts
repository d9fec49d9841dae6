// The guards that keep a real install from breaking where the simulated cluster cannot tell (no pod
// runs there): each case, given as an overlay on the built-in local cluster, makes the real
// scripts/validate.ts exit 1 with the chart's refusal, the key named and located in the overlay.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../scripts/lib/core/exec.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';

interface Finding {
  message: string;
  key?: string;
  file?: string;
  line?: number;
}
interface Report {
  ok: boolean;
  clusters: { steps: { step: string; status: string; findings: Finding[] }[] }[];
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-guards-'));

async function validateOverlay(name: string, yaml: string): Promise<{ exitCode: number; findings: Finding[]; file: string }> {
  const file = path.join(tmp, `${name}.yaml`);
  fs.writeFileSync(file, yaml);
  const r = await run(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'scripts', 'validate.ts'), '--cluster', 'local', '--values', file, '--kube-version', '1.36', '--json'], {
    cwd: REPO_ROOT,
    env: { NO_COLOR: '1' },
    timeoutMs: 180_000,
  });
  const report = JSON.parse(r.stdout) as Report;
  assert.is(report.ok, r.exitCode === 0);
  return { exitCode: r.exitCode, findings: report.clusters.flatMap((c) => c.steps.filter((s) => s.status === 'failed').flatMap((s) => s.findings)), file };
}

const CASES: { name: string; overlay: string; key: string; line: number; says: RegExp }[] = [
  { name: 'redis-none', overlay: 'admin:\n  enabled: false\nredis:\n  mode: none\n', key: 'redis.mode', line: 4, says: /the Core API requires Redis, but redis\.mode is none/ },
  { name: 'webui-without-clerk', overlay: 'webui:\n  enabled: true\n', key: 'webui.enabled', line: 2, says: /webui\.clerk\.publishableKey or webui\.clerk\.existingSecret is empty/ },
  {
    name: 'webui-exposed-without-admin',
    overlay: 'webui:\n  enabled: true\n  clerk:\n    publishableKey: pk_test_x\n    existingSecret: clerk\ningress:\n  enabled: true\n  hosts:\n    webui: ui.example.com\n',
    key: 'ingress.hosts.webui',
    line: 9,
    says: /ingress\.hosts\.webui exposes the WebUI \(ui\.example\.com\) but the Admin API is not exposed/,
  },
  {
    name: 'external-redis-without-egress',
    overlay: 'redis:\n  mode: external\n  external:\n    host: cache.example.com\nnetworkPolicy:\n  externalServices:\n    redis:\n      cidrs: []\n',
    key: 'networkPolicy.externalServices.redis.cidrs',
    line: 8,
    says: /networkPolicy\.externalServices\.redis\.cidrs is empty/,
  },
  {
    name: 'admin-servicemonitor',
    overlay: 'monitoring:\n  serviceMonitor:\n    admin:\n      enabled: true\n',
    key: 'monitoring.serviceMonitor.admin.enabled',
    line: 4,
    says: /sent the master key as Authorization: Bearer/,
  },
];

for (const c of CASES) {
  test(`validate.ts refuses ${c.name}: exit 1, the refusal at ${c.key} of the overlay`, async () => {
    const r = await validateOverlay(c.name, c.overlay);
    assert.is(r.exitCode, 1, JSON.stringify(r.findings));
    const f = r.findings.find((x) => c.says.test(x.message));
    assert.ok(f, `expected ${c.says} in ${JSON.stringify(r.findings)}`);
    assert.is(f!.key, c.key);
    assert.is(f!.file, r.file);
    assert.is(f!.line, c.line);
  });
}

test('the same local cluster without those overlays validates (exit 0)', async () => {
  const r = await validateOverlay('nothing', '{}\n');
  assert.is(r.exitCode, 0, JSON.stringify(r.findings));
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test.run();
