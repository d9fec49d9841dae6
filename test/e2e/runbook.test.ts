// `npx zx scripts/runbook.ts ACTION` as an operator runs it, against one release of the real chart in
// a fresh namespace of the built-in local cluster (shared by the actions: each test builds on the last).
// Every action must change exactly what it says, --dry-run nothing, and no output, bundle or audit
// entry may contain a secret value of the release.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { stringify as toYaml } from 'yaml';
import { executeDeploy, planDeploy, type DeployRequest } from '../../scripts/lib/engines/deploy.ts';
import { run, type RunResult } from '../../scripts/lib/core/exec.ts';
import type { Kube, KubeObject } from '../../scripts/lib/adapters/kube.ts';
import { acquireLock, readLock, releaseLock } from '../../scripts/lib/domain/lease.ts';
import { readAudit } from '../../scripts/lib/domain/audit.ts';
import { LOCAL_CONTEXT } from '../../scripts/lib/domain/target.ts';
import { CHART_DIR, VALUES_DIR } from '../../scripts/lib/core/paths.ts';
import { MASTER_KEY_ANNOTATION, RESTART_ANNOTATION } from '../../scripts/lib/engines/runbook.ts';
import { tool } from '../../scripts/lib/adapters/tools.ts';
import { Reporter } from '../../scripts/lib/core/ui.ts';
import { localCluster } from './support/localcluster.ts';
import { runScript } from '../helpers/zxscript.ts';

const test = suite('runbook.ts');
let kube: Kube;
let helm: string;
let namespace: string;
let registry: string;
let tmp: string;
/** Every stdout/stderr the runbook printed, searched for secrets at the end. */
const outputs: string[] = [];

type Deployment = KubeObject & { spec: { replicas: number; template: { metadata: { annotations?: Record<string, string> } } } };
type Secret = KubeObject & { data?: Record<string, string> };

const LAYERS = [path.join(VALUES_DIR, 'environments', 'local.yaml'), path.join(VALUES_DIR, 'clusters', 'local.yaml')];
// admin gets an HPA (scale must respect it); api and webui keep a fixed count. The WebUI needs Clerk
// keys to be enabled (a test publishable key; the Secret is only referenced, kwok starts pods without it).
const BASE = {
  admin: { autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 2, targetCPUUtilizationPercentage: 70 } },
  webui: { enabled: true, clerk: { publishableKey: 'pk_test_cnVuYm9vay50ZXN0JA', existingSecret: 'conduit-clerk' } },
};

function request(overrides: Record<string, unknown>): DeployRequest {
  return {
    target: { cluster: 'e2e', context: LOCAL_CONTEXT, kubeconfig: kube.target.kubeconfig, namespace, release: 'conduit', protected: false },
    chartDir: CHART_DIR,
    valuesFiles: LAYERS,
    overrides,
    helmMajor: 4,
    timeout: '3m',
    actor: 'e2e@runbook',
  };
}

