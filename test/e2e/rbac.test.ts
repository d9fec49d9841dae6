// The least-privilege deployer (docs/rbac.md) on the local cluster, whose API server enforces RBAC.
// The shipped rbac/conduit-deployer.yaml is applied to a fresh namespace, and the scripts run as its
// ServiceAccount, authenticated by a token only (a kubeconfig of its own, no admin certificate):
// - with helm 4 and helm 3 it deploys, upgrades, rolls back (runbook.ts) and creates and restores a
//   backup (backup.ts --cluster); with helm 4 every other runbook action runs too;
// - for every verb of every rule of the Role, an identity bound to the Role without that verb is
//   stopped by the preflight of a command that needs it (exit 1, the verb and resource named);
// - real runs without a permission stop before anything changes: no namespace, release revision,
//   lock or audit entry appears or moves.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseAllDocuments, stringify as toYaml } from 'yaml';
import { run, type RunResult } from '../../scripts/lib/core/exec.ts';
import { Kube, type KubeObject } from '../../scripts/lib/adapters/kube.ts';
import { restConfigFor } from '../../scripts/lib/adapters/kuberest.ts';
import { REPO_ROOT, VALUES_DIR } from '../../scripts/lib/core/paths.ts';
import { tool } from '../../scripts/lib/adapters/tools.ts';
import { readAudit } from '../../scripts/lib/domain/audit.ts';
import { DEFAULT_LOCK_NAME } from '../../scripts/lib/domain/lease.ts';
import { checkPermissions } from '../../scripts/lib/domain/permission-check.ts';
import {
  covers,
  DEPLOYER_FILE,
  DEPLOYER_NAME,
  deployerRules,
  permissionKey,
  permissionsFor,
  rulePermissions,
  usesOf,
  type PermissionUse,
  type RoleRule,
} from '../../scripts/lib/domain/permissions.ts';
import { startPostgres, type PostgresServer } from './services.ts';
import { localCluster, sleep } from './support/localcluster.ts';

const test = suite('least-privilege deployer');
const LAYERS = [path.join(VALUES_DIR, 'environments', 'local.yaml'), path.join(VALUES_DIR, 'clusters', 'local.yaml')];
// admin autoscaled, so that a restore must pause (delete and re-create) its HPA.
const VALUES = 'admin:\n  autoscaling:\n    enabled: true\n    minReplicas: 1\n    maxReplicas: 2\n    targetCPUUtilizationPercentage: 70\n';
let kube: Kube;
let tmp: string;
let pg: PostgresServer;
const namespaces: string[] = [];
const outputs: string[] = [];
/** The namespace of the helm 4 proof (its release stays for the real-run refusals). */
let installed: { namespace: string; registry: string; kubeconfig: string; backup: { dest: string; id: string } } | undefined;

interface Identity {
  kubeconfig: string;
  context: string;
  token: string;
}

/** The objects of the shipped manifest (the file itself, not a regeneration), moved to `namespace`. */
function shippedObjects(namespace: string): KubeObject[] {
  const objects = parseAllDocuments(fs.readFileSync(path.join(REPO_ROOT, DEPLOYER_FILE), 'utf8'))
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => Boolean(o));
  return objects.map((o) => {
    const moved = structuredClone(o) as KubeObject & { subjects?: { namespace?: string }[] };
    if (o.kind === 'Namespace') moved.metadata.name = namespace;
    else moved.metadata.namespace = namespace;
    for (const s of moved.subjects ?? []) s.namespace = namespace;
    return moved;
  });
}

/** A ServiceAccount, a Role with `rules` and the binding, for one identity of the tests. */
function identityObjects(namespace: string, name: string, rules: RoleRule[]): KubeObject[] {
  const metadata = { name, namespace };
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata, rules } as KubeObject,
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata,
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    } as KubeObject,
  ];
}

