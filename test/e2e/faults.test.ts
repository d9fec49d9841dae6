// Fault injection on the local cluster (its processes are ours to stop): deploy.ts killed with SIGKILL
// after taking the lock, during helm's apply (its process group only, as when the runner kills the job,
// and every process including helm, as when the runner vanishes), during the first install and during
// verify; the API server stopped and started again in the middle of an apply. After each fault the
// next plain `deploy.ts` must succeed within 90 s with no other command, leave the release `deployed`
// with no pending revision, free the lock, and the audit trail must show the interrupted deploy and the
// recovery; no secret may show in any output or audit entry. Every fault adds a row to the table
// printed at the end (support/faulttable.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { run } from '../../scripts/lib/core/exec.ts';
import { VALUES_DIR } from '../../scripts/lib/core/paths.ts';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Kube, KubeObject } from '../../scripts/lib/adapters/kube.ts';
import { readAudit, type StoredAuditEntry } from '../../scripts/lib/domain/audit.ts';
import { readRelease, releaseRevisions } from '../../scripts/lib/domain/helmrelease.ts';
import { readLock, processStart } from '../../scripts/lib/domain/lease.ts';
import { LOCAL_CONTEXT, localClusterPaths } from '../../scripts/lib/domain/target.ts';
import { recordFault } from './support/faulttable.ts';
import { NEVER_READY_VALUES, scratchTarget, startDeployJob, tempValues, waitFor, type Scratch } from './support/deploycli.ts';
import { localCluster, restartStoppedComponents, sleep } from './support/localcluster.ts';
import { runScript } from '../helpers/zxscript.ts';

const test = suite('faults: deploys that survive a crash');
let kube: Kube;
const scratches: Scratch[] = [];
const RECOVERY_LIMIT_MS = 90_000;

test.before(async () => {
  kube = await localCluster();
});
test.after(async () => {
  for (const s of scratches) await s.cleanup();
});

type Job = ReturnType<typeof startDeployJob>;

/** `runbook.ts status --json` on the scratch namespace, through a registry of its own naming it `fault`. */
async function runbookStatus(s: Scratch): Promise<Record<string, any>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-faults-'));
  const layers = ['environments/local.yaml', 'clusters/local.yaml'];
  for (const l of layers) {
    fs.mkdirSync(path.dirname(path.join(dir, l)), { recursive: true });
    fs.copyFileSync(path.join(VALUES_DIR, l), path.join(dir, l));
  }
  const entry = { description: 'fault scratch namespace', protected: false, context: LOCAL_CONTEXT, namespace: s.namespace, release: s.release, environment: 'local', layers, kubeVersion: '1.36' };
  fs.writeFileSync(path.join(dir, 'clusters.yaml'), toYaml({ clusters: { fault: entry } }));
  const r = await runScript('runbook', ['status', '--cluster', 'fault', '--registry', path.join(dir, 'clusters.yaml'), '--json'], { timeoutMs: 120_000 });
  fs.rmSync(dir, { recursive: true, force: true });
  assert.is(r.exitCode, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** Every process below `root` (children first found through /proc's parent pids). */
function descendants(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      parentOf.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone meanwhile */
    }
  }
  const found: number[] = [];
  const walk = (p: number) => {
    for (const [pid, ppid] of parentOf) if (ppid === p && !found.includes(pid)) (found.push(pid), walk(pid));
  };
  walk(root);
  return found;
}

/** SIGKILL of the deploy's process group (what a CI runner does to a cancelled job). */
function killGroup(job: Job): void {
  process.kill(-job.pid, 'SIGKILL');
}

