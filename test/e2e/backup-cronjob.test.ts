// The chart's backup CronJob and pre-upgrade Job as RENDERED by `helm template`, run for real: each
// container's command and environment are taken from the rendered pod spec (env resolved from
// this test's own Secrets, Kubernetes $(VAR) references expanded), the ConfigMap volume is
// written from the rendered ConfigMap, emptyDirs become temporary directories, and the containers
// run in pod order against a real PostgreSQL and an S3 server (rclone serve s3). `backup.ts list`
// and `verify` must then accept the backup. Only the images are replaced: by the same tools
// (PostgreSQL client binaries, rclone) on PATH, with /bin/sh as in both images.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../scripts/lib/core/exec.ts';
import { tool } from '../../scripts/lib/adapters/tools.ts';
import { find, renderObjects, type K8sObject } from '../chart/helpers.ts';
import { backupCli, loadDataset } from './backup-data.ts';
import { postgresBinDir, startPostgres, startS3, type PostgresServer, type S3Server } from './services.ts';

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string } };
}
interface Container {
  name: string;
  image: string;
  command: string[];
  args?: string[];
  env?: EnvVar[];
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  initContainers?: Container[];
  containers: Container[];
  volumes: { name: string; configMap?: { name: string; defaultMode?: number }; emptyDir?: object }[];
}

const t = suite('rendered backup CronJob');
let pg: PostgresServer;
let s3: S3Server;
let work: string;
let rcloneDir: string;
let objects: K8sObject[];
let secrets: Record<string, Record<string, string>>;
const PREFIX = 'cluster/e2e';

t.before(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  await loadDataset(pg, 'conduit');
  rcloneDir = path.dirname(await tool('rclone'));
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-cronjob-'));
  // The Secrets a cluster would hold; the chart only references them by name and key.
  secrets = {
    'pg-e2e': { password: pg.password },
    'backup-s3': { 'access-key-id': s3.accessKeyId, 'secret-access-key': s3.secretAccessKey },
  };
  objects = await renderObjects({
    release: 'conduit',
    namespace: 'conduit-e2e',
    values: {
      database: { mode: 'external', name: 'conduit', auth: { username: pg.user, existingSecret: 'pg-e2e' }, external: { host: '127.0.0.1', port: pg.port } },
      networkPolicy: { enabled: false },
      backup: { enabled: true, destination: { url: `s3://${s3.bucket}/${PREFIX}/`, endpoint: s3.endpoint, existingSecret: 'backup-s3' } },
    },
  });
});

t.after(async () => {
  await Promise.all([pg?.stop(), s3?.stop()]);
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** A container's environment as Kubernetes builds it: literal values, Secret keys, $(VAR) expansion. */
function resolveEnv(c: Container): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) {
      out[e.name] = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n: string) => out[n] ?? m);
    } else if (e.valueFrom?.secretKeyRef) {
      const { name, key } = e.valueFrom.secretKeyRef;
      const v = secrets[name]?.[key];
      if (v === undefined) throw new Error(`${c.name}: env ${e.name} needs Secret ${name} key ${key}, which the test does not have`);
      out[e.name] = v;
    } else {
      throw new Error(`${c.name}: env ${e.name} has a source this test cannot resolve: ${JSON.stringify(e)}`);
    }
  }
  return out;
}

/** Run every container of a pod in order, the way the kubelet would (init containers first, each must succeed). */
async function runPod(label: string, pod: PodSpec) {
  const root = fs.mkdtempSync(path.join(work, `${label}-`));
  const volumeDirs = new Map<string, string>();
  for (const v of pod.volumes) {
    const dir = path.join(root, v.name);
    fs.mkdirSync(dir);
    if (v.configMap) {
      const cm = find(objects, 'ConfigMap', v.configMap.name);
      for (const [file, content] of Object.entries(cm.data as Record<string, string>)) fs.writeFileSync(path.join(dir, file), content, { mode: v.configMap.defaultMode ?? 0o644 });
    } else if (!v.emptyDir) {
      throw new Error(`volume ${v.name}: only configMap and emptyDir volumes are expected`);
    }
    volumeDirs.set(v.name, dir);
  }
  const results = [];
  for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
    const mounts = (c.volumeMounts ?? []).map((m) => ({ from: m.mountPath, to: volumeDirs.get(m.name)! })).sort((a, b) => b.from.length - a.from.length);
    // A path inside a mount becomes the same path inside that volume's directory.
    const local = (s: string) => {
      for (const m of mounts) if (s === m.from || s.startsWith(`${m.from}/`)) return m.to + s.slice(m.from.length);
      return s;
    };
    const env = Object.fromEntries(Object.entries(resolveEnv(c)).map(([k, v]) => [k, local(v)]));
    const [cmd, ...args] = [...c.command, ...(c.args ?? [])].map(local);
    // The image's own PATH: the PostgreSQL client tools or rclone, plus the base system's shell utilities.
    const bin = /postgres/.test(c.image) ? postgresBinDir() : rcloneDir;
    const clean: Record<string, string | undefined> = {};
    for (const k of Object.keys(process.env)) if (/^(PG|AWS_|RCLONE_|BACKUP_|XDG_)/.test(k)) clean[k] = undefined;
    const r = await run(cmd, args, { env: { ...clean, PATH: `${bin}:/usr/bin:/bin`, ...env }, timeoutMs: 180_000 });
    results.push({ name: c.name, ...r });
    if (r.exitCode !== 0) break;
  }
  return { results, volumeDirs };
}