/** A token of the ServiceAccount (TokenRequest, as `kubectl create token` asks for it) in a kubeconfig of its own, mode 0600. */
async function identity(namespace: string, serviceAccount: string): Promise<Identity> {
  const token = (await kube.call(['create', 'token', serviceAccount, '--duration', '1h'], { namespace })).trim();
  const admin = restConfigFor(kube.target)!;
  const context = `e2e-${serviceAccount}`;
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'local', cluster: { server: admin.server.origin, 'certificate-authority-data': admin.ca!.toString('base64') } }],
    users: [{ name: serviceAccount, user: { token } }],
    contexts: [{ name: context, context: { cluster: 'local', user: serviceAccount, namespace } }],
    'current-context': context,
  };
  const dir = fs.mkdtempSync(path.join(tmp, 'id-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  fs.writeFileSync(kubeconfig, toYaml(config), { mode: 0o600 });
  return { kubeconfig, context, token };
}

/** A cluster registry whose `e2e` entry is the namespace, reached through `context`. */
function registryFor(namespace: string, context: string): string {
  const dir = fs.mkdtempSync(path.join(tmp, 'reg-'));
  for (const l of LAYERS) {
    const to = path.join(dir, path.relative(VALUES_DIR, l));
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.copyFileSync(l, to);
  }
  const entry = { description: 'e2e least-privilege deployer', context, namespace, release: 'conduit', environment: 'local', protected: false, kubeVersion: '1.36' };
  fs.writeFileSync(path.join(dir, 'clusters.yaml'), toYaml({ clusters: { e2e: { ...entry, layers: LAYERS.map((l) => path.relative(VALUES_DIR, l)) } } }));
  return path.join(dir, 'clusters.yaml');
}

/** `scripts/<script>.ts ARGS --registry R` as the identity of `kubeconfig` (nothing else in its environment points at the cluster). */
async function cli(script: string, args: string[], o: { registry: string; kubeconfig: string; env?: Record<string, string> }): Promise<RunResult> {
  const r = await run(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'scripts', `${script}.ts`), ...args, '--registry', o.registry], {
    cwd: REPO_ROOT,
    env: { KUBECONFIG: o.kubeconfig, CI: '1', ...o.env },
    timeoutMs: 10 * 60_000,
  });
  outputs.push(r.stdout, r.stderr);
  return r;
}

async function revisions(namespace: string): Promise<number[]> {
  const secrets = await kube.list('secrets', { namespace, selector: 'owner=helm,name=conduit' });
  return secrets.map((s) => Number(s.metadata.labels?.version)).sort((a, b) => a - b);
}

/** What a refused command must leave as it found it: release revisions, the lock and the audit trail. */
async function footprint(namespace: string): Promise<string> {
  const lease = await kube.get('leases.coordination.k8s.io', DEFAULT_LOCK_NAME, { namespace });
  const audit = await kube.get('configmap', 'conduit-audit', { namespace });
  const hpas = (await kube.list('hpa', { namespace })).map((h) => `${h.metadata.name}@${h.metadata.resourceVersion}`);
  const deployments = (await kube.list('deployments', { namespace })).map((d) => `${d.metadata.name}@${d.metadata.generation}`);
  return JSON.stringify({ revisions: await revisions(namespace), lease: lease?.metadata.resourceVersion, audit: audit?.metadata.resourceVersion, hpas, deployments });
}

async function newNamespace(prefix: string): Promise<string> {
  const ns = `e2e-rbac-${prefix}-${crypto.randomBytes(3).toString('hex')}`;
  namespaces.push(ns);
  return ns;
}

test.before(async () => {
  [kube, pg] = await Promise.all([localCluster(), startPostgres()]);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-rbac-'));
  fs.writeFileSync(path.join(tmp, 'values.yaml'), VALUES);
  await pg.createDatabase('conduit');
  await pg.sql('conduit', 'CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT g, md5(g::text) FROM generate_series(1, 500) g;');
});

