// The deployer's permissions (scripts/lib/domain/permissions.ts): the Role grants exactly what the
// commands need, each permission once (so that removing any verb of any rule is noticed by the
// preflight of a command that uses it), covers every kind the chart can render, the shipped manifest
// and the docs' rule table are current, and a missing permission is named with its namespace and fix.
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseAllDocuments } from 'yaml';
import { CHART_DIR, REPO_ROOT } from '../../scripts/lib/core/paths.ts';
import { ACTIONS } from '../../scripts/lib/engines/runbook.ts';
import type { AccessAttributes, Kube } from '../../scripts/lib/adapters/kube.ts';
import { KubeError } from '../../scripts/lib/adapters/kube.ts';
import { checkPermissions, permissionError } from '../../scripts/lib/domain/permission-check.ts';
import { AUDIT_CONFIGMAP } from '../../scripts/lib/domain/audit.ts';
import { DEFAULT_LOCK_NAME } from '../../scripts/lib/domain/lease.ts';
import {
  allPermissions,
  AUDIT_TRAIL,
  commandOf,
  CREATE_NAMESPACES,
  deployerFiles,
  deployerObjects,
  deployerRules,
  DEPLOYER_FILE,
  LOCK_LEASE,
  NAMESPACE_LABELS,
  permissionKey,
  permissionsFor,
  PERMISSION_USES,
  reasonsFor,
  RELEASE_KINDS,
  renderDeployerManifest,
  rulePermissions,
  RUNBOOK_USES,
  usesOf,
  type Permission,
} from '../../scripts/lib/domain/permissions.ts';

const test = suite('permissions');
const where = { cluster: 'prod-eu', context: 'ci', namespace: 'conduit' };

test('every permission of the Role is granted by one rule only, and no named rule repeats an unnamed one', () => {
  const seen = new Map<string, number>();
  deployerRules().forEach((rule, i) => {
    assert.is(rule.apiGroups.length, 1, 'one API group per rule: several would grant every resource in every group');
    for (const p of rulePermissions(rule)) {
      assert.not.ok(seen.has(permissionKey(p)), `${permissionKey(p)} is granted by rules ${seen.get(permissionKey(p))} and ${i}`);
      seen.set(permissionKey(p), i);
    }
  });
  for (const key of seen.keys()) if (/ "/.test(key)) assert.not.ok(seen.has(key.replace(/ ".*"$/, '')), `${key} is also granted for every object`);
});

test('the Role grants what every command needs, and every verb of every rule is needed by some command', () => {
  const granted = new Set(deployerRules().flatMap(rulePermissions).map(permissionKey));
  for (const use of PERMISSION_USES)
    for (const p of permissionsFor(use)) assert.ok(granted.has(permissionKey(p)) || granted.has(permissionKey({ ...p, name: undefined })), `${use}: ${permissionKey(p)}`);
  for (const rule of deployerRules()) {
    for (const verb of rule.verbs) {
      const uses = rulePermissions(rule)
        .filter((p) => p.verb === verb)
        .flatMap(usesOf);
      assert.ok(uses.length > 0, `${verb} ${rule.resources.join(',')}: no command needs it`);
    }
  }
  assert.equal(new Set(allPermissions().map(permissionKey)).size, allPermissions().length);
});

test('the Role grants nothing broad: no wildcard, no RBAC or impersonation verbs, nothing cluster-wide', () => {
  for (const rule of deployerRules()) {
    for (const v of [...rule.apiGroups, ...rule.resources, ...rule.verbs]) assert.not.ok(v.includes('*'), JSON.stringify(rule));
    assert.not.ok(rule.apiGroups.includes('rbac.authorization.k8s.io'), 'no RBAC objects');
    for (const verb of rule.verbs) assert.ok(['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'].includes(verb), verb);
  }
  assert.equal(
    deployerObjects().map((o) => o.kind),
    ['Namespace', 'ServiceAccount', 'Role', 'RoleBinding'],
  );
  assert.not.ok(allPermissions().some((p) => p.clusterWide));
});

/** Every apiVersion/kind pair of the chart's templates (helm test hooks aside: no command runs `helm test`). */
function chartKinds(): Set<string> {
  const out = new Set<string>();
  const walk = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
  for (const file of walk(path.join(CHART_DIR, 'templates'))) {
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^apiVersion: ([\w./-]+)\s*\nkind: (\w+)/gm)) {
      if (/helm\.sh\/hook: test/.test(text)) continue;
      out.add(`${m[1].includes('/') ? m[1].split('/')[0] : ''}/${m[2]}`);
    }
  }
  return out;
}

