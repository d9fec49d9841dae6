// The deploy engine against the local cluster with the real chart and the `local` values layers:
// install, a no-change upgrade, a failed rollout that is rolled back, a lock held by someone else.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readAudit } from '../../scripts/lib/domain/audit.ts';
import { executeDeploy, planDeploy, releaseStatus, type DeployRequest } from '../../scripts/lib/engines/deploy.ts';
import { run } from '../../scripts/lib/core/exec.ts';
import type { Kube } from '../../scripts/lib/adapters/kube.ts';
import { acquireLock, readLock, releaseLock } from '../../scripts/lib/domain/lease.ts';
import { NEVER_READY_ANNOTATION } from '../../scripts/lib/engines/cluster.ts';
import { LOCAL_CONTEXT } from '../../scripts/lib/domain/target.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';
import { tool } from '../../scripts/lib/adapters/tools.ts';
import { Reporter } from '../../scripts/lib/core/ui.ts';
import { localDeployRequest } from './support/deployrequest.ts';
import { localCluster, rejection } from './support/localcluster.ts';

const test = suite('deploy engine');
let kube: Kube;
let helm: string;
let namespace: string;

const ui = Object.assign(new Reporter({ quiet: true }), { confirm: async () => false });

const request = (overrides: Record<string, unknown> = {}, timeout = '3m'): DeployRequest => localDeployRequest(namespace, { overrides, timeout });

test.before(async () => {
  kube = await localCluster();
  helm = await tool('helm');
  namespace = `e2e-deploy-${Date.now().toString(36)}`;
});
test.after(async () => {
  await kube.delete('namespace', namespace, { wait: false }).catch(() => false);
});