/** SIGKILL of every process of the deploy, helm too (what a vanished runner or laptop amounts to). */
function killEverything(job: Job): void {
  const all = descendants(job.pid);
  process.kill(-job.pid, 'SIGKILL');
  for (const pid of all) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

function deployJob(s: Scratch, major: 3 | 4, extra: string[] = []): Job {
  return startDeployJob(['--namespace', s.namespace, '--release', s.release, '--helm', String(major), '--timeout', '5m', '--yes', ...extra]);
}

async function releaseStatus(s: Scratch): Promise<string> {
  const r = await readRelease(kube, s.namespace, s.release);
  return r ? `${r.info.status} (revision ${r.version})` : 'not installed';
}

/** What the fault left: the release, the lock and whether anything the dead deploy started still runs. */
async function stateLeft(s: Scratch): Promise<string> {
  const lock = await readLock(kube, s.namespace);
  const children = lock.processes?.children.filter((c) => processStart(c.pid) !== undefined) ?? [];
  const holderAlive = lock.processes ? processStart(lock.processes.holder.pid) !== undefined : true;
  const lockText = !lock.holder
    ? 'lock free'
    : lock.holderGone
      ? 'lock held by a dead pid'
      : lock.expired
        ? 'lock expired'
        : holderAlive
          ? 'lock held (holder alive)'
          : 'lock held by a dead pid whose helm still runs';
  return `release ${await releaseStatus(s)}; ${lockText}${children.length ? `; helm pid ${children.map((c) => c.pid).join(',')} still running` : ''}`;
}

/** Decoded values of the release's own Secrets (the chart-generated passwords and keys). */
async function secretValues(s: Scratch): Promise<string[]> {
  const secrets = await kube.list<KubeObject & { type?: string; data?: Record<string, string> }>('secrets', { namespace: s.namespace });
  return secrets
    .filter((x) => x.type !== 'helm.sh/release.v1')
    .flatMap((x) => Object.values(x.data ?? {}).map((v) => Buffer.from(v, 'base64').toString('utf8')))
    .filter((v) => v.length >= 12);
}

async function assertNoSecrets(s: Scratch, texts: string[]): Promise<void> {
  const values = await secretValues(s);
  assert.ok(values.length > 0, 'the release has generated secrets to look for');
  const audit = JSON.stringify(await readAudit(kube, s.namespace));
  for (const v of values) {
    for (const t of [...texts, audit]) assert.not.ok(t.includes(v), 'a secret value appeared in an output or the audit trail');
  }
}

/**
 * The next plain deploy (default values): succeeds within 90 s, the release ends `deployed` with no
 * pending revision, the lock is free, and the audit shows the killed deploy, then the recovery.
 */
async function recover(s: Scratch, major: 3 | 4, killedAuditCount: number, killed: Job, expectRecovery = true): Promise<{ ms: number; by: string }> {
  const started = performance.now();
  const r = await s.deploy(['--yes', '--helm', String(major)]);
  const ms = performance.now() - started;
  assert.is(r.exitCode, 0, `the next deploy failed:\n${r.stderr}`);
  assert.ok(ms < RECOVERY_LIMIT_MS, `the next deploy took ${Math.round(ms)} ms`);
  const release = await readRelease(kube, s.namespace, s.release);
  assert.is(release?.info.status, 'deployed');
  const revisions = await releaseRevisions(kube, s.namespace, s.release);
  assert.not.ok(
    revisions.some((x) => x.status.startsWith('pending-')),
    revisions.map((x) => `${x.version}:${x.status}`).join(' '),
  );
  const lock = await readLock(kube, s.namespace);
  assert.ok(lock.free && !lock.holder, JSON.stringify(lock));
  const audit: StoredAuditEntry[] = await readAudit(kube, s.namespace);
  const since = audit.slice(killedAuditCount);
  const recovered = since.find((e) => e.result === 'recovered');
  if (expectRecovery) assert.ok(recovered, `no recovery in the audit trail: ${since.map((e) => e.result).join(', ')}`);
  assert.ok(['succeeded', 'unchanged'].includes(since.at(-1)!.result), since.map((e) => e.result).join(', '));
  await assertNoSecrets(s, [r.stdout, r.stderr, killed.stdout(), killed.stderr()]);
  const how = recovered ? String(recovered.details?.action ?? '') : `a plain upgrade (${since.map((e) => e.result).join(', ')})`;
  const waited = /waiting for what it started to end/.test(r.stderr) ? "waited for the dead deploy's helm to end its own rollback; " : '';
  return { ms, by: `next deploy.ts: ${waited}${how}` };
}

/** A deployed release in a scratch namespace, ready for a fault. */
async function deployed(prefix: string, major: 3 | 4): Promise<Scratch> {
  const s = await scratchTarget(kube, prefix);
  scratches.push(s);
  const first = await s.deploy(['--yes', '--helm', String(major)]);
  assert.is(first.exitCode, 0, first.stderr);
  return s;
}

/** The audit entries of the killed deploy: `started`, with nothing after it from that deploy. */
async function assertAuditShowsKilled(s: Scratch, before: number): Promise<void> {
  const audit = await readAudit(kube, s.namespace);
  const own = audit.slice(before);
  assert.ok(
    own.some((e) => e.result === 'started'),
    `the killed deploy's start is in the audit trail: ${own.map((e) => e.result).join(', ')}`,
  );
  assert.not.ok(
    own.some((e) => ['succeeded', 'interrupted', 'rolled-back'].includes(e.result)),
    'a SIGKILLed deploy wrote no end entry',
  );
}

async function waitApplying(s: Scratch, job: Job, status: RegExp): Promise<void> {
  await waitFor('the apply step', () => /› helm upgrade --install/.test(job.stderr()), 120_000);
  const until = Date.now() + 60_000;
  while (!status.test(await releaseStatus(s))) {
    if (Date.now() > until) throw new Error(`the release never became ${status}: ${await releaseStatus(s)}\n${job.stderr()}`);
    await sleep(200);
  }
  await sleep(1500);
}

for (const [major, everything] of [
  [4, false],
  [4, true],
  [3, false],
  [3, true],
] as const) {
  const fault = everything ? 'SIGKILL of every process (deploy and helm)' : 'SIGKILL of the deploy process group';
  test(`${fault} during helm's apply (helm ${major}): the next plain deploy.ts recovers and succeeds`, async () => {
    const s = await deployed(`flt${major}${everything ? 'a' : 'g'}`, major);
    const auditBefore = (await readAudit(kube, s.namespace)).length;
    const job = deployJob(s, major, ['--values', tempValues('never-ready.yaml', NEVER_READY_VALUES)]);
    await waitApplying(s, job, /^pending-upgrade/);
    if (everything) killEverything(job);
    else killGroup(job);
    await job.exited;
    const left = await stateLeft(s);
    if (everything) {
      assert.match(left, /pending-upgrade/, 'helm died with it: the release stays pending');
      // runbook.ts status names the interrupted release and the command that repairs it.
      const status = await runbookStatus(s);
      assert.is(status.interrupted?.status, 'pending-upgrade');
      assert.match(status.interrupted?.fix ?? '', /^npx zx scripts\/deploy.ts --cluster fault/);
    }
    await assertAuditShowsKilled(s, auditBefore);
    const r = await recover(s, major, auditBefore, job);
    recordFault({ fault: `${fault}, helm ${major}`, phase: "helm's apply (pods never ready)", stateLeft: left, recoveredBy: r.by, recoverMs: r.ms, recovered: true });
  });
}

test('SIGKILL of every process right after the lock is taken (helm 4)', async () => {
  const s = await deployed('fltl', 4);
  const auditBefore = (await readAudit(kube, s.namespace)).length;
  const job = deployJob(s, 4, ['--set', 'api.podAnnotations.conduit\\.test/change=after-lock']);
  await Promise.race([job.until(/✔ take the deploy lock/), job.exited]);
  killEverything(job);
  await job.exited;
  const left = await stateLeft(s);
  assert.match(left, /lock held by a dead pid|lock free/);
  const r = await recover(s, 4, auditBefore, job);
  recordFault({ fault: 'SIGKILL of every process, helm 4', phase: 'right after taking the lock', stateLeft: left, recoveredBy: r.by, recoverMs: r.ms, recovered: true });
});

test('SIGKILL of every process during the first install (helm 4): the next deploy removes it and installs afresh', async () => {
  const s = await scratchTarget(kube, 'flti');
  scratches.push(s);
  const job = deployJob(s, 4, ['--values', tempValues('never-ready.yaml', NEVER_READY_VALUES)]);
  await waitApplying(s, job, /^pending-install/);
  killEverything(job);
  await job.exited;
  const left = await stateLeft(s);
  assert.match(left, /pending-install/);
  const secretsBefore = await secretValues(s);
  const r = await recover(s, 4, 0, job);
  // The generated Secrets (helm.sh/resource-policy: keep) survive the clean-up: same passwords as before.
  const secretsAfter = await secretValues(s);
  for (const v of secretsBefore) assert.ok(secretsAfter.includes(v), 'a kept Secret was regenerated by the clean-up');
  recordFault({ fault: 'SIGKILL of every process, helm 4', phase: 'first install (pods never ready)', stateLeft: left, recoveredBy: r.by, recoverMs: r.ms, recovered: true });
});

test('SIGKILL of the deploy process group during verify (helm 4)', async () => {
  const s = await deployed('fltv', 4);
  // verify is short on the simulated cluster: the kill goes out on the very output chunk that starts
  // it; a deploy that still got to its end first is tried again with another change.
  for (let attempt = 1; ; attempt++) {
    const auditBefore = (await readAudit(kube, s.namespace)).length;
    const job = deployJob(s, 4, ['--set', `api.podAnnotations.conduit\\.test/change=verify-${attempt}`]);
    await Promise.race([job.until(/› verify the workloads/), job.exited]);
    killGroup(job);
    await job.exited;
    const finished = (await readAudit(kube, s.namespace)).slice(auditBefore).some((e) => e.result === 'succeeded');
    if (finished && attempt < 4) continue;
    assert.not.ok(finished, 'the kill never landed during verify');
    const left = await stateLeft(s);
    await assertAuditShowsKilled(s, auditBefore);
    const r = await recover(s, 4, auditBefore, job);
    recordFault({ fault: 'SIGKILL of the deploy process group, helm 4', phase: 'verify', stateLeft: left, recoveredBy: r.by, recoverMs: r.ms, recovered: true });
    return;
  }
});

/**
 * Stop the local cluster's kube-apiserver, wait, and start it again (kwokctl's own command line for it),
 * then, as a real node's supervisor would, start again the components that exited meanwhile
 * (kube-controller-manager and kube-scheduler exit when they lose their leader lease).
 */
async function restartApiServer(downMs: number): Promise<string[]> {
  const pidFile = path.join(localClusterPaths().clusterDir, 'pids', 'kube-apiserver.pid');
  const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && processStart(pid) !== undefined; i++) await sleep(100);
  await sleep(downMs);
  const restarted = new Set(await restartStoppedComponents());
  for (let i = 0; i < 300; i++) {
    if ((await kube.raw('/readyz', { timeoutMs: 2000 }).catch(() => '')).trim() === 'ok') break;
    await sleep(200);
  }
  // Components that lose their lease exit a few seconds after the API server is back at the latest.
  for (let i = 0; i < 15; i++) {
    for (const c of await restartStoppedComponents()) restarted.add(c);
    await sleep(1000);
  }
  return [...restarted];
}