async function runbook(args: string[], cluster = 'e2e'): Promise<RunResult> {
  const r = await runScript('runbook', [...args, '--cluster', cluster, '--registry', registry], { timeoutMs: 5 * 60_000 });
  outputs.push(r.stdout, r.stderr);
  return r;
}
async function json(args: string[], cluster = 'e2e'): Promise<Record<string, any>> {
  const r = await runbook([...args, '--json'], cluster);
  assert.is(r.exitCode, 0, `${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
async function deployment(c: string): Promise<Deployment> {
  return (await kube.get<Deployment>('deployment', `conduit-${c}`, { namespace }))!;
}
async function revision(): Promise<number> {
  const r = await run(helm, ['history', 'conduit', '--namespace', namespace, '--kubeconfig', kube.target.kubeconfig!, '--kube-context', kube.target.context!, '--output', 'json']);
  return (JSON.parse(r.stdout) as { revision: number }[]).at(-1)!.revision;
}
/**
 * The state of every object a runbook action could touch: resourceVersion of Secrets, ConfigMaps and
 * the Lease; generation (spec changes only) of Deployments and HPAs, whose status the controllers keep
 * updating; the set of pods.
 */
async function versions(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const kind of ['secrets', 'configmaps', 'leases.coordination.k8s.io']) {
    for (const o of await kube.list(kind, { namespace })) out[`${o.kind}/${o.metadata.name}`] = o.metadata.resourceVersion ?? '';
  }
  for (const kind of ['deployments', 'hpa']) {
    for (const o of await kube.list(kind, { namespace })) out[`${o.kind}/${o.metadata.name}`] = `generation ${o.metadata.generation}`;
  }
  for (const o of await kube.list('pods', { namespace })) out[`Pod/${o.metadata.name}`] = o.metadata.uid ?? '';
  return out;
}
async function releaseSecretValues(): Promise<string[]> {
  const secrets = await kube.list<Secret>('secrets', { namespace, selector: 'app.kubernetes.io/instance=conduit' });
  return secrets
    .filter((s) => (s as { type?: string }).type !== 'helm.sh/release.v1')
    .flatMap((s) =>
      Object.entries(s.data ?? {})
        .filter(([k]) => k !== 'username')
        .map(([, v]) => Buffer.from(v, 'base64').toString()),
    )
    .filter((v) => v.length >= 8);
}
async function masterKey(): Promise<string> {
  const s = await kube.get<Secret>('secret', 'conduit-master-key', { namespace });
  return Buffer.from(s!.data!['master-key'], 'base64').toString();
}

const secrets = new Set<string>();

test.before(async () => {
  kube = await localCluster();
  helm = await tool('helm');
  namespace = `e2e-runbook-${Date.now().toString(36)}`;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-runbook-'));
  registry = path.join(tmp, 'clusters.yaml');
  // A registry of its own whose clusters point at the scratch namespace (layers copied next to it).
  for (const l of LAYERS) {
    const to = path.join(tmp, path.relative(VALUES_DIR, l));
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.copyFileSync(l, to);
  }
  const layers = LAYERS.map((l) => path.relative(VALUES_DIR, l));
  const entry = { description: 'e2e scratch namespace', context: LOCAL_CONTEXT, namespace, release: 'conduit', environment: 'local', layers, kubeVersion: '1.36' };
  fs.writeFileSync(registry, toYaml({ clusters: { e2e: { ...entry, protected: false }, 'e2e-protected': { ...entry, protected: true } } }));
  const ui = Object.assign(new Reporter({ quiet: true }), { confirm: async () => false });
  await executeDeploy(planDeploy(request(BASE), helm), kube, ui, { yes: false });
  await executeDeploy(planDeploy(request({ ...BASE, api: { podAnnotations: { 'conduit.test/revision': 'two' } } }), helm), kube, ui, { yes: false });
  for (const v of await releaseSecretValues()) secrets.add(v);
  assert.ok(secrets.size >= 2, 'master key and database password');
});
test.after(async () => {
  await kube.delete('namespace', namespace, { wait: false }).catch(() => false);
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('status reports the release, components, HPA and lock', async () => {
  const s = await json(['status']);
  assert.is(s.release.revision, 2);
  assert.is(s.release.status, 'deployed');
  assert.ok(s.release.chart);
  assert.equal(s.components.map((c: { component: string }) => c.component).sort(), ['admin', 'api', 'webui']);
  const admin = s.components.find((c: { component: string }) => c.component === 'admin');
  assert.equal({ min: admin.hpa.min, max: admin.hpa.max }, { min: 1, max: 2 });
  for (const c of s.components) assert.ok(c.images[0].includes(':'), c.images.join());
  assert.is(s.lock.held, false);
  const human = await runbook(['status']);
  assert.match(human.stdout, /revision 2 \(deployed\)/);
  assert.match(human.stdout, /deploy lock: free/);
});

test('--dry-run of every change prints the plan and changes nothing', async () => {
  const before = await versions();
  const cases = [
    ['restart', '--component', 'all'],
    ['scale', '--component', 'api', '--replicas', '3'],
    ['scale', '--component', 'admin', '--hpa-min', '2', '--hpa-max', '3'],
    ['rollback', '--to', '1'],
    ['rotate-master-key'],
  ];
  for (const args of cases) {
    const out = await json([...args, '--dry-run']);
    assert.is(out.dryRun, true);
    assert.is(out.plan.mutates, true);
    assert.ok(
      out.plan.steps.some((s: { mutates: boolean }) => s.mutates),
      args.join(' '),
    );
  }
  // Protected cluster, no terminal, no --yes: refused before anything happens.
  const refused = await runbook(['restart', '--component', 'api'], 'e2e-protected');
  assert.is(refused.exitCode, 1);
  assert.match(refused.stderr, /--yes/);
  assert.equal(await versions(), before);
});

test('restart sets the pod-template annotation of the component only and waits for the rollout', async () => {
  const adminBefore = await deployment('admin');
  const out = await json(['restart', '--component', 'api']);
  assert.is(out.result, 'succeeded');
  const api = await deployment('api');
  assert.ok(api.spec.template.metadata.annotations?.[RESTART_ANNOTATION]);
  assert.is((await deployment('admin')).metadata.resourceVersion, adminBefore.metadata.resourceVersion);
});

test('scale sets replicas, refuses a count under an HPA and moves the HPA bounds instead', async () => {
  const out = await json(['scale', '--component', 'api', '--replicas', '2']);
  assert.is((await deployment('api')).spec.replicas, 2);
  assert.ok(out.notes.some((n: string) => /later deploy/.test(n)));
  const refused = await runbook(['scale', '--component', 'admin', '--replicas', '2']);
  assert.is(refused.exitCode, 1);
  assert.match(refused.stderr, /HorizontalPodAutoscaler/);
  assert.match(refused.stderr, /--hpa-min/);
  await json(['scale', '--component', 'admin', '--hpa-min', '2', '--hpa-max', '3']);
  const hpa = await kube.get<KubeObject & { spec: { minReplicas: number; maxReplicas: number } }>('hpa', 'conduit-admin', { namespace });
  assert.equal([hpa!.spec.minReplicas, hpa!.spec.maxReplicas], [2, 3]);
});

test('a change waits for a held deploy lock: refused, nothing changed', async () => {
  const lock = await acquireLock(kube, { namespace, holder: 'someone@else', durationSeconds: 60, reason: 'deploy' });
  try {
    const before = (await deployment('webui')).metadata.resourceVersion;
    const r = await runbook(['restart', '--component', 'webui']);
    assert.is(r.exitCode, 1);
    assert.match(r.stderr, /someone@else/);
    assert.is((await deployment('webui')).metadata.resourceVersion, before);
    assert.match((await json(['status'])).lock.holder, /someone@else/);
  } finally {
    await releaseLock(kube, lock);
  }
});

test("unlock: nothing to clear when free; refused for a holder alive on this host; clears a gone machine's lock, audited", async () => {
  const free = await json(['unlock']);
  assert.is(free.cleared, false);
  assert.match(free.summary, /is free: nothing to clear/);

  const mine = await acquireLock(kube, { namespace, holder: 'e2e@this-host', durationSeconds: 30, reason: 'deploy in progress here' });
  try {
    const refused = await runbook(['unlock', '--yes']);
    assert.is(refused.exitCode, 1);
    assert.match(refused.stderr, /still runs on this host \(pid \d+\); nothing was changed/);
    assert.is((await readLock(kube, namespace)).holder, 'e2e@this-host');
  } finally {
    await releaseLock(kube, mine);
  }

  // A CI runner that vanished: its lock names a host this machine cannot see, and was renewed just now.
  const gone = { host: 'ci-runner-gone', holder: { pid: 4242, start: '1' }, children: [] };
  await acquireLock(kube, { namespace, holder: 'ci@ci-runner-gone pid 4242', durationSeconds: 30, reason: 'deploy conduit to e2e', processes: gone });
  const held = await runbook(['restart', '--component', 'webui']);
  assert.is(held.exitCode, 1);
  assert.match(held.stderr, /npx zx scripts\/runbook.ts unlock --cluster e2e/);
  const unconfirmed = await runbook(['unlock'], 'e2e-protected');
  assert.is(unconfirmed.exitCode, 1);
  assert.match(unconfirmed.stderr, /needs confirmation/);
  assert.is((await readLock(kube, namespace)).holder, 'ci@ci-runner-gone pid 4242', 'a refused unlock changes nothing');
  const done = await json(['unlock', '--yes'], 'e2e-protected');
  assert.is(done.cleared, true);
  assert.equal(done.previous.holder, 'ci@ci-runner-gone pid 4242');
  assert.match(done.warnings.join(' '), /was still valid/);
  const after = await readLock(kube, namespace);
  assert.ok(after.free && !after.holder);
  const entry = (await readAudit(kube, namespace)).at(-1)!;
  assert.equal([entry.action, entry.result], ['unlock', 'unlocked']);
  assert.is((entry.details as { previous: { holder: string } }).previous.holder, 'ci@ci-runner-gone pid 4242');
  // The lock is usable again.
  const restart = await runbook(['restart', '--component', 'webui']);
  assert.is(restart.exitCode, 0, restart.stderr);
});

test('rollback --to 1 makes a new revision from revision 1 and verifies the rollout', async () => {
  assert.is((await deployment('api')).spec.template.metadata.annotations?.['conduit.test/revision'], 'two');
  const out = await json(['rollback', '--to', '1']);
  assert.is(out.details.revision, 3);
  assert.is(await revision(), 3);
  assert.is((await deployment('api')).spec.template.metadata.annotations?.['conduit.test/revision'], undefined);
});

test('rotate-master-key writes a new key and rolls every reader onto it', async () => {
  const old = await masterKey();
  const out = await json(['rotate-master-key']);
  const fresh = await masterKey();
  secrets.add(fresh);
  assert.is.not(fresh, old);
  assert.is(fresh.length, 48);
  const rv = out.details.secretResourceVersion;
  for (const c of ['api', 'admin', 'webui']) assert.is((await deployment(c)).spec.template.metadata.annotations?.[MASTER_KEY_ANNOTATION], rv);
  const pods = await kube.list('pods', { namespace, selector: 'app.kubernetes.io/instance=conduit' });
  const readers = pods.filter((p) => ['api', 'admin', 'webui'].includes(p.metadata.labels?.['app.kubernetes.io/component'] ?? '') && !p.metadata.deletionTimestamp);
  assert.ok(readers.length >= 3);
  for (const p of readers) assert.is(p.metadata.annotations?.[MASTER_KEY_ANNOTATION], rv, p.metadata.name);
});

test('logs, history and diagnose read without changing anything', async () => {
  const before = await versions();
  const logs = await json(['logs', '--component', 'api', '--tail', '20']);
  assert.ok(logs.pods.length >= 1);
  assert.ok(logs.pods.every((p: { component: string }) => p.component === 'api'));
  const h = await json(['history', '--max', '5']);
  assert.equal(
    h.revisions.map((r: { revision: number }) => r.revision),
    [1, 2, 3],
  );
  const actions = h.audit.map((e: { action: string }) => e.action);
  for (const a of ['deploy', 'restart', 'scale', 'rollback', 'rotate-master-key']) assert.ok(actions.includes(a), `${a} in ${actions}`);
  assert.equal(await versions(), before);

  const bundle = path.join(tmp, 'bundle.tar.gz');
  const d = await json(['diagnose', '--out', bundle]);
  assert.is(d.file, bundle);
  assert.ok(fs.statSync(bundle).size > 500);
  const dir = path.join(tmp, 'x');
  fs.mkdirSync(dir);
  assert.is((await run('tar', ['-xzf', bundle, '-C', dir])).exitCode, 0);
  const root = path.join(dir, 'conduit-diagnose-e2e');
  for (const f of ['status.json', 'events.txt', 'describe.txt', 'values.yaml', 'history.json', 'audit.json']) assert.ok(fs.existsSync(path.join(root, f)), f);
  assert.match(fs.readFileSync(path.join(root, 'describe.txt'), 'utf8'), /conduit-api/);
  assert.match(fs.readFileSync(path.join(root, 'values.yaml'), 'utf8'), /masterKey:/);
  const files = (await run('find', [dir, '-type', 'f'])).stdout.trim().split('\n');
  assert.ok(files.some((f) => f.includes('/logs/')));
  for (const f of files) outputs.push(fs.readFileSync(f, 'utf8'));
});

test('no secret value appears in any output, the bundle or the audit trail', async () => {
  const audit = await kube.get<KubeObject & { data: Record<string, string> }>('configmap', 'conduit-audit', { namespace });
  const haystack = [...outputs, JSON.stringify(audit?.data ?? {})].join('\n');
  assert.ok(secrets.size >= 3, 'old key, new key, database password');
  for (const s of secrets) assert.not.ok(haystack.includes(s), `a secret value (${s.length} characters) was printed`);
});

test.run();
