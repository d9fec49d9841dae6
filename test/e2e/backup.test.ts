// backup.ts against a real PostgreSQL 15 and a real S3-compatible server (rclone serve s3):
// create -> verify -> restore round trips, corruption, non-empty targets, secrets.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { findBackup, planRestore, restoreBackup, type RestoreHooks } from '../../scripts/lib/engines/backup.ts';
import { parseDatabaseUrl, tableStats, type ChecksumKind } from '../../scripts/lib/adapters/pg.ts';
import { openStorage } from '../../scripts/lib/adapters/storage.ts';
import { loadAppFacts } from '../support/appfacts.ts';
import { backupCli, datasetRowTotal, loadDataset, SPOT_CHECK_SQL } from './backup-data.ts';
import { startPostgres, startS3, type PostgresServer, type S3Server } from './services.ts';

const t = suite('backup e2e');
let pg: PostgresServer;
let s3: S3Server;
let dir: string;
let env: Record<string, string>;

t.before(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  await loadDataset(pg, 'conduit');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-backups-'));
  env = { ...pg.env, ...s3.env };
});

t.after(async () => {
  await Promise.all([pg?.stop(), s3?.stop()]);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const stats = (db: string) => tableStats({ ...parseDatabaseUrl(pg.urlWithPassword(db)) });

async function scratchDatabases(): Promise<string> {
  return (await pg.sql('postgres', "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE 'conduit_verify_%';")).trim();
}

function ok(r: { exitCode: number; stdout: string; stderr: string }, what: string): void {
  assert.is(r.exitCode, 0, `${what} failed:\n${r.stdout}\n${r.stderr}`);
}

for (const kind of ['directory', 's3'] as const) {
  t(`create -> verify -> restore through a ${kind}: same rows, checksums and content`, async () => {
    const dest = kind === 'directory' ? path.join(dir, 'roundtrip') : `s3://${s3.bucket}/roundtrip/conduit`;
    if (kind === 'directory') fs.mkdirSync(dest);
    const created = await backupCli(['create', '--database-url', pg.url('conduit'), '--to', dest, '--json'], env);
    ok(created, 'create');
    const m = created.json.manifest;
    assert.match(m.id, /^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
    assert.is(m.tables.length, 6);
    assert.is(
      m.tables.reduce((n: number, x: { rows: number }) => n + x.rows, 0),
      datasetRowTotal() + 2,
      'rows of all tables plus 2 large objects',
    );
    assert.equal(m.tables, await stats('conduit'), 'the manifest describes the source exactly');
    assert.match(created.stderr, /dumped .* MB\/s/, 'progress shows bytes and throughput');

    const listed = await backupCli(['list', '--from', dest, '--check', '--json'], env);
    ok(listed, 'list');
    assert.equal(
      listed.json.backups.map((b: { id: string; state: string; checksumChecked: boolean }) => [b.id, b.state, b.checksumChecked]),
      [[m.id, 'valid', true]],
    );

    const verified = await backupCli(['verify', '--from', dest, '--backup', m.id, '--scratch-url', pg.url('postgres'), '--json'], env);
    ok(verified, 'verify');
    assert.is(verified.json.passed, true);
    assert.equal(
      verified.json.tables.map((x: { passed: boolean }) => x.passed),
      [true, true, true, true, true, true],
    );
    assert.is(await scratchDatabases(), '', 'the scratch database is dropped');

    const target = `restored_${kind}`;
    await pg.createDatabase(target);
    const restored = await backupCli(['restore', '--from', dest, '--backup', m.id, '--database-url', pg.url(target), '--yes', '--json'], env);
    ok(restored, 'restore');
    assert.is(restored.json.passed, true);
    assert.equal(await stats(target), await stats('conduit'));
    assert.is(await pg.sql(target, SPOT_CHECK_SQL), await pg.sql('conduit', SPOT_CHECK_SQL));
  });
}

const statsOf = (db: string, kind: ChecksumKind) => tableStats({ ...parseDatabaseUrl(pg.urlWithPassword(db)) }, kind);

for (const kind of ['auto', 'text'] as const) {
  t(`the table checksum (${kind}) notices a single changed value (so a passing compare means something)`, async () => {
    const before = await statsOf('restored_directory', kind);
    for (const change of [
      ["UPDATE app.users SET display_name = display_name || '.' WHERE id = 4243;", 'UPDATE app.users SET display_name = left(display_name, -1) WHERE id = 4243;'],
      ['UPDATE app.users SET balance = balance + 0.01 WHERE id = 4243;', 'UPDATE app.users SET balance = balance - 0.01 WHERE id = 4243;'],
    ]) {
      await pg.sql('restored_directory', change[0]);
      const after = await statsOf('restored_directory', kind);
      const changed = after.filter((x, i) => x.checksum !== before[i].checksum).map((x) => `${x.schema}.${x.table}`);
      assert.equal(changed, ['app.users'], change[0]);
      assert.equal(
        after.map((x) => x.rows),
        before.map((x) => x.rows),
      );
      await pg.sql('restored_directory', change[1]);
      assert.equal(await statsOf('restored_directory', kind), before, 'and reverting it restores the checksum');
    }
  });
}

t('checksum kinds: rec: for tables of hash-stable column types; the text form for oids, enums, nondeterministic collations and large objects', async () => {
  const db = 'checksum_kinds';
  await pg.createDatabase(db);
  await pg.sql(
    db,
    `CREATE TYPE mood AS ENUM ('calm', 'busy');
     CREATE COLLATION nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
     CREATE TABLE typed (id bigint, name varchar(20), tags text[], seen timestamptz, ratio real, data jsonb, flag boolean, k uuid);
     CREATE TABLE with_enum (id integer, mood mood);
     CREATE TABLE with_nocase (id integer, name text COLLATE nocase);
     CREATE TABLE with_numeric (id integer, amount numeric);
     INSERT INTO typed VALUES (1, 'a', '{x,y}', '2026-01-01Z', 0.5, '{"a": 1}', true, gen_random_uuid()), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
     INSERT INTO with_enum VALUES (1, 'calm');
     INSERT INTO with_nocase VALUES (1, 'Abc');
     INSERT INTO with_numeric VALUES (1, 1.50);`,
  );
  const kinds = Object.fromEntries((await statsOf(db, 'auto')).map((x) => [`${x.schema}.${x.table}`, x.checksum.startsWith('rec:') ? 'rec' : /^[0-9a-f]{32}$/.test(x.checksum) ? 'text' : x.checksum]));
  assert.equal(kinds, {
    'public.typed': 'rec',
    'public.with_enum': 'text',
    'public.with_nocase': 'text',
    'public.with_numeric': 'rec',
    'pg_catalog.pg_largeobject': 'text',
  });
  const text = await statsOf(db, 'text');
  assert.ok(
    text.every((x) => /^[0-9a-f]{32}$/.test(x.checksum)),
    'the text kind gives no rec: checksum',
  );
  // The real app's tables (schemas/app-facts.yaml, from its EF Core migrations): one column of each
  // type they use, and no enum among them, so every one of its tables gets rec: checksums.
  const facts = loadAppFacts();
  assert.is(facts.database.enums, 0);
  const columns = facts.database.columnTypes.map((c, i) => `c${i} ${c.type}`).join(', ');
  await pg.sql(db, `CREATE TABLE conduit_types (${columns}); INSERT INTO conduit_types DEFAULT VALUES;`);
  const appTable = (await statsOf(db, 'auto')).find((x) => x.table === 'conduit_types')!;
  assert.match(appTable.checksum, /^rec:/, `a table of ${facts.database.columnTypes.map((c) => c.type).join(', ')}`);
  // The data set's tables: every type of app.* is on the list; documents holds an oid.
  const dataset = await stats('conduit');
  assert.equal(
    dataset.filter((x) => x.checksum.startsWith('rec:')).map((x) => `${x.schema}.${x.table}`),
    ['app.audit', 'app.requests', 'app.users', 'app.virtual_keys'],
  );
});

t('a backup whose manifest has text-form checksums (written before rec: existed) still verifies and restores; a wrong one fails', async () => {
  const dest = path.join(dir, 'roundtrip');
  const [original] = (await backupCli(['list', '--from', dest, '--json'], env)).json.backups;
  const textTables = await statsOf('conduit', 'text');
  for (const [suffix, tables, passes] of [
    ['0001aa', textTables, true],
    ['0002bb', textTables.map((x) => (x.table === 'requests' ? { ...x, checksum: x.checksum.replace(/^./, (c) => (c === '0' ? '1' : '0')) } : x)), false],
  ] as const) {
    const id = original.id.replace(/-[0-9a-f]+$/, `-${suffix}`);
    fs.cpSync(path.join(dest, original.id), path.join(dest, id), { recursive: true });
    const manifest = JSON.parse(fs.readFileSync(path.join(dest, id, 'manifest.json'), 'utf8'));
    fs.writeFileSync(path.join(dest, id, 'manifest.json'), JSON.stringify({ ...manifest, id, tables }, null, 2));
    const verified = await backupCli(['verify', '--from', dest, '--backup', id, '--scratch-url', pg.url('postgres'), '--json'], env);
    assert.is(verified.json?.passed, passes, `${id}: ${verified.stdout}${verified.stderr}`);
    assert.equal(
      verified.json.tables.filter((x: { passed: boolean }) => !x.passed).map((x: { table: string }) => x.table),
      passes ? [] : ['requests'],
    );
    fs.rmSync(path.join(dest, id), { recursive: true });
  }
});

t('restore refuses a non-empty target without --clean; --clean replaces the objects', async () => {
  const dest = path.join(dir, 'roundtrip');
  const id = fs.readdirSync(dest)[0];
  await pg.sql('restored_directory', "INSERT INTO app.audit (what) VALUES ('marker');");
  const refused = await backupCli(['restore', '--from', dest, '--backup', id, '--database-url', pg.url('restored_directory'), '--yes'], env);
  assert.is(refused.exitCode, 1, refused.stderr);
  assert.match(refused.stderr, /is not empty .* nothing was restored/);
  assert.match(refused.stderr, /--clean/);
  assert.is((await pg.sql('restored_directory', 'SELECT count(*) FROM app.audit;')).trim(), '1', 'the target is untouched');

  const noTty = await backupCli(['restore', '--from', dest, '--backup', id, '--database-url', pg.url('restored_directory'), '--clean'], env);
  assert.is(noTty.exitCode, 2, 'without a terminal, --yes is required');
  assert.match(noTty.stderr, /pass --yes/);

  const dry = await backupCli(['restore', '--from', dest, '--backup', id, '--database-url', pg.url('restored_directory'), '--clean', '--dry-run', '--json'], env);
  ok(dry, 'restore --dry-run');
  assert.ok(dry.json.plan.steps.some((s: string) => s.includes('--clean --if-exists')));
  assert.is((await pg.sql('restored_directory', 'SELECT count(*) FROM app.audit;')).trim(), '1', 'a dry run changes nothing');

  const cleaned = await backupCli(['restore', '--from', dest, '--backup', id, '--database-url', pg.url('restored_directory'), '--clean', '--yes', '--json'], env);
  ok(cleaned, 'restore --clean');
  assert.is(cleaned.json.passed, true);
  assert.equal(await stats('restored_directory'), await stats('conduit'));
});

t('a failing restore rolls back completely and still runs the after-restore hook (cluster variant slot)', async () => {
  const dest = path.join(dir, 'roundtrip');
  const storage = openStorage(dest);
  const backup = await findBackup(storage, fs.readdirSync(dest)[0]);
  await pg.createDatabase('conflict');
  // An empty schema of the same name: not "data", so the emptiness check passes, but pg_restore fails.
  await pg.sql('conflict', 'CREATE SCHEMA app;');
  const calls: string[] = [];
  const hooks: RestoreHooks = {
    describe: () => ['scale api and admin to 0'],
    before: async () => void calls.push('before'),
    after: async (o) => void calls.push(`after ok=${o.ok}`),
  };
  assert.ok(planRestore(backup, parseDatabaseUrl(pg.url('conflict')), false, hooks).steps.includes('scale api and admin to 0'));
  const target = parseDatabaseUrl(pg.urlWithPassword('conflict'));
  const error = await restoreBackup({ storage, backup, target, clean: false, hooks }).then(
    () => undefined,
    (e: Error) => e,
  );
  assert.ok(error, 'the restore fails');
  assert.match(error!.message, /pg_restore into .* failed[\s\S]*schema "app" already exists/);
  assert.equal(calls, ['before', 'after ok=false']);
  assert.is((await pg.sql('conflict', "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'app';")).trim(), '0', 'nothing was left behind');
  assert.is((await pg.sql('conflict', 'SELECT count(*) FROM pg_largeobject_metadata;')).trim(), '0');
});

for (const kind of ['directory', 's3'] as const) {
  t(`a corrupted backup (one flipped byte, ${kind}) fails verify and restore; nothing is restored`, async () => {
    const dest = kind === 'directory' ? path.join(dir, 'corrupt') : `s3://${s3.bucket}/corrupt`;
    if (kind === 'directory') fs.mkdirSync(dest);
    const created = await backupCli(['create', '--database-url', pg.url('conduit'), '--to', dest, '--json'], env);
    ok(created, 'create');
    const id = created.json.id;
    const file = kind === 'directory' ? path.join(dest, id, 'dump.pgc') : path.join(s3.root, s3.bucket, 'corrupt', id, 'dump.pgc');
    const fd = fs.openSync(file, 'r+');
    const at = Math.floor(fs.statSync(file).size / 2);
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, at);
    b[0] ^= 0x01;
    fs.writeSync(fd, b, 0, 1, at);
    fs.closeSync(fd);

    const listed = await backupCli(['list', '--from', dest, '--check', '--json'], env);
    assert.is(listed.exitCode, 1, 'list --check fails on a corrupt backup');
    assert.is(listed.json.backups[0].state, 'corrupt');
    assert.match(listed.json.backups[0].problems[0], /sha256 of dump.pgc is/);

    const verified = await backupCli(['verify', '--from', dest, '--backup', id, '--scratch-url', pg.url('postgres')], env);
    assert.is(verified.exitCode, 1);
    assert.match(verified.stderr, new RegExp(`backup ${id} is corrupt: sha256 of dump.pgc is [0-9a-f]{64}, the manifest says ${created.json.manifest.dump.sha256}`));
    assert.is(await scratchDatabases(), '', 'no scratch database is left behind');

    const target = `victim_${kind}`;
    await pg.createDatabase(target);
    const restored = await backupCli(['restore', '--from', dest, '--backup', id, '--database-url', pg.url(target), '--yes'], env);
    assert.is(restored.exitCode, 1);
    assert.match(restored.stderr, /is corrupt: sha256/);
    assert.match(restored.stderr, /Nothing was restored/);
    assert.is(
      (await pg.sql(target, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast');")).trim(),
      '0',
    );
  });
}

t('secrets stay out of arguments and output; bad input is a clear error', async () => {
  const dest = path.join(dir, 'secrets');
  fs.mkdirSync(dest);
  // The URL with the password comes through an environment variable; PGPASSWORD is not set.
  const r = await backupCli(['create', '--database-url-env', 'SOURCE_DB', '--to', dest, '--json'], { SOURCE_DB: pg.urlWithPassword('conduit'), PGPASSWORD: undefined });
  ok(r, 'create with --database-url-env');
  const all = r.stdout + r.stderr + fs.readFileSync(path.join(dest, r.json.id, 'manifest.json'), 'utf8');
  assert.not.ok(all.includes(pg.password), 'the password appears nowhere');
  assert.ok(all.includes(pg.url('conduit')), 'the URL is shown without it');

  const wrongPw = await backupCli(['create', '--database-url', pg.url('conduit'), '--to', dest], { PGPASSWORD: 'wrong-password-123' });
  assert.is(wrongPw.exitCode, 1);
  assert.match(wrongPw.stderr, /password authentication failed/);
  assert.not.match(wrongPw.stderr, /wrong-password-123/);
  assert.is(fs.readdirSync(dest).length, 1, 'a failed create leaves nothing behind');

  // S3 credentials from variables named on the command line (the values never are).
  const named = await backupCli(['list', '--from', `s3://${s3.bucket}/roundtrip/conduit`, '--s3-endpoint', s3.endpoint, '--s3-access-key-env', 'BK_ID', '--s3-secret-key-env', 'BK_SECRET', '--json'], {
    AWS_ACCESS_KEY_ID: undefined,
    AWS_SECRET_ACCESS_KEY: undefined,
    AWS_ENDPOINT_URL: undefined,
    BK_ID: s3.accessKeyId,
    BK_SECRET: s3.secretAccessKey,
  });
  ok(named, 'list with --s3-*-env');
  assert.is(named.json.backups.length, 1);
  const wrongKey = await backupCli(['list', '--from', `s3://${s3.bucket}/roundtrip/conduit`, '--json'], { ...s3.env, AWS_SECRET_ACCESS_KEY: 'not-the-secret-key' });
  assert.is(wrongKey.exitCode, 1);
  assert.match(wrongKey.stderr, /S3 list on s3:\/\/backups\/roundtrip\/conduit .* failed/);
  assert.not.match(wrongKey.stdout + wrongKey.stderr, /not-the-secret-key/);
  const unset = await backupCli(['list', '--from', `s3://${s3.bucket}/x`, '--s3-access-key-env', 'NOPE_ID', '--s3-secret-key-env', 'NOPE_SECRET'], s3.env);
  assert.is(unset.exitCode, 2);
  assert.match(unset.stderr, /\$NOPE_ID and \$NOPE_SECRET not set/);

  const usage = await backupCli(['create', '--to', dest]);
  assert.is(usage.exitCode, 2);
  assert.match(usage.stderr, /create needs --database-url/);
  const badDest = await backupCli(['list', '--from', 'ftp://x/y']);
  assert.is(badDest.exitCode, 2);
  assert.match(badDest.stderr, /unsupported destination/);
  const cluster = await backupCli(['restore', '--from', dest, '--backup', r.json.id, '--cluster', 'local']);
  assert.is(cluster.exitCode, 2);
  assert.match(cluster.stderr, /restore --cluster needs --database-url or --database-url-env/);
});

t.run();
