// rollout.ts across a fleet of three registry entries (three namespaces of the built-in local cluster,
// one wave each), gated by a real Prometheus (3.16.0, built like promtool) that loads our rule files
// from alerts/ and scrapes one stand-in exporter per cluster (test/helpers/slo-exporter.ts: the app's
// request metric families, traffic set by the test). Helm 4 runs the whole story: a healthy rollout,
// an error burst in the second wave's soak (stopped, rolled back, third wave untouched, exit 1 naming
// the gate), resume once the burst is over, an unreachable Prometheus (nothing changes), Ctrl-C in a
// soak and resume, and an abort from a second process while a wave soaks. Helm 3 runs the healthy
// rollout and the breach.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { stringify as toYaml } from 'yaml';
import { run, type RunResult } from '../../scripts/lib/core/exec.ts';
import type { Kube, KubeObject } from '../../scripts/lib/adapters/kube.ts';
import { readAudit, type StoredAuditEntry } from '../../scripts/lib/domain/audit.ts';
import { readLock } from '../../scripts/lib/domain/lease.ts';
import { LOCAL_CONTEXT } from '../../scripts/lib/domain/target.ts';
import { REPO_ROOT, VALUES_DIR } from '../../scripts/lib/core/paths.ts';
import { tool } from '../../scripts/lib/adapters/tools.ts';
import { startStandInExporter, type StandInExporter } from '../helpers/slo-exporter.ts';
import { freePort, instantQuery, startPrometheus, type PrometheusServer } from '../helpers/prometheus-server.ts';
import { localCluster, sleep } from './support/localcluster.ts';
import { waitFor } from './support/deploycli.ts';
import { runScript, scriptPath } from '../helpers/zxscript.ts';

const ROLLOUT_SCRIPT = scriptPath('rollout');
const LAYERS = ['environments/local.yaml', 'clusters/local.yaml'];
const HEALTHY = { rps: 100, errorRatio: 0.001, slowRatio: 0 };
const BURST = { rps: 2000, errorRatio: 0.9 };
/** After the burst: healthy traffic at a volume that brings the 5m error ratio back under the threshold within seconds. */
const RECOVERED = { rps: 20000, errorRatio: 0 };
const CLUSTERS = ['w1', 'w2', 'w3'] as const;
const WAVES = ['first', 'second', 'third'];
let resolvedKube: Kube;

interface Fleet {
  major: 3 | 4;
  tmp: string;
  registry: string;
  namespaces: Record<string, string>;
  exporters: Record<string, StandInExporter>;
  prometheus: PrometheusServer;
}

function writeRegistry(f: Omit<Fleet, 'registry'>, file: string, urlOf: (cluster: string) => string): string {
  const clusters = Object.fromEntries(
    CLUSTERS.map((c) => [
      c,
      {
        description: `e2e rollout ${c}`,
        context: LOCAL_CONTEXT,
        namespace: f.namespaces[c],
        release: 'conduit',
        environment: 'local',
        layers: LAYERS,
        protected: false,
        kubeVersion: '1.36',
        prometheus: { url: urlOf(c) },
      },
    ]),
  );
  const rollout = { soak: '2s', interval: '1s', waves: CLUSTERS.map((c, i) => ({ name: WAVES[i], clusters: [c] })) };
  fs.writeFileSync(file, toYaml({ clusters, rollout }));
  return file;
}

async function setUp(major: 3 | 4): Promise<Fleet> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-rollout-'));
  for (const l of LAYERS) {
    fs.mkdirSync(path.dirname(path.join(tmp, l)), { recursive: true });
    fs.copyFileSync(path.join(VALUES_DIR, l), path.join(tmp, l));
  }
  const id = `${Date.now().toString(36)}${major}`;
  const namespaces = Object.fromEntries(CLUSTERS.map((c) => [c, `e2e-ro-${id}-${c}`]));
  const exporters: Record<string, StandInExporter> = {};
  for (const c of CLUSTERS) exporters[c] = await startStandInExporter(HEALTHY);
  const prometheus = await startPrometheus({ targets: CLUSTERS.map((c) => ({ hostPort: exporters[c].hostPort, namespace: namespaces[c] })) });
  const f = { major, tmp, namespaces, exporters, prometheus };
  return { ...f, registry: writeRegistry(f, path.join(tmp, 'clusters.yaml'), () => prometheus.url) };
}