test('first install rolls out the chart, records the audit trail and releases the lock', async () => {
  const plan = planDeploy(request(), helm);
  assert.ok(plan.upgradeArgs.includes('--rollback-on-failure'));
  assert.ok(plan.upgradeArgs.includes('-') && !plan.upgradeArgs.some((a) => a.includes('never-ready')));
  const out = await executeDeploy(plan, kube, ui, { yes: false });
  assert.is(out.result, 'succeeded');
  assert.is(out.revision, 1);
  assert.ok(out.diff.firstInstall);
  assert.ok(out.workloads.length >= 3, JSON.stringify(out.workloads));
  for (const w of out.workloads) assert.match(w.ready, /^(\d+)\/\1$/, `${w.kind}/${w.name} ${w.ready}`);
  const ns = await kube.get('namespace', namespace);
  assert.is(ns?.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
  assert.equal(
    (await readAudit(kube, namespace)).map((e) => e.result),
    ['started', 'succeeded'],
  );
  assert.ok((await readLock(kube, namespace)).free);
});

test('an upgrade whose pods never become ready is rolled back', async () => {
  const overrides = { api: { podAnnotations: { [NEVER_READY_ANNOTATION]: 'true' } } };
  const e = await rejection(() => executeDeploy(planDeploy(request(overrides, '20s'), helm), kube, ui, { yes: false }));
  assert.match(e.message, /rolled back/);
  const rel = await releaseStatus(planDeploy(request(), helm));
  assert.is(rel?.info.status, 'deployed');
  assert.is(rel?.version, 3, 'revision 2 failed, revision 3 is the rollback');
  const trail = await readAudit(kube, namespace);
  assert.is(trail.at(-1)?.result, 'rolled-back');
  assert.ok((await readLock(kube, namespace)).free);
});

test('a deploy while someone else holds the lock fails fast, naming them, and changes nothing', async () => {
  const other = await acquireLock(kube, { namespace, holder: 'bob@ci pid 7', durationSeconds: 120, reason: 'deploy conduit to local' });
  try {
    const started = Date.now();
    const e = await rejection(() => executeDeploy(planDeploy(request(), helm), kube, ui, { yes: false }));
    assert.match(e.message, /held by bob@ci pid 7/);
    assert.ok(Date.now() - started < 60_000);
    assert.is((await releaseStatus(planDeploy(request(), helm)))?.version, 3);
  } finally {
    await releaseLock(kube, other);
  }
});

test('a gated upgrade while someone else holds the lock: its helm, started before the lock, is refused; nothing changes', async () => {
  const before = await releaseStatus(planDeploy(request(), helm), kube);
  const auditBefore = (await readAudit(kube, namespace)).length;
  const other = await acquireLock(kube, { namespace, holder: 'carol@ci pid 9', durationSeconds: 120, reason: 'deploy conduit to local' });
  try {
    const started = Date.now();
    let validated = 0;
    const e = await rejection(() =>
      executeDeploy(planDeploy(request({ api: { podAnnotations: { 'e2e.conduit.dev/gated': 'locked-out' } } }), helm), kube, ui, {
        yes: false,
        gate: { release: before!, validate: async () => void validated++ },
      }),
    );
    assert.match(e.message, /held by carol@ci pid 9/);
    assert.is((await readAudit(kube, namespace)).length, auditBefore, 'no audit entry: nothing was attempted');
    assert.ok(Date.now() - started < 60_000, `took ${Date.now() - started} ms`);
    assert.is(validated, 1, 'the validation started with helm');
    const now = await releaseStatus(planDeploy(request(), helm), kube);
    assert.is(now?.version, before!.version);
    assert.is(now?.info.status, 'deployed');
  } finally {
    await releaseLock(kube, other);
  }
});

test('a gated upgrade whose release changed after its helm started renders again with a new helm, then applies', async () => {
  const current = (await releaseStatus(planDeploy(request(), helm), kube))!;
  // What that helm saw: an older state of the release than the one found under the lock.
  const seen = { ...current, info: { ...current.info, last_deployed: '2020-01-01T00:00:00Z' } };
  const infos: string[] = [];
  const recording = Object.assign(new Reporter({ quiet: true }), { confirm: async () => false, info: (m: string) => void infos.push(m) });
  const values = { api: { podAnnotations: { 'e2e.conduit.dev/gated': 'again' } } };
  const out = await executeDeploy(planDeploy(request(values), helm), kube, recording, { yes: false, values, gate: { release: seen, validate: async () => undefined } });
  assert.is(out.result, 'succeeded');
  assert.is(out.revision, current.version + 1);
  assert.ok(
    infos.some((m) => /changed while the deploy waited for the lock .*helm renders it again/.test(m)),
    infos.join('\n'),
  );
  assert.ok(
    infos.some((m) => /upgrading: the values differ from revision \d+'s/.test(m)),
    infos.join('\n'),
  );
  assert.equal(out.diff.objects, ['Deployment/conduit-api']);
  const history = JSON.parse(
    (await run(helm, ['history', 'conduit', '--namespace', namespace, '--kube-context', LOCAL_CONTEXT, '--kubeconfig', kube.target.kubeconfig!, '--output', 'json'])).stdout,
  ) as { revision: number; status: string }[];
  assert.equal(history.map((h) => h.status).slice(-2), ['superseded', 'deployed'], 'one new revision; the refused helm stored nothing');
  const trail = await readAudit(kube, namespace);
  assert.equal(
    trail.slice(-2).map((e) => e.result),
    ['started', 'succeeded'],
  );
  assert.ok((await readLock(kube, namespace)).free);
});

/**
 * The protected gated upgrade of support/protected-deploy.ts on a pseudo-terminal (util-linux
 * `script`): once the question is on screen, `keys` are typed. Resolves with the exit code and output.
 */
function onTerminal(value: string, keys: string): Promise<{ code: number | null; output: string }> {
  const driver = path.join(REPO_ROOT, 'test', 'e2e', 'support', 'protected-deploy.ts');
  const command = [process.execPath, '--import', 'tsx', driver, namespace, value].map((a) => `'${a}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let typed = false;
    const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    const take = (d: Buffer) => {
      output += d.toString();
      if (!typed && output.includes('[y/N]')) {
        typed = true;
        child.stdin.write(keys);
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, output });
    });
  });
}

test('on a terminal: Ctrl-C at the question of a gated upgrade to a protected cluster stops it (exit 130), helm refused, nothing changed', async () => {
  const before = (await releaseStatus(planDeploy(request(), helm), kube))!;
  const auditBefore = (await readAudit(kube, namespace)).length;
  const r = await onTerminal('ctrl-c', '\x03');
  assert.is(r.code, 130, r.output);
  assert.match(r.output, /Deploy to protected cluster local\? \[y\/N\]/);
  assert.match(r.output, /ERROR deploy of conduit to local interrupted by SIGINT: nothing to undo/);
  const now = (await releaseStatus(planDeploy(request(), helm), kube))!;
  assert.is(now.version, before.version);
  assert.is(now.info.status, 'deployed');
  assert.ok((await readLock(kube, namespace)).free);
  const trail = await readAudit(kube, namespace);
  assert.equal(
    trail.slice(auditBefore).map((e) => e.result),
    ['interrupted'],
  );
});

test('on a terminal: "n" refuses the gated upgrade (exit 1), "y" applies it', async () => {
  const before = (await releaseStatus(planDeploy(request(), helm), kube))!;
  const no = await onTerminal('answer-n', 'n\r');
  assert.is(no.code, 1, no.output);
  assert.match(no.output, /ERROR deploy to protected cluster local not confirmed; nothing was changed/);
  assert.is((await releaseStatus(planDeploy(request(), helm), kube))!.version, before.version);
  const yes = await onTerminal('answer-y', 'y\r');
  assert.is(yes.code, 0, yes.output);
  assert.match(yes.output, /OUTCOME \{"result":"succeeded","revision":\d+\}/);
  assert.is((await releaseStatus(planDeploy(request(), helm), kube))!.version, before.version + 1);
});

test('a protected cluster is not deployed without confirmation', async () => {
  const req = request();
  req.target.protected = true;
  const e = await rejection(() => executeDeploy(planDeploy(req, helm), kube, ui, { yes: false }));
  assert.match(e.message, /not confirmed; nothing was changed/);
  assert.is((await releaseStatus(planDeploy(request(), helm)))?.version, 5);
});

test.run();