test.after(async () => {
  for (const ns of namespaces) await kube.delete('namespace', ns, { wait: false }).catch(() => false);
  await pg?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** The shipped manifest in a fresh namespace, and its ServiceAccount as the identity of the scripts. */
async function deployerIn(prefix: string): Promise<{ namespace: string; id: Identity; registry: string }> {
  const namespace = await newNamespace(prefix);
  await kube.apply(shippedObjects(namespace), { fieldManager: 'e2e-admin' });
  const id = await identity(namespace, DEPLOYER_NAME);
  const kc = fs.readFileSync(id.kubeconfig, 'utf8');
  assert.not.match(kc, /client-certificate|client-key/, 'the identity has a token only');
  assert.is(fs.statSync(id.kubeconfig).mode & 0o777, 0o600);
  return { namespace, id, registry: registryFor(namespace, id.context) };
}

async function backupRoundTrip(o: { registry: string; kubeconfig: string; namespace: string; helm: string[] }): Promise<{ dest: string; id: string }> {
  const dest = fs.mkdtempSync(path.join(tmp, 'backups-'));
  const created = await cli('backup', ['create', '--cluster', 'e2e', ...o.helm, '--database-url', pg.url('conduit'), '--to', dest, '--json'], { ...o, env: pg.env });
  assert.is(created.exitCode, 0, created.stderr);
  const manifest = JSON.parse(created.stdout) as { id: string; manifest: { source: { revision: number } } };
  assert.is(manifest.manifest.source.revision, (await revisions(o.namespace)).at(-1));
  await pg.sql('conduit', 'DELETE FROM notes WHERE id > 250;');
  const restored = await cli(
    'backup',
    ['restore', '--cluster', 'e2e', '--from', dest, '--backup', manifest.id, '--database-url', pg.url('conduit'), '--clean', '--yes', '--pause-autoscaling', '--timeout', '2m', '--json'],
    { ...o, env: pg.env },
  );
  assert.is(restored.exitCode, 0, restored.stderr);
  assert.is((await pg.sql('conduit', 'SELECT count(*) FROM notes;')).trim(), '500');
  assert.ok(await kube.get('hpa', 'conduit-admin', { namespace: o.namespace }), 'the paused HPA is back');
  return { dest, id: manifest.id };
}

for (const major of [4, 3] as const) {
  test(`helm ${major}: the shipped ServiceAccount, with a token only, deploys, upgrades, rolls back and restores a backup`, async () => {
    const { namespace, id, registry } = await deployerIn(`h${major}`);
    const as = { registry, kubeconfig: id.kubeconfig };
    const helm = ['--helm', String(major)];
    const deploy = (extra: string[]) => cli('deploy', ['--cluster', 'e2e', ...helm, '--skip-image-check', '--timeout', '3m', '--values', path.join(tmp, 'values.yaml'), '--json', ...extra], as);

    const first = await deploy([]);
    assert.is(first.exitCode, 0, first.stderr);
    assert.equal(await revisions(namespace), [1]);
    const second = await deploy(['--set', 'api.podAnnotations.rbac=two']);
    assert.is(second.exitCode, 0, second.stderr);
    assert.equal(await revisions(namespace), [1, 2]);

    const rollback = await cli('runbook', ['rollback', '--cluster', 'e2e', ...helm, '--timeout', '2m'], as);
    assert.is(rollback.exitCode, 0, rollback.stderr);
    assert.equal(await revisions(namespace), [1, 2, 3]);
    const api = await kube.get<KubeObject & { spec: { template: { metadata: { annotations?: Record<string, string> } } } }>('deployment', 'conduit-api', { namespace });
    assert.is(api?.spec.template.metadata.annotations?.rbac, undefined, 'revision 3 is revision 1 again');

    const backup = await backupRoundTrip({ ...as, namespace, helm });
    const audit = await readAudit(kube, namespace);
    assert.equal(
      audit.filter((e) => e.result === 'succeeded').map((e) => e.action),
      ['deploy', 'deploy', 'rollback', 'restore'],
    );
    if (major === 4) installed = { namespace, ...as, backup };
  });
}

test('helm 4: every other runbook action runs as the ServiceAccount', async () => {
  assert.ok(installed, 'the helm 4 proof ran');
  const bundle = path.join(tmp, 'bundle.tar.gz');
  for (const args of [
    ['status'],
    ['history'],
    ['restart', '--component', 'api', '--timeout', '2m'],
    ['scale', '--component', 'admin', '--hpa-min', '1', '--hpa-max', '3', '--timeout', '2m'],
    ['scale', '--component', 'api', '--replicas', '1', '--timeout', '2m'],
    ['logs'],
    ['rotate-master-key', '--timeout', '2m'],
    ['diagnose', '--out', bundle],
    ['unlock'],
  ]) {
    const r = await cli('runbook', [...args, '--cluster', 'e2e'], installed);
    assert.is(r.exitCode, 0, `${args.join(' ')}: ${r.stderr}`);
  }
  assert.ok(fs.statSync(bundle).size > 0);
});

/** The command whose preflight must name a permission: one of those that need it, taking turns so that each command's preflight is tried. */
function commandFor(use: PermissionUse): { script: string; args: string[] } {
  const [verb, action] = use.split(' ');
  if (verb === 'deploy') return { script: 'deploy', args: ['--cluster', 'e2e', '--check-permissions'] };
  if (verb === 'backup') return { script: 'backup', args: [action, '--cluster', 'e2e', '--check-permissions'] };
  const needs: Record<string, string[]> = { restart: ['--component', 'api'], scale: ['--component', 'api', '--replicas', '1'] };
  return { script: 'runbook', args: [action, ...(needs[action] ?? []), '--cluster', 'e2e', '--check-permissions'] };
}

interface Cut {
  name: string;
  rule: number;
  verb: string;
  rules: RoleRule[];
  use: PermissionUse;
}

/** One case per verb of every rule: the Role without that verb, and a command that needs it. */
function cuts(): Cut[] {
  const rules = deployerRules();
  let turn = 0;
  return rules.flatMap((rule, i) =>
    rule.verbs.map((verb) => {
      const uses = [
        ...new Set(
          rulePermissions(rule)
            .filter((p) => p.verb === verb)
            .flatMap(usesOf),
        ),
      ];
      const without = rules.map((r, j) => (j === i ? { ...r, verbs: r.verbs.filter((v) => v !== verb) } : r)).filter((r) => r.verbs.length);
      return { name: `cut-${i}-${verb}`, rule: i, verb, rules: without, use: uses[turn++ % uses.length] };
    }),
  );
}

/** A client that acts as the identity (its token only). */
async function clientOf(id: Identity): Promise<Kube> {
  return new Kube(await tool('kubectl'), { kubeconfig: id.kubeconfig, context: id.context });
}

/** Waits until the RBAC authorizer sees an identity's binding (it may read its namespace, or list events). */
async function bound(as: Kube, namespace: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const answers = await as.reviewAccess([
      { verb: 'list', group: '', resource: 'events', namespace },
      { verb: 'get', group: '', resource: 'namespaces', namespace },
    ]);
    if (answers.some(Boolean)) return;
    await sleep(100);
  }
  throw new Error(`the binding of ${as.target.context} did not take effect`);
}

/** What the preflight of `use` must find missing when `verb` is cut from `rule`: exactly the permissions of the use it covered. */
function expectedMissing(c: Cut): string[] {
  const cut = rulePermissions(deployerRules()[c.rule]).filter((p) => p.verb === c.verb);
  const missing = permissionsFor(c.use).filter((q) => cut.some((p) => covers(p, q)));
  // A deploy that may not read its namespace cannot tell whether it must create it: that is named too.
  const blind = c.use === 'deploy' && missing.some((p) => p.resource === 'namespaces');
  return [...missing.map(permissionKey), ...(blind ? ['create namespaces'] : [])].sort();
}

/**
 * For every verb of every rule, an identity bound to the Role without it. The preflight of a command
 * that needs the verb (they take turns) must find exactly what was cut missing, as the API server's
 * authorizer answers for that identity; for one cut per command, the command itself is run.
 */
test('removing any verb of any rule of the Role makes a preflight name it, exit 1, nothing changed', async () => {
  const namespace = await newNamespace('cut');
  const cases = cuts();
  assert.ok(cases.length >= 60, `${cases.length} cases`);
  await kube.apply([...shippedObjects(namespace), ...cases.flatMap((c) => identityObjects(namespace, c.name, c.rules))], { fieldManager: 'e2e-admin' });
  const before = await footprint(namespace);
  const failures: string[] = [];
  const viaCli = new Set<string>();
  const one = async (c: Cut) => {
    const id = await identity(namespace, c.name);
    const as = await clientOf(id);
    try {
      await bound(as, namespace);
      const check = await checkPermissions(as, c.use, namespace);
      const missing = check.missing.map(permissionKey).sort();
      if (JSON.stringify(missing) !== JSON.stringify(expectedMissing(c))) failures.push(`${c.name}, ${c.use}: missing ${missing.join(', ') || 'nothing'}; expected ${expectedMissing(c).join(', ')}`);
    } finally {
      as.close();
    }
    const { script, args } = commandFor(c.use);
    if (viaCli.has(`${script} ${args[0]}`)) return;
    viaCli.add(`${script} ${args[0]}`);
    // Every other command asks through kubectl (as with exec-plugin credentials) instead of the direct client.
    const transport = { CONDUIT_KUBE_TRANSPORT: viaCli.size % 2 ? 'kubectl' : 'direct' };
    const r = await cli(script, args, { registry: registryFor(namespace, id.context), kubeconfig: id.kubeconfig, env: transport });
    const problems = [
      r.exitCode !== 1 && `exit ${r.exitCode}`,
      !r.stderr.includes('stopped before changing anything') && 'no preflight refusal',
      ...expectedMissing(c)
        .map((k) => `${k} in namespace ${namespace}`)
        .filter((n) => !r.stderr.includes(n))
        .map((n) => `does not name "${n}"`),
      !r.stderr.includes(DEPLOYER_FILE) && `no pointer to ${DEPLOYER_FILE}`,
    ].filter(Boolean);
    if (problems.length) failures.push(`${c.name} via ${script} ${args.join(' ')}: ${problems.join('; ')}\n${r.stderr.slice(-600)}`);
  };
  const queue = [...cases];
  const worker = async () => {
    for (let c = queue.shift(); c; c = queue.shift()) await one(c);
  };
  await Promise.all([worker(), worker(), worker()]);
  assert.equal(failures, [], failures.join('\n\n'));
  assert.ok(viaCli.size >= 6, [...viaCli].join(', '));
  assert.is(await footprint(namespace), before, 'no revision, lock or audit entry');
});

test('real runs without one permission stop before anything changes', async () => {
  assert.ok(installed, 'the helm 4 proof ran');
  const ns = installed.namespace;
  const rules = deployerRules();
  const without = (key: string) => {
    const out = rules.map((r) => ({ ...r, verbs: r.verbs.filter((v) => !rulePermissions({ ...r, verbs: [v] }).some((p) => permissionKey(p) === key)) }));
    const removed = out.findIndex((r, i) => r.verbs.length !== rules[i].verbs.length);
    assert.ok(removed >= 0, `${key} is in the Role`);
    return out.filter((r) => r.verbs.length);
  };
  const refuse = async (name: string, key: string, script: string, args: string[], namespace = ns) => {
    await kube.apply(identityObjects(namespace, name, without(key)), { fieldManager: 'e2e-admin' });
    const id = await identity(namespace, name);
    const as = await clientOf(id);
    await bound(as, namespace).finally(() => as.close());
    const before = await footprint(namespace);
    const r = await cli(script, args, { registry: registryFor(namespace, id.context), kubeconfig: id.kubeconfig, env: pg.env });
    assert.is(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, /stopped before changing anything/);
    assert.ok(r.stderr.includes(`${key} in namespace ${namespace}`), r.stderr);
    assert.is(await footprint(namespace), before, `${script} ${args[0]}: nothing changed`);
  };
  // A gated upgrade (helm already started, waiting for the verdict) without patch on Deployments.
  await refuse('no-patch', 'patch deployments.apps', 'deploy', ['--cluster', 'e2e', '--skip-image-check', '--values', path.join(tmp, 'values.yaml'), '--set', 'api.podAnnotations.rbac=three']);
  await refuse('no-lock', `update leases.coordination.k8s.io "${DEFAULT_LOCK_NAME}"`, 'runbook', ['rollback', '--cluster', 'e2e']);
  const { dest, id } = installed.backup;
  await refuse('no-hpa-delete', 'delete horizontalpodautoscalers.autoscaling', 'backup', [
    'restore',
    '--cluster',
    'e2e',
    '--from',
    dest,
    '--backup',
    id,
    '--database-url',
    pg.url('conduit'),
    '--clean',
    '--yes',
    '--pause-autoscaling',
  ]);

  // A first install into a namespace without create on Deployments: no revision, lock or audit trail appears.
  const fresh = await newNamespace('first');
  await kube.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: fresh } }], { fieldManager: 'e2e-admin' });
  await refuse('no-create', 'create deployments.apps', 'deploy', ['--cluster', 'e2e', '--skip-image-check'], fresh);
  assert.equal(await revisions(fresh), []);
  assert.not.ok(await kube.get('configmap', 'conduit-audit', { namespace: fresh }));

  // A namespace that does not exist, and an identity that may not create namespaces: named, nothing created.
  const missing = `e2e-rbac-none-${crypto.randomBytes(3).toString('hex')}`;
  const r = await cli('deploy', ['--cluster', 'e2e', '--skip-image-check', '--namespace', missing], installed);
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`- create namespaces \\(cluster-wide\\): needed if namespace ${missing} does not exist`));
  assert.not.ok(await kube.get('namespace', missing), 'the namespace was not created');
});

test('no token or password shows up in any output', () => {
  const tokens = fs
    .readdirSync(tmp)
    .filter((d) => d.startsWith('id-'))
    .map((d) => /token: (\S+)/.exec(fs.readFileSync(path.join(tmp, d, 'kubeconfig'), 'utf8'))?.[1] ?? '');
  assert.ok(tokens.length > 60);
  const all = outputs.join('\n');
  for (const t of [...tokens, pg.password]) assert.not.ok(t && all.includes(t), 'a credential leaked into the output');
});

test.run();