async function tearDown(f: Fleet | undefined, kube: Kube | undefined): Promise<void> {
  if (!f) return;
  await f.prometheus.stop();
  for (const e of Object.values(f.exporters)) await e.close();
  for (const ns of Object.values(f.namespaces)) await kube?.delete('namespace', ns, { wait: false }).catch(() => false);
  fs.rmSync(f.tmp, { recursive: true, force: true });
}

function baseArgs(f: Fleet, tag: string): string[] {
  return ['--image-tag', tag, '--yes', '--skip-image-check', '--helm', String(f.major), '--timeout', '3m', '--registry', f.registry];
}

function rollout(args: string[]): Promise<RunResult> {
  return runScript('rollout', args);
}

/** rollout.ts in its own process group (a terminal's foreground job), so Ctrl-C reaches it as a terminal sends it. */
function rolloutJob(args: string[]) {
  const child = spawn('npx', ['zx', ROLLOUT_SCRIPT, ...args], { cwd: REPO_ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number>((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1))));
  return { stderr: () => err, stdout: () => out, exited, ctrlC: () => process.kill(-child.pid!, 'SIGINT') };
}

async function history(f: Fleet, c: string): Promise<{ revision: number; status: string; app_version: string; description: string }[]> {
  const kube = resolvedKube;
  const scope = ['--kubeconfig', kube.target.kubeconfig!, '--kube-context', LOCAL_CONTEXT, '--namespace', f.namespaces[c]];
  const r = await run(await tool(f.major === 3 ? 'helm3' : 'helm'), ['history', 'conduit', '--output', 'json', ...scope], { timeoutMs: 60_000 });
  return r.exitCode === 0 ? JSON.parse(r.stdout) : [];
}

/** The image tag the release's current revision deploys (from its values). */
async function deployedTag(f: Fleet, c: string): Promise<string | undefined> {
  const d = await resolvedKube.get<KubeObject & { spec: { template: { spec: { containers: { image: string }[] } } } }>('deployment', 'conduit-api', { namespace: f.namespaces[c] });
  return d?.spec.template.spec.containers[0].image.split(':').at(-1);
}

async function rolloutRecords(f: Fleet, c: string): Promise<(StoredAuditEntry & { details: Record<string, any> })[]> {
  const entries = await readAudit(resolvedKube, f.namespaces[c]).catch(() => []);
  return entries.filter((e) => e.action === 'rollout') as (StoredAuditEntry & { details: Record<string, any> })[];
}

const events = (rs: { details: Record<string, any> }[], id: string) => rs.filter((r) => r.details.id === id).map((r) => r.details.event);
const output = (r: RunResult) => `${r.stdout}\n${r.stderr}`;

async function errorRatio(f: Fleet, c: string): Promise<number | undefined> {
  const r = await instantQuery(f.prometheus.url, `slo:sli_error:ratio_rate5m{slo="conduit-api-availability", namespace="${f.namespaces[c]}"}`);
  return r.length ? Number(r[0].value[1]) : undefined;
}