test('RELEASE_KINDS are exactly the kinds the chart can render', () => {
  const listed = new Set(RELEASE_KINDS.map((k) => `${k.group}/${k.kind}`));
  const rendered = chartKinds();
  assert.ok(rendered.size >= 15, [...rendered].join(' '));
  assert.equal(
    [...rendered].filter((k) => !listed.has(k)),
    [],
    'kinds the chart renders that the Role does not cover',
  );
  assert.equal(
    [...listed].filter((k) => !rendered.has(k)),
    [],
    'kinds the Role covers that the chart never renders',
  );
});

test('the lock and the audit trail the Role names are the ones lease.ts and audit.ts use', () => {
  assert.is(LOCK_LEASE, DEFAULT_LOCK_NAME);
  assert.is(AUDIT_TRAIL, AUDIT_CONFIGMAP);
});

test('every runbook action lists what it needs; commands are named as operators type them', () => {
  assert.equal(Object.keys(RUNBOOK_USES).sort(), [...ACTIONS].sort());
  assert.is(commandOf('deploy'), 'deploy.ts');
  assert.is(commandOf('runbook rollback'), 'runbook.ts rollback');
  assert.is(commandOf('backup restore'), 'backup.ts restore --cluster');
  assert.ok(
    permissionsFor('runbook status').every((p) => ['get', 'list'].includes(p.verb)),
    'status only reads',
  );
  assert.ok(
    permissionsFor('backup create').every((p) => ['get', 'list'].includes(p.verb)),
    'create --cluster only reads',
  );
});

test('rbac/conduit-deployer.yaml and the rule table of docs/rbac.md are current (npx zx scripts/docs.ts)', () => {
  const files = deployerFiles({ check: true });
  assert.equal(
    files.filter((f) => f.stale).map((f) => f.file),
    [],
  );
  const shipped = fs.readFileSync(path.join(REPO_ROOT, DEPLOYER_FILE), 'utf8');
  assert.is(shipped, renderDeployerManifest());
  const docs = parseAllDocuments(shipped).map((d) => d.toJS());
  assert.equal(docs[0].metadata.labels, NAMESPACE_LABELS);
  assert.equal(docs[2].rules, JSON.parse(JSON.stringify(deployerRules())));
  assert.is(docs[3].subjects[0].namespace, 'conduit');
});

