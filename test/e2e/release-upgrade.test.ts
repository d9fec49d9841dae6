// The upgrade path operators take: the previous release of the chart (0.0.9, packaged by release.ts
// from the current chart with the older version) is installed from a chart repository into the local
// cluster as release `conduit` (the `local` registry entry's release, in a namespace of its own so a
// deploy of the quickstart into `conduit` does not get in the way), then
// `npx zx scripts/deploy.ts --namespace NS` upgrades it to the chart in this repository. The generated
// master key must survive the upgrade and the three components must roll out again.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../scripts/lib/core/exec.ts';
import type { Kube } from '../../scripts/lib/adapters/kube.ts';
import { CHART_DIR } from '../../scripts/lib/core/paths.ts';
import { readChartMeta } from '../../scripts/lib/engines/release.ts';
import { chartAtVersion, helmUser, jsonOf, releaseCli, serveDirectory, tempDir, type HelmUser, type Served } from './release-harness.ts';
import { kubeArgs, localClusterValues, RESTRICTED, waitArgs } from './release-install.ts';
import { localCluster } from './support/localcluster.ts';
import { runScript } from '../helpers/zxscript.ts';

const test = suite('release: upgrade from the previous version with deploy.ts');
const current = readChartMeta(CHART_DIR);
const PREVIOUS = '0.0.9';
const NS = `upgrade-${crypto.randomBytes(3).toString('hex')}`;
let kube: Kube;
let user: HelmUser;
let served: Served;
let work: string;
let installedHere = false;

test.before(async () => {
  kube = await localCluster();
  user = await helmUser(4);
  work = tempDir('release-upgrade');
  const repoDir = path.join(work, 'repo');
  served = await serveDirectory(repoDir);
  const pkg = await releaseCli(['package', '--chart', chartAtVersion(PREVIOUS, path.join(work, 'src')), '--out', repoDir]);
  if (pkg.exitCode !== 0) throw new Error(pkg.stderr);
  const idx = await releaseCli(['index', '--out', repoDir, '--url', served.url]);
  if (idx.exitCode !== 0) throw new Error(idx.stderr);
});

test.after(async () => {
  if (installedHere) {
    await user.helm(['uninstall', 'conduit', ...kubeArgs(kube, NS), '--timeout', '2m']);
    await kube.delete('namespace', NS, { wait: false }).catch(() => false);
  }
  user?.cleanup();
  await served?.close();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

async function history(): Promise<{ revision: number; chart: string; status: string }[]> {
  const r = await user.helm(['history', 'conduit', ...kubeArgs(kube, NS), '-o', 'json']);
  return r.exitCode === 0 ? JSON.parse(r.stdout) : [];
}

async function masterKey(): Promise<string> {
  const secret = JSON.parse(await kube.call(['get', 'secret', 'conduit-master-key', '-n', NS, '-o', 'json'])) as { data: Record<string, string> };
  return Object.values(secret.data)[0];
}

test(`helm install ${PREVIOUS} from the repository, then deploy.ts upgrades to ${current.version}`, async () => {
  const before = await history();
  assert.equal(before, [], `release conduit already exists in namespace ${NS} of the local cluster: this test installs the previous version itself (helm uninstall conduit -n ${NS} first)`);

  assert.is((await user.helm(['repo', 'add', 'conduit', served.url])).exitCode, 0);
  const exists = (await kube.exec(['get', 'namespace', NS])).exitCode === 0;
  if (!exists) await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: RESTRICTED } });
  installedHere = true;
  const values = localClusterValues().flatMap((f) => ['--values', f]);
  const install = await user.helm(['install', 'conduit', 'conduit/conduit', '--version', PREVIOUS, ...kubeArgs(kube, NS), ...values, ...waitArgs(user)]);
  assert.is(install.exitCode, 0, install.stderr);
  const keyBefore = await masterKey();

  const deploy = await runScript('deploy', ['--namespace', NS, '--json']);
  assert.is(deploy.exitCode, 0, deploy.stderr);
  const out = jsonOf(deploy);
  assert.is(out.result, 'succeeded');
  assert.is(out.revision, 2);

  const revisions = await history();
  assert.equal(
    revisions.map((h) => h.chart),
    [`conduit-${PREVIOUS}`, `conduit-${current.version}`],
  );
  assert.equal(
    revisions.map((h) => h.status),
    ['superseded', 'deployed'],
  );
  assert.is(await masterKey(), keyBefore, 'the generated master key survives the upgrade');
  const deployments = JSON.parse(await kube.call(['get', 'deployments', '-n', NS, '-l', 'app.kubernetes.io/instance=conduit', '-o', 'json'])) as {
    items: { metadata: { name: string; labels: Record<string, string> }; status: { availableReplicas?: number } }[];
  };
  assert.equal(
    deployments.items
      .filter((d) => (d.status.availableReplicas ?? 0) > 0)
      .map((d) => d.metadata.name)
      .sort(),
    ['conduit-admin', 'conduit-api'],
    'the WebUI is off by default (it cannot start without Clerk keys)',
  );
  assert.ok(
    deployments.items.every((d) => d.metadata.labels['helm.sh/chart'] === `conduit-${current.version}`),
    'every Deployment carries the new chart label',
  );
});

test.run();