/** A healthy fleet is rolled out wave by wave; each wave waits its soak; the audit shows every step. */
async function healthyRollout(f: Fleet): Promise<string> {
  for (let i = 0; i < 60 && (await Promise.all(CLUSTERS.map((c) => errorRatio(f, c)))).some((v) => v === undefined); i++) await sleep(500);
  const r = await rollout(['start', ...baseArgs(f, 'e2e-r1'), '--json']);
  assert.is(r.exitCode, 0, output(r));
  const out = JSON.parse(r.stdout);
  assert.equal(
    out.waves.map((w: { wave: string }) => w.wave),
    WAVES,
  );
  for (const c of CLUSTERS) {
    assert.equal(
      (await history(f, c)).map((h) => h.status),
      ['deployed'],
      `${c} has one revision`,
    );
    assert.is(await deployedTag(f, c), 'e2e-r1');
    const rs = await rolloutRecords(f, c);
    // A first install: the namespace (and its trail) exists from the deploy on.
    assert.equal(events(rs, out.id), ['deployed', 'soak-passed', ...(c === 'w3' ? ['completed'] : [])], `${c}: ${JSON.stringify(events(rs, out.id))}`);
    const deployed = rs.find((x) => x.details.event === 'deployed')!;
    const passed = rs.find((x) => x.details.event === 'soak-passed')!;
    assert.ok(Date.parse(passed.time) - Date.parse(deployed.time) >= 2000, `${c} soaked its 2s`);
    assert.ok(passed.details.gate.some((g: { name: string; ok: boolean }) => g.name.startsWith('conduit-api-availability') && g.ok));
  }
  // Waves in order: the second wave starts after the first one's soak passed.
  const firstPassed = (await rolloutRecords(f, 'w1')).find((x) => x.details.event === 'soak-passed')!.time;
  const secondStarted = (await rolloutRecords(f, 'w2')).find((x) => x.details.event === 'deployed')!.time;
  assert.ok(secondStarted >= firstPassed, `${secondStarted} >= ${firstPassed}`);
  return out.id;
}