const cronPod = (): PodSpec => find(objects, 'CronJob', 'conduit-backup').spec.jobTemplate.spec.template.spec;
const DEST = () => `s3://${s3.bucket}/${PREFIX}/dumps`;

t('the CronJob pod, run as rendered, produces a backup that list and verify accept', async () => {
  const pod = cronPod();
  assert.equal(
    pod.initContainers!.map((c) => c.name),
    ['dump'],
  );
  assert.equal(
    pod.containers.map((c) => c.name),
    ['upload'],
  );
  const { results, volumeDirs } = await runPod('cronjob', pod);
  for (const r of results) assert.is(r.exitCode, 0, `${r.name}: ${r.stderr}`);
  assert.equal(
    results.map((r) => r.name),
    ['dump', 'upload'],
  );
  for (const r of results) {
    assert.not.ok(r.stderr.includes(pg.password) || r.stdout.includes(pg.password), `${r.name} logs no database password`);
    assert.not.ok(r.stderr.includes(s3.secretAccessKey) || r.stdout.includes(s3.secretAccessKey), `${r.name} logs no S3 secret`);
  }
  const id = fs.readFileSync(path.join(volumeDirs.get('backup')!, 'backup-id'), 'utf8').trim();
  assert.match(id, /^\d{8}T\d{6}Z-[0-9a-f]{6}$/);

  const listed = await backupCli(['list', '--from', DEST(), '--check', '--json'], s3.env);
  assert.is(listed.exitCode, 0, listed.stderr);
  const entry = listed.json.backups.find((b: { id: string }) => b.id === id);
  assert.is(entry?.state, 'valid');
  const verified = await backupCli(['verify', '--from', DEST(), '--backup', id, '--scratch-url', pg.url('postgres'), '--json'], { ...s3.env, ...pg.env });
  assert.is(verified.exitCode, 0, verified.stdout + verified.stderr);
  assert.is(verified.json.passed, true);
  assert.ok(verified.json.tables.length > 0);
  const manifest = JSON.parse(fs.readFileSync(path.join(s3.root, s3.bucket, PREFIX, 'dumps', id, 'manifest.json'), 'utf8'));
  assert.equal(manifest.source, { kind: 'cronjob', release: 'conduit', namespace: 'conduit-e2e', revision: 1 });
});

t('the pre-upgrade hook Job, run as rendered, leaves a backup marked as pre-upgrade', async () => {
  const job = find(objects, 'Job', 'conduit-backup-pre-upgrade');
  assert.is(job.metadata.annotations?.['helm.sh/hook'], 'pre-upgrade');
  const { results, volumeDirs } = await runPod('hook', job.spec.template.spec);
  for (const r of results) assert.is(r.exitCode, 0, `${r.name}: ${r.stderr}`);
  const id = fs.readFileSync(path.join(volumeDirs.get('backup')!, 'backup-id'), 'utf8').trim();
  assert.match(id, /^\d{8}T\d{6}Z-preupgrade[0-9a-f]{6}$/);
  const verified = await backupCli(['verify', '--from', DEST(), '--backup', id, '--scratch-url', pg.url('postgres'), '--json'], { ...s3.env, ...pg.env });
  assert.is(verified.exitCode, 0, verified.stdout + verified.stderr);
  const manifest = JSON.parse(fs.readFileSync(path.join(s3.root, s3.bucket, PREFIX, 'dumps', id, 'manifest.json'), 'utf8'));
  assert.is(manifest.source.kind, 'pre-upgrade');
  assert.is(manifest.source.revision, 0, 'the revision the upgrade replaces');
});

t('with a wrong database password in the Secret the dump fails and nothing is uploaded', async () => {
  const saved = secrets['pg-e2e'].password;
  secrets['pg-e2e'].password = 'wrongPassword123';
  try {
    const before = (await backupCli(['list', '--from', DEST(), '--json'], s3.env)).json.backups.length;
    const { results } = await runPod('failing', cronPod());
    assert.equal(
      results.map((r) => [r.name, r.exitCode]),
      [['dump', 1]],
      'the upload container never starts after a failed init container',
    );
    assert.match(results[0].stderr, /password authentication failed/);
    assert.is((await backupCli(['list', '--from', DEST(), '--json'], s3.env)).json.backups.length, before);
  } finally {
    secrets['pg-e2e'].password = saved;
  }
});

t.run();
