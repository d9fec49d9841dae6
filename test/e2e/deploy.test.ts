// `npx zx scripts/deploy.ts` as an operator runs it, against the built-in cluster (registry `local`).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readAudit } from '../../scripts/lib/domain/audit.ts';
import { run, type RunResult } from '../../scripts/lib/core/exec.ts';
import type { Kube } from '../../scripts/lib/adapters/kube.ts';
import { tool } from '../../scripts/lib/adapters/tools.ts';
import { localCluster } from './support/localcluster.ts';
import { runScript } from '../helpers/zxscript.ts';

const test = suite('deploy.ts');
let kube: Kube;
let helm: string;
let existedBefore = false;

function deploy(args: string[]): Promise<RunResult> {
  return runScript('deploy', args);
}
async function revision(): Promise<number | undefined> {
  const r = await run(helm, ['history', 'conduit', '--namespace', 'conduit', '--kubeconfig', kube.target.kubeconfig!, '--kube-context', kube.target.context!, '--output', 'json']);
  return r.exitCode === 0 ? (JSON.parse(r.stdout) as { revision: number }[]).at(-1)?.revision : undefined;
}

test.before(async () => {
  kube = await localCluster();
  helm = await tool('helm');
  existedBefore = (await revision()) !== undefined;
});
test.after(async () => {
  if (!existedBefore) {
    await run(helm, ['uninstall', 'conduit', '--namespace', 'conduit', '--kubeconfig', kube.target.kubeconfig!, '--kube-context', kube.target.context!]);
    await kube.delete('namespace', 'conduit', { wait: false }).catch(() => false);
  }
});

test('--dry-run validates and prints the plan without changing anything', async () => {
  const before = await revision();
  const r = await deploy(['--dry-run', '--json']);
  assert.is(r.exitCode, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.is(out.dryRun, true);
  assert.is(out.plan.target.context, 'kwok-conduit');
  assert.ok(out.plan.upgradeArgs.includes('--rollback-on-failure'));
  assert.is(await revision(), before);
});

test('a bare deploy.ts deploys the chart to the local cluster and records it', async () => {
  const before = (await revision()) ?? 0;
  const r = await deploy(['--json']);
  assert.is(r.exitCode, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  // On a machine where the quickstart already deployed the same values, there is nothing to change.
  if (out.result === 'unchanged') {
    assert.ok(before > 0, 'unchanged is only possible for an installed release');
    assert.is(out.revision, before);
  } else {
    assert.is(out.result, 'succeeded');
    assert.is(out.revision, before + 1);
  }
  assert.is((await revision()) ?? 0, out.revision);
  assert.ok(out.workloads.some((w: { name: string }) => w.name === 'conduit-api'));
  assert.is((await readAudit(kube, 'conduit')).at(-1)?.result, out.result);
});

test('invalid values are refused before anything is deployed (exit 1, file and key named)', async () => {
  const before = await revision();
  const bad = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-e2e-')), 'bad.yaml');
  fs.writeFileSync(bad, 'api:\n  replicaCount: -3\n');
  const r = await deploy(['--values', bad]);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /api\.replicaCount/);
  assert.match(r.stderr, /bad\.yaml/);
  assert.match(r.stderr, /nothing was deployed/);
  assert.is(await revision(), before);
  const usage = await deploy(['--cluster', 'nowhere']);
  assert.is(usage.exitCode, 2);
  assert.match(usage.stderr, /unknown cluster "nowhere"/);
});

test.run();