/** An error burst in the second wave's soak: stopped, that cluster rolled back, the third untouched, exit 1 naming the gate. */
async function breachInSecondWave(f: Fleet): Promise<void> {
  const before3 = await history(f, 'w3');
  const job = rolloutJob(['start', ...baseArgs(f, 'e2e-r2'), '--soak', '12s']);
  await waitFor('the soak of the second wave', () => job.stderr().includes('soak wave second'), 5 * 60_000);
  f.exporters.w2.set(BURST);
  // The burst lasts until Prometheus has recorded it and the gate (every 1s) has had time to ask.
  for (let i = 0; i < 120 && ((await errorRatio(f, 'w2')) ?? 0) <= 0.1; i++) await sleep(250);
  await sleep(2000);
  f.exporters.w2.set(RECOVERED);
  const code = await job.exited;
  const text = `${job.stdout()}\n${job.stderr()}`;
  assert.is(code, 1, text);
  assert.match(text, /gate of wave second was breached/);
  assert.match(text, /conduit-api-availability burn rate \(5m\): error ratio [\d.]+% > 7\.20?0?%/);
  assert.match(text, /query: slo:sli_error:ratio_rate5m\{slo="conduit-api-availability", namespace="e2e-ro-/);
  assert.match(text, /Waves not started: third/);
  const h2 = await history(f, 'w2');
  assert.is(h2.length, 3, JSON.stringify(h2));
  assert.is(h2.at(-1)!.status, 'deployed');
  assert.match(h2.at(-1)!.description, /[Rr]ollback to 1/);
  assert.is(await deployedTag(f, 'w2'), 'e2e-r1', 'the second cluster runs its previous revision again');
  assert.is(await deployedTag(f, 'w1'), 'e2e-r2', 'the first wave keeps the new release');
  assert.equal(await history(f, 'w3'), before3, 'the third cluster is untouched');
  const ev = (await rolloutRecords(f, 'w2')).map((r) => r.details.event).slice(-4);
  assert.equal(ev, ['deploying', 'deployed', 'breached', 'rolled-back']);
  assert.ok((await readLock(resolvedKube, f.namespaces.w2)).free, 'no deploy lock left behind');
}

/** The burst is over: resume completes the rollout; status tells the whole story. */
async function resumeAfterBurst(f: Fleet): Promise<void> {
  for (let i = 0; i < 60 && ((await errorRatio(f, 'w2')) ?? 1) >= 0.05; i++) await sleep(500);
  const r = await rollout(['resume', ...baseArgs(f, 'e2e-r2'), '--soak', '2s']);
  assert.is(r.exitCode, 0, output(r));
  assert.match(r.stdout, /completed/);
  assert.is(await deployedTag(f, 'w2'), 'e2e-r2');
  assert.is(await deployedTag(f, 'w3'), 'e2e-r2');
  assert.is((await history(f, 'w1')).length, 2, 'the first wave, already passed, is not deployed again');
  const s = await rollout(['status', '--registry', f.registry, '--json']);
  assert.is(s.exitCode, 0, output(s));
  const st = JSON.parse(s.stdout).rollout;
  assert.is(st.outcome, 'completed');
  assert.equal(
    st.waves.map((w: { status: string }) => w.status),
    ['passed', 'passed', 'passed'],
  );
  const story = st.entries.map((e: { cluster: string; event: string }) => `${e.cluster}:${e.event}`);
  for (const step of ['w1:soak-passed', 'w2:breached', 'w2:rolled-back', 'w2:soak-passed', 'w3:completed']) assert.ok(story.includes(step), `${step} in ${story.join(' ')}`);
  const human = await rollout(['status', '--registry', f.registry]);
  assert.match(human.stdout, /breached: conduit-api-availability burn rate \(5m\): error ratio/);
  assert.match(human.stdout, /completed/);
}

/** Prometheus unreachable: the gate fails closed with a clear error; nothing else changes. */
async function unreachablePrometheus(f: Fleet): Promise<void> {
  const port = await freePort();
  const broken = writeRegistry(f, path.join(f.tmp, 'broken.yaml'), (c) => (c === 'w2' ? `http://127.0.0.1:${port}` : f.prometheus.url));
  const histories = await Promise.all(CLUSTERS.map((c) => history(f, c)));
  const audits = await Promise.all(CLUSTERS.map((c) => readAudit(resolvedKube, f.namespaces[c])));
  const r = await rollout(['start', ...baseArgs(f, 'e2e-r3'), '--registry', broken]);
  assert.is(r.exitCode, 1, output(r));
  assert.match(r.stderr, new RegExp(`the rollout gate cannot ask Prometheus; nothing was deployed:\\s+w2: Prometheus at http://127\\.0\\.0\\.1:${port} did not answer: ECONNREFUSED`));
  assert.equal(await Promise.all(CLUSTERS.map((c) => history(f, c))), histories, 'no release changed');
  assert.equal(
    (await Promise.all(CLUSTERS.map((c) => readAudit(resolvedKube, f.namespaces[c])))).map((a) => a.length),
    audits.map((a) => a.length),
    'no audit entry',
  );
}

/** Ctrl-C during a soak: a consistent, recorded state; resume goes on from that wave. */
async function ctrlCInSoak(f: Fleet): Promise<void> {
  const job = rolloutJob(['start', ...baseArgs(f, 'e2e-r4'), '--soak', '60s']);
  await waitFor('the soak of the first wave', () => /soak wave first/.test(job.stderr()) && /left;/.test(job.stderr()), 5 * 60_000);
  job.ctrlC();
  const code = await job.exited;
  assert.is(code, 130, `${job.stdout()}\n${job.stderr()}`);
  assert.match(job.stderr(), /interrupted during the soak of wave first/);
  assert.is(await deployedTag(f, 'w1'), 'e2e-r4');
  assert.is(await deployedTag(f, 'w2'), 'e2e-r2', 'the second wave was not started');
  assert.ok((await readLock(resolvedKube, f.namespaces.w1)).free, 'no deploy lock left behind');
  const s = JSON.parse((await rollout(['status', '--registry', f.registry, '--json'])).stdout).rollout;
  assert.is(s.outcome, 'interrupted');
  assert.equal(
    s.waves.map((w: { status: string }) => w.status),
    ['interrupted', 'pending', 'pending'],
  );
  const h1 = (await history(f, 'w1')).length;
  const r = await rollout(['resume', ...baseArgs(f, 'e2e-r4'), '--soak', '2s']);
  assert.is(r.exitCode, 0, output(r));
  assert.is((await history(f, 'w1')).length, h1, 'the interrupted wave is soaked again, not deployed again');
  for (const c of CLUSTERS) assert.is(await deployedTag(f, c), 'e2e-r4');
}

/**
 * abort from a second machine while a rollout soaks its first wave: recorded in the cluster it
 * touched, nothing rolled back; the running rollout stops before its next wave; status says
 * aborted; resume and a second abort refuse.
 */
async function abortWhileRunning(f: Fleet): Promise<void> {
  const before = await Promise.all(CLUSTERS.map((c) => deployedTag(f, c)));
  const job = rolloutJob(['start', ...baseArgs(f, 'e2e-r5'), '--soak', '20s']);
  await waitFor('the soak of the first wave', () => /soak wave first/.test(job.stderr()) && /left;/.test(job.stderr()), 5 * 60_000);
  const a = await rollout(['abort', '--registry', f.registry, '--reason', 'e2e: wrong image', '--json']);
  assert.is(a.exitCode, 0, output(a));
  const aborted = JSON.parse(a.stdout);
  assert.equal(aborted.aborted, ['w1'], 'recorded in the one cluster the rollout had touched');
  const code = await job.exited;
  const text = `${job.stdout()}\n${job.stderr()}`;
  assert.is(code, 1, text);
  assert.match(text, new RegExp(`rollout ${aborted.id} was aborted \\(rollout\\.ts abort\\) during wave first; nothing was rolled back\\.\\s+Waves not started: second, third\\.`));
  assert.is(await deployedTag(f, 'w1'), 'e2e-r5', 'nothing is rolled back');
  assert.equal(await Promise.all(['w2', 'w3'].map((c) => deployedTag(f, c))), before.slice(1), 'later waves untouched');
  assert.ok((await readLock(resolvedKube, f.namespaces.w1)).free, 'no deploy lock left behind');
  const last = (await rolloutRecords(f, 'w1')).filter((r) => r.details.id === aborted.id).at(-1)!;
  assert.is(last.details.event, 'aborted', 'the aborted wave is not marked passed afterwards');
  assert.is(last.details.reason, 'e2e: wrong image');
  assert.equal(
    (await rolloutRecords(f, 'w2')).filter((r) => r.details.id === aborted.id),
    [],
  );
  const st = JSON.parse((await rollout(['status', '--registry', f.registry, '--json'])).stdout).rollout;
  assert.is(st.id, aborted.id);
  assert.is(st.outcome, 'aborted');
  const resumed = await rollout(['resume', ...baseArgs(f, 'e2e-r5')]);
  assert.is(resumed.exitCode, 1, output(resumed));
  assert.match(resumed.stderr, new RegExp(`rollout ${aborted.id} was aborted; it cannot be resumed`));
  const again = await rollout(['abort', '--registry', f.registry]);
  assert.is(again.exitCode, 1, output(again));
  assert.match(again.stderr, /has aborted; there is nothing to abort/);
}

for (const major of [4, 3] as const) {
  const t = suite(`rollout.ts (helm ${major})`);
  let fleet: Fleet | undefined;
  t.before(async () => {
    resolvedKube = await localCluster();
    fleet = await setUp(major);
  });
  t.after(async () => tearDown(fleet, resolvedKube));
  t('a healthy fleet is rolled out wave by wave; each wave waits its soak; the audit shows every step', async () => void (await healthyRollout(fleet!)));
  t('an error burst in the second wave stops the rollout, rolls that cluster back, leaves the third untouched, exit 1 naming the gate', () => breachInSecondWave(fleet!));
  t('after the burst, resume completes the rollout and status tells the whole story', () => resumeAfterBurst(fleet!));
  if (major === 4) {
    t('Prometheus unreachable: the gate fails closed with a clear error and nothing changes', () => unreachablePrometheus(fleet!));
    t('Ctrl-C in a soak leaves a consistent state and resume continues', () => ctrlCInSoak(fleet!));
    t('abort while a wave soaks: recorded, nothing rolled back, the rollout stops before its next wave; resume refuses', () => abortWhileRunning(fleet!));
  }
  t.run();
}