test('a missing permission is named with verb, resource, namespace and why; the hint says what to bind', () => {
  const missing: Permission[] = [
    { verb: 'create', group: 'apps', resource: 'deployments' },
    { verb: 'get', group: '', resource: 'pods/log' },
  ];
  const e = permissionError({ use: 'deploy', namespace: 'conduit', namespaceExists: true, results: [], missing }, where);
  assert.is(e.exitCode, 1);
  assert.match(e.message, /^deploy\.ts on prod-eu stopped before changing anything: the identity of context "ci" lacks 2 permission/);
  assert.match(e.message, /- create deployments\.apps in namespace conduit: helm creates the chart's new objects/);
  assert.match(e.message, /- get pods\/log in namespace conduit/);
  assert.match(e.hint ?? '', /Bind the Role conduit-deployer of rbac\/conduit-deployer\.yaml .* namespace conduit/);
  assert.equal((e.details as { missing: string[] }).missing, ['create deployments.apps', 'get pods/log']);
});

test('a missing namespace puts "create namespaces" first; a long list is cut with a pointer to --check-permissions', () => {
  const all = permissionsFor('deploy');
  const e = permissionError({ use: 'deploy', namespace: 'new-ns', namespaceExists: false, results: [], missing: [...all, CREATE_NAMESPACES] }, { ...where, namespace: 'new-ns' });
  const lines = e.message.split('\n');
  assert.match(lines[1], /^ {2}- create namespaces \(cluster-wide\): namespace new-ns does not exist, and deploy\.ts would create it$/);
  assert.match(e.message, new RegExp(`\\.\\.\\. and ${all.length + 1 - 12} more \\(deploy\\.ts --check-permissions lists every one\\)`));
  assert.match(e.hint ?? '', /create namespace new-ns .*kubectl apply -f rbac\/conduit-deployer\.yaml/);
  assert.ok(reasonsFor('runbook history', { verb: 'get', group: '', resource: 'configmaps', name: 'conduit-audit' }).length === 1);
});

/** A Kube whose API server grants `allowed` and has (or not) the namespace. */
function fakeKube(allowed: (a: AccessAttributes) => boolean, namespace: 'present' | 'missing' | 'forbidden'): { kube: Kube; asked: AccessAttributes[] } {
  const asked: AccessAttributes[] = [];
  const kube = {
    reviewAccess: async (asks: AccessAttributes[]) => (asked.push(...asks), asks.map(allowed)),
    get: async () => {
      if (namespace === 'forbidden') throw new KubeError('Forbidden', { command: 'GET', argv: [], exitCode: 403, stdout: '', stderr: 'Error from server (Forbidden)', ms: 0, timedOut: false });
      return namespace === 'present' ? { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'conduit' } } : undefined;
    },
  } as unknown as Kube;
  return { kube, asked };
}

test('checkPermissions asks for every permission in the namespace, and for creating a namespace only when it is missing', async () => {
  const everything = fakeKube(() => true, 'present');
  const ok = await checkPermissions(everything.kube, 'deploy', 'conduit');
  assert.equal(ok.missing, []);
  assert.is(ok.results.length, permissionsFor('deploy').length);
  assert.ok(everything.asked.filter((a) => a.resource !== 'namespaces' || a.verb !== 'create').every((a) => a.namespace === 'conduit'));
  assert.ok(everything.asked.some((a) => a.resource === 'pods' && a.subresource === undefined));

  const noNs = fakeKube((a) => !(a.verb === 'create' && a.resource === 'namespaces'), 'missing');
  const missing = await checkPermissions(noNs.kube, 'deploy', 'conduit');
  assert.is(missing.namespaceExists, false);
  assert.equal(missing.missing.map(permissionKey), ['create namespaces']);
  const review = noNs.asked.find((a) => a.resource === 'namespaces' && a.verb === 'create');
  assert.is(review?.namespace, undefined, 'asked cluster-wide');

  const hidden = fakeKube((a) => !(a.resource === 'namespaces' && a.verb === 'get'), 'forbidden');
  const blind = await checkPermissions(hidden.kube, 'deploy', 'conduit');
  assert.is(blind.namespaceExists, undefined);
  assert.equal(blind.missing.map(permissionKey), ['get namespaces'], 'may create it: whether it exists does not matter');

  // Bound in another namespace: cannot tell whether this one exists, may not create it either.
  const elsewhere = fakeKube(() => false, 'forbidden');
  const outside = await checkPermissions(elsewhere.kube, 'deploy', 'other');
  assert.ok(outside.missing.includes(CREATE_NAMESPACES));
  const e = permissionError(outside, { ...where, namespace: 'other' });
  assert.match(e.message.split('\n')[1], /- create namespaces \(cluster-wide\): needed if namespace other does not exist \(this identity may not read it to tell\), and deploy\.ts would create it/);

  const logs = fakeKube((a) => a.subresource !== 'log', 'present');
  assert.equal((await checkPermissions(logs.kube, 'runbook logs', 'conduit')).missing.map(permissionKey), ['get pods/log']);
  assert.ok(logs.asked.some((a) => a.resource === 'pods' && a.subresource === 'log'));
});

test.run();
