// deploy.ts asks the registries whether the images exist before it changes anything: against real
// registries on loopback (Debian's docker-registry, one anonymous, one with htpasswd basic auth), an
// image pushed through the HTTP API, and the local cluster. A tag the registry does not have is
// refused with exit 1 (first install: no namespace, no release; upgrade: the gate refuses, no new
// revision); a tag it has passes; credentials come from the namespace's image pull Secret; the
// default ghcr.io/docker.io images, unreachable from here, only warn.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readAudit } from '../../scripts/lib/domain/audit.ts';
import type { RunResult } from '../../scripts/lib/core/exec.ts';
import type { Kube, KubeObject } from '../../scripts/lib/adapters/kube.ts';
import { pushTestImage, startRegistry, type Registry } from './release-harness.ts';
import { scratchTarget, tempValues, type Scratch } from './support/deploycli.ts';
import { localCluster } from './support/localcluster.ts';

const test = suite('deploy.ts image check');
const TAG = 'master-1234abc';
const MISSING = 'master-0000000';
const PULLER = { username: 'puller', password: 'e2e-pull-secret-pw' };
// bcrypt (cost 5) of PULLER.password, as docker-registry's htpasswd auth requires.
const PULLER_HTPASSWD = 'puller:$2b$05$CdWXxejMoMAu9yJG/KqQPuDQHBg6siDoOXLWXegma7Uk.Rqk3.4fW';

let kube: Kube;
let open: Registry;
let locked: Registry;
let s: Scratch;
let pushed = '';
const outputs: RunResult[] = [];

/** Values that take the Core API's image from `host` (the other images stay at their defaults). */
const apiFrom = (host: string, tag: string, extra = '') => tempValues('api-image.yaml', `api:\n  image:\n    registry: "${host}"\n    tag: ${tag}\n${extra}`);
async function deploy(args: string[]): Promise<RunResult> {
  const r = await s.deploy(args);
  outputs.push(r);
  return r;
}
const apiImage = async () =>
  (await kube.get<KubeObject & { spec: { template: { spec: { containers: { image: string }[] } } } }>('deployment', 'conduit-api', { namespace: s.namespace }))?.spec.template.spec.containers[0].image;

test.before(async () => {
  [kube, open, locked] = await Promise.all([localCluster(), startRegistry(), startRegistry({ htpasswd: PULLER_HTPASSWD })]);
  pushed = await pushTestImage(open.host, 'knnlabs/conduit-http', TAG);
  await pushTestImage(locked.host, 'knnlabs/conduit-http', TAG, PULLER);
  s = await scratchTarget(kube, 'e2e-images');
});
test.after(async () => {
  await s?.cleanup();
  await Promise.all([open?.stop(), locked?.stop()]);
});

test('a first install with a tag the registry does not have is refused before anything is written', async () => {
  const r = await deploy(['--values', apiFrom(open.host, MISSING)]);
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(`${open.host.replace(/\./g, '\\.')}/knnlabs/conduit-http:${MISSING} \\(Deployment/conduit-api\\): not in registry ${open.host.replace(/\./g, '\\.')}: HTTP 404 MANIFEST_UNKNOWN`),
    r.stderr,
  );
  assert.match(r.stderr, /change api\.image\.tag \(or --image-tag, for api, admin and webui together\)/, r.stderr);
  assert.match(r.stderr, /nothing was deployed/, r.stderr);
  assert.is(await kube.get('namespace', s.namespace), undefined, 'no namespace was created');
  assert.equal(await s.history(), []);
});

test('a tag the registry has passes; the unreachable default registries only warn', async () => {
  const r = await deploy(['--values', apiFrom(open.host, TAG), '--json']);
  assert.is(r.exitCode, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.is(out.result, 'succeeded');
  const api = out.imageCheck.results.find((i: { image: string }) => i.image === `${open.host}/knnlabs/conduit-http:${TAG}`);
  assert.equal([api.status, api.digest, api.key, api.workloads], ['found', pushed, 'api.image.tag', ['Deployment/conduit-api']]);
  // ghcr.io (Admin) and docker.io (Redis) cannot be reached from the test machine: warned about, not refused.
  assert.ok(out.imageCheck.results.some((i: { image: string; status: string }) => i.image.startsWith('ghcr.io/knnlabs/conduit-admin:') && i.status === 'unreachable'));
  assert.match(r.stderr, /warning: could not reach registry ghcr\.io \([^)]+\): .*not checked, the deploy goes on/, r.stderr);
  assert.match(r.stderr, /images: \d+ asked for at their registries in \d+ ms: 1 found/, r.stderr);
  assert.is(await apiImage(), `${open.host}/knnlabs/conduit-http:${TAG}`);
  assert.is((await s.history()).length, 1);
});

