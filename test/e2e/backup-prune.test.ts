// prune deletes exactly what the retention policy drops, on a directory and on S3.
// Backups with spread timestamps are made from one real backup, copied under ids of other times.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { backupCli } from './backup-data.ts';
import { startPostgres, startS3, type PostgresServer, type S3Server } from './services.ts';

const t = suite('backup prune');
let pg: PostgresServer;
let s3: S3Server;
let work: string;
let template: { dump: Buffer; manifest: Record<string, unknown> };

const AS_OF = '2026-03-15T12:00:00Z'; // a Sunday
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** An id for a time, in the format create uses (the suffix is arbitrary). */
function idAt(time: Date, suffix: string): string {
  return `${time
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-${suffix}`;
}

interface Fixture {
  valid: Map<string, string>; // id -> day (YYYY-MM-DD)
  all: string[];
}

/** Write the backups into a directory tree (also the root rclone serves, so S3 sees the same). */
function writeFixture(root: string): Fixture {
  fs.mkdirSync(root, { recursive: true });
  const valid = new Map<string, string>();
  const all: string[] = [];
  const put = (id: string, time: Date, files: Record<string, Buffer | string>) => {
    fs.mkdirSync(path.join(root, id));
    for (const [name, data] of Object.entries(files)) {
      fs.writeFileSync(path.join(root, id, name), data);
      fs.utimesSync(path.join(root, id, name), time, time);
    }
    all.push(id);
  };
  // One valid backup a day at 01:00 UTC for 45 days up to AS_OF (Jan 30 .. Mar 15).
  for (let i = 0; i < 45; i++) {
    const time = new Date(Date.parse('2026-03-15T01:00:00Z') - i * DAY);
    const id = idAt(time, `d${String(i).padStart(4, '0')}`);
    const manifest = JSON.stringify({ ...template.manifest, id, startedAt: time.toISOString(), finishedAt: time.toISOString() });
    const files: Record<string, Buffer | string> = { 'dump.pgc': template.dump, 'manifest.json': manifest };
    // A verify that passed, recorded on an old backup: it stays as the newest verified one.
    if (time.toISOString().startsWith('2026-02-10')) {
      files['verify.json'] = JSON.stringify({ passed: true, at: time.toISOString(), sha256: (template.manifest.dump as { sha256: string }).sha256 });
    }
    put(id, time, files);
    valid.set(id, time.toISOString().slice(0, 10));
  }
  // Incomplete: an old one (deleted) and one from an hour ago (kept: may still be uploading).
  put(idAt(new Date(Date.parse('2026-03-10T03:00:00Z')), 'oldinc'), new Date('2026-03-10T03:00:00Z'), { 'dump.pgc.partial': 'x' });
  put(idAt(new Date(Date.parse(AS_OF) - HOUR), 'newinc'), new Date(Date.parse(AS_OF) - HOUR), { 'dump.pgc': 'partial' });
  // Corrupt (dump shorter than the manifest says), old: deleted; it does not take a day's slot.
  const cTime = new Date('2026-03-05T23:00:00Z');
  const cId = idAt(cTime, 'broken');
  put(cId, cTime, { 'dump.pgc': template.dump.subarray(0, 100), 'manifest.json': JSON.stringify({ ...template.manifest, id: cId }) });
  // Not a backup at all: never touched.
  fs.mkdirSync(path.join(root, 'notes'));
  fs.writeFileSync(path.join(root, 'notes', 'README'), 'operator notes');
  return { valid, all };
}

t.before(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  await pg.createDatabase('small');
  await pg.sql('small', "CREATE TABLE settings (k text PRIMARY KEY, v text); INSERT INTO settings VALUES ('a', '1'), ('b', NULL);");
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-prune-'));
  const src = path.join(work, 'source');
  fs.mkdirSync(src);
  const r = await backupCli(['create', '--database-url', pg.url('small'), '--to', src, '--json'], pg.env);
  assert.is(r.exitCode, 0, r.stderr);
  template = { dump: fs.readFileSync(path.join(src, r.json.id, 'dump.pgc')), manifest: r.json.manifest };
});

t.after(async () => {
  await Promise.all([pg?.stop(), s3?.stop()]);
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

// --keep-daily 5 --keep-weekly 3 --keep-monthly 2, as of Sunday 2026-03-15 12:00 UTC:
//   daily:   Mar 11, 12, 13, 14, 15
//   weekly:  2026-W11 -> Mar 15, 2026-W10 -> Mar 8, 2026-W09 -> Mar 1
//   monthly: March -> Mar 15, February -> Feb 28
//   always:  newest valid (Mar 15), newest verified (Feb 10)
//   plus the incomplete backup from an hour ago. Everything else goes.
const EXPECTED_DAYS = ['2026-02-10', '2026-02-28', '2026-03-01', '2026-03-08', '2026-03-11', '2026-03-12', '2026-03-13', '2026-03-14', '2026-03-15'];

for (const kind of ['directory', 's3'] as const) {
  t(`prune keeps exactly the policy's set (${kind})`, async () => {
    const root = kind === 'directory' ? path.join(work, 'dest') : path.join(s3.root, s3.bucket, 'prune');
    const dest = kind === 'directory' ? root : `s3://${s3.bucket}/prune`;
    const f = writeFixture(root);
    const expectedKept = [...f.valid].filter(([, day]) => EXPECTED_DAYS.includes(day)).map(([id]) => id);
    expectedKept.push(f.all.find((id) => id.endsWith('-newinc'))!);
    expectedKept.sort();
    const expectedDeleted = f.all.filter((id) => !expectedKept.includes(id)).sort();
    assert.is(expectedDeleted.length, 45 - 9 + 2);

    const args = ['prune', '--from', dest, '--keep-daily', '5', '--keep-weekly', '3', '--keep-monthly', '2', '--as-of', AS_OF, '--json'];
    const dry = await backupCli([...args, '--dry-run'], s3.env);
    assert.is(dry.exitCode, 0, dry.stderr);
    assert.equal([...dry.json.kept].sort(), expectedKept);
    assert.equal([...dry.json.wouldDelete].sort(), expectedDeleted);
    assert.equal(dry.json.deleted, []);
    assert.is(fs.readdirSync(root).length, f.all.length + 1, 'a dry run deletes nothing');

    const real = await backupCli(args, s3.env);
    assert.is(real.exitCode, 0, real.stderr);
    assert.equal([...real.json.deleted].sort(), expectedDeleted);
    const listed = await backupCli(['list', '--from', dest, '--json'], s3.env);
    assert.equal(
      listed.json.backups.map((b: { id: string }) => b.id),
      expectedKept,
    );
    assert.ok(fs.existsSync(path.join(root, 'notes', 'README')), 'foreign folders are left alone');

    // Human output names every decision.
    const human = await backupCli(['prune', '--from', dest, '--keep-daily', '5', '--keep-weekly', '3', '--keep-monthly', '2', '--as-of', AS_OF, '--dry-run'], s3.env);
    assert.match(human.stdout, /newest verified backup/);
    assert.match(human.stdout, /10 kept, 0 would be deleted \(dry run\)/);
  });
}

t('prune rejects a bad policy before touching anything', async () => {
  const r = await backupCli(['prune', '--from', path.join(work, 'dest'), '--keep-daily', 'seven', '--keep-weekly', '1', '--keep-monthly', '1']);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /--keep-daily must be a whole number/);
  const missing = await backupCli(['prune', '--from', path.join(work, 'dest'), '--keep-daily', '1']);
  assert.is(missing.exitCode, 2);
  assert.match(missing.stderr, /prune needs --keep-weekly/);
});

t.run();