test('the API server stopped for a few seconds and started again during an apply (helm 4)', async () => {
  const s = await deployed('flta', 4);
  const auditBefore = (await readAudit(kube, s.namespace)).length;
  const job = deployJob(s, 4, ['--set', 'api.podAnnotations.conduit\\.test/change=apiserver']);
  await waitFor('the apply step', () => /› helm upgrade --install/.test(job.stderr()), 120_000);
  const down = performance.now();
  const restarted = await restartApiServer(4000);
  const downMs = performance.now() - down;
  assert.ok(restarted.includes('kube-apiserver'), restarted.join(', '));
  const code = await job.exited;
  process.stderr.write(`faults: the deploy during the API server restart exited ${code}; its last lines:\n${job.stderr().trim().split('\n').slice(-6).join('\n')}\n`);
  const left = `deploy exited ${code} (API server stopped 4 s, back and settled after ${(downMs / 1000).toFixed(1)} s); ${await stateLeft(s)}`;
  // The deploy itself may come through (helm and the lock renewals retry) or fail and roll back; either
  // way it ends by itself and frees the lock, so the next deploy has nothing to recover, only to deploy.
  const r = await recover(s, 4, auditBefore, job, false);
  recordFault({
    fault: 'kube-apiserver stopped and started again, helm 4',
    phase: "helm's apply",
    stateLeft: left,
    recoveredBy: code === 0 ? 'the deploy itself (helm and lock renewals retried); next deploy.ts: nothing to do' : r.by,
    recoverMs: r.ms,
    recovered: true,
  });
});

test.run();