test('an upgrade to a missing tag is refused at the gate: no new revision, no audit entry, same pods', async () => {
  const before = await s.history();
  const audits = (await readAudit(kube, s.namespace)).length;
  const r = await deploy(['--values', apiFrom(open.host, MISSING)]);
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`knnlabs/conduit-http:${MISSING} \\(Deployment/conduit-api\\): not in registry`), r.stderr);
  assert.equal(await s.history(), before);
  assert.is(before.at(-1)?.status, 'deployed');
  assert.is((await readAudit(kube, s.namespace)).length, audits, 'nothing was started');
  assert.is(await apiImage(), `${open.host}/knnlabs/conduit-http:${TAG}`);
});

test('credentials come from the image pull Secret in the namespace; without one the registry only warns', async () => {
  const dockerconfig = { auths: { [locked.host]: { username: PULLER.username, password: PULLER.password, auth: Buffer.from(`${PULLER.username}:${PULLER.password}`).toString('base64') } } };
  await kube.create({
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/dockerconfigjson',
    metadata: { name: 'e2e-regcred', namespace: s.namespace },
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify(dockerconfig)).toString('base64') },
  } as KubeObject);
  const withSecret = 'global:\n  imagePullSecrets: [e2e-regcred]\n';

  // No Secret named: the registry wants credentials, so it cannot say; a warning, the dry run passes.
  const anonymous = await deploy(['--dry-run', '--json', '--values', apiFrom(locked.host, MISSING)]);
  assert.is(anonymous.exitCode, 0, anonymous.stderr);
  const denied = JSON.parse(anonymous.stdout).imageCheck.results.find((i: { image: string }) => i.image.startsWith(locked.host));
  assert.is(denied.status, 'denied');
  assert.match(anonymous.stderr, /warning: registry 127\.0\.0\.1:\d+ would not say \(HTTP 401: the registry asks for credentials \(basic\)/, anonymous.stderr);

  // With the Secret: the registry answers, so a missing tag is refused and an existing one is found with its credentials.
  const missing = await deploy(['--dry-run', '--values', apiFrom(locked.host, MISSING, withSecret)]);
  assert.is(missing.exitCode, 1, missing.stderr);
  assert.match(missing.stderr, /HTTP 404 MANIFEST_UNKNOWN/, missing.stderr);
  const found = await deploy(['--dry-run', '--json', '--values', apiFrom(locked.host, TAG, withSecret)]);
  assert.is(found.exitCode, 0, found.stderr);
  const api = JSON.parse(found.stdout).imageCheck.results.find((i: { image: string }) => i.image.startsWith(locked.host));
  assert.equal([api.status, api.pullSecret, api.digest], ['found', 'e2e-regcred', pushed]);
  assert.match(found.stdout, /"imageCheck":\s*"registry"/, 'the plan says the images are checked');
});

test('--skip-image-check asks no registry', async () => {
  const r = await deploy(['--dry-run', '--json', '--skip-image-check', '--values', apiFrom(open.host, MISSING)]);
  assert.is(r.exitCode, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal([out.imageCheck.skipped, out.imageCheck.results, out.plan.imageCheck], ['--skip-image-check', [], 'skipped']);
  assert.match(r.stderr, /image check skipped \(--skip-image-check\)/, r.stderr);
});

test('no output shows the pull credentials', () => {
  for (const r of outputs) {
    assert.not.ok(`${r.stdout}${r.stderr}`.includes(PULLER.password), 'the password was printed');
    assert.not.ok(`${r.stdout}${r.stderr}`.includes(Buffer.from(`${PULLER.username}:${PULLER.password}`).toString('base64')), 'the auth field was printed');
  }
});

test.run();
