import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { backupTime, compareTables, isoWeek, manifestProblems, MANIFEST_FORMAT, newBackupId, planRetention, type RetentionCandidate } from '../../scripts/lib/engines/backup.ts';
import { parseDatabaseUrl, connectionEnv, describeConnection, restoreArgs } from '../../scripts/lib/adapters/pg.ts';
import { redact } from '../../scripts/lib/core/redact.ts';

const DAY = 86_400_000;
const NOW = new Date('2026-03-15T12:00:00Z'); // a Sunday

/** A valid backup taken at an ISO time, with an id as create would give it. */
function at(iso: string, extra: Partial<RetentionCandidate> = {}): RetentionCandidate {
  const time = new Date(iso);
  return { id: newBackupId(time), time, state: 'valid', ...extra };
}

function kept(decisions: ReturnType<typeof planRetention>): string[] {
  return decisions.filter((d) => d.action === 'keep').map((d) => d.id);
}

test('backup ids sort by time and encode it', () => {
  const a = newBackupId(new Date('2026-01-02T03:04:05.678Z'));
  assert.match(a, /^20260102T030405Z-[0-9a-f]{6}$/);
  assert.equal(backupTime(a)?.toISOString(), '2026-01-02T03:04:05.000Z');
  assert.ok(newBackupId(new Date('2026-01-02T03:04:06Z')) > a);
  assert.is(backupTime('20261302T030405Z-abcdef'), undefined, 'month 13 is not a time');
  assert.is(backupTime('lost+found'), undefined);
  assert.is(backupTime('20260102T030405Z'), undefined, 'the suffix is required');
});

test('isoWeek follows ISO 8601 (week 1 holds January 4th, weeks start on Monday)', () => {
  assert.is(isoWeek(new Date('2026-01-01T00:00:00Z')), '2026-W01'); // Thursday
  assert.is(isoWeek(new Date('2027-01-01T00:00:00Z')), '2026-W53'); // Friday: last week of 2026
  assert.is(isoWeek(new Date('2024-12-30T00:00:00Z')), '2025-W01'); // Monday
  assert.is(isoWeek(new Date('2026-03-15T23:59:59Z')), '2026-W11'); // Sunday
  assert.is(isoWeek(new Date('2026-03-16T00:00:00Z')), '2026-W12'); // Monday
});

test('daily keeps the newest backup of each of the N most recent days that have one', () => {
  const b = [
    at('2026-03-15T02:00:00Z'),
    at('2026-03-15T10:00:00Z'), // newest of the 15th
    at('2026-03-14T02:00:00Z'),
    at('2026-03-12T02:00:00Z'), // the 13th has none: the 12th is the third day with a backup
    at('2026-03-11T02:00:00Z'),
  ];
  const d = planRetention(b, { daily: 3, weekly: 0, monthly: 0 }, NOW);
  assert.equal(kept(d).sort(), [b[1].id, b[2].id, b[3].id].sort());
  assert.equal(d.find((x) => x.id === b[0].id)?.reasons, ['not selected by any keep rule']);
  assert.ok(d.find((x) => x.id === b[1].id)?.reasons.includes('daily 2026-03-15'));
});

test('weekly and monthly keep the newest backup per ISO week and per month; rules add up', () => {
  // One backup a day at 01:00 for 100 days up to NOW.
  const b = Array.from({ length: 100 }, (_, i) => at(new Date(NOW.getTime() - i * DAY - 11 * 3_600_000).toISOString()));
  const d = planRetention(b, { daily: 7, weekly: 4, monthly: 3 }, NOW);
  const keep = new Set(kept(d));
  const byId = new Map(b.map((x) => [x.id, x]));
  const days = [...keep].map((id) => byId.get(id)!.time.toISOString().slice(0, 10)).sort();
  // daily: Mar 9..15; weekly: newest of W11 (Mar 15), W10 (Mar 8), W09 (Mar 1), W08 (Feb 22);
  // monthly: newest of March (Mar 15), February (Feb 28), January (Jan 31).
  assert.equal(days, ['2026-01-31', '2026-02-22', '2026-02-28', '2026-03-01', '2026-03-08', '2026-03-09', '2026-03-10', '2026-03-11', '2026-03-12', '2026-03-13', '2026-03-14', '2026-03-15']);
  assert.is(d.filter((x) => x.action === 'delete').length, 100 - 12);
  const mar15 = d.find((x) => byId.get(x.id)!.time.toISOString().startsWith('2026-03-15'))!;
  assert.equal(mar15.reasons, ['daily 2026-03-15', 'weekly 2026-W11', 'monthly 2026-03', 'newest valid backup']);
});

test('the newest valid and the newest verified backup are always kept, even with all counts 0', () => {
  const b = [at('2026-03-01T00:00:00Z', { verified: true }), at('2026-03-10T00:00:00Z'), at('2026-03-11T00:00:00Z', { state: 'corrupt' })];
  const d = planRetention(b, { daily: 0, weekly: 0, monthly: 0 }, NOW);
  assert.equal(kept(d), [b[0].id, b[1].id]);
  assert.equal(d.find((x) => x.id === b[0].id)?.reasons, ['newest verified backup']);
});

test('incomplete and corrupt backups are deleted only when older than 24 hours; they never count for retention', () => {
  const old = at('2026-03-13T00:00:00Z', { state: 'incomplete' });
  const young = at('2026-03-15T01:00:00Z', { state: 'incomplete' });
  const corrupt = at('2026-03-10T00:00:00Z', { state: 'corrupt' });
  const recentlyWritten = at('2026-03-13T00:00:00Z', { state: 'incomplete', lastModified: new Date('2026-03-15T11:00:00Z') });
  const valid = at('2026-03-09T00:00:00Z');
  const d = planRetention([old, young, corrupt, recentlyWritten, valid], { daily: 1, weekly: 0, monthly: 0 }, NOW);
  const action = (c: RetentionCandidate) => d.find((x) => x.id === c.id)?.action;
  assert.is(action(old), 'delete');
  assert.is(action(corrupt), 'delete');
  assert.is(action(young), 'keep');
  assert.is(action(recentlyWritten), 'keep', 'an upload still writing is left alone');
  assert.is(action(valid), 'keep', 'the only valid backup is the daily one, not the younger incomplete ones');
});

test('planRetention rejects negative or fractional counts', () => {
  assert.throws(() => planRetention([], { daily: -1, weekly: 0, monthly: 0 }, NOW), /keep-daily/);
  assert.throws(() => planRetention([], { daily: 1, weekly: 1.5, monthly: 0 }, NOW), /keep-weekly/);
});

test('manifestProblems names each broken field', () => {
  const good = {
    format: MANIFEST_FORMAT,
    id: 'X',
    database: 'd',
    serverVersion: '15',
    pgDumpVersion: '15',
    startedAt: 's',
    finishedAt: 'f',
    dump: { file: 'dump.pgc', format: 'custom', size: 3, sha256: 'a'.repeat(64) },
    tables: [{ schema: 's', table: 't', rows: 1, checksum: 'c' }],
    source: { kind: 'script' },
  };
  assert.equal(manifestProblems(good, 'X'), []);
  assert.equal(manifestProblems({ ...good, id: 'Y' }, 'X'), ['id is "Y", but the backup folder is "X"']);
  assert.equal(manifestProblems({ ...good, dump: { ...good.dump, sha256: 'nope' } }, 'X'), ['dump.sha256 is not a sha256 hex digest']);
  assert.equal(manifestProblems({ ...good, tables: [{ schema: 's' }] }, 'X'), ['tables[0] is not {schema, table, rows, checksum}']);
  assert.equal(manifestProblems(null, 'X'), ['manifest is not a JSON object']);
});

test('compareTables fails missing, extra and changed tables', () => {
  const e = [
    { schema: 'a', table: 'x', rows: 1, checksum: 'c1' },
    { schema: 'a', table: 'y', rows: 2, checksum: 'c2' },
    { schema: 'a', table: 'z', rows: 0, checksum: 'c3' },
  ];
  const a = [
    { schema: 'a', table: 'x', rows: 1, checksum: 'c1' },
    { schema: 'a', table: 'y', rows: 2, checksum: 'other' },
    { schema: 'b', table: 'w', rows: 0, checksum: 'c4' },
  ];
  const r = compareTables(e, a);
  assert.equal(
    r.map((t) => [`${t.schema}.${t.table}`, t.passed]),
    [
      ['a.x', true],
      ['a.y', false],
      ['a.z', false],
      ['b.w', false],
    ],
  );
  assert.is(r[1].rowsMatch, true);
  assert.is(r[1].checksumMatch, false);
});

test('database URLs: the password goes to PGPASSWORD and never into descriptions', () => {
  const c = parseDatabaseUrl('postgresql://app:s3cr%40t-pw@db.example:6543/conduit?sslmode=require');
  assert.is(c.password, 's3cr@t-pw');
  assert.is(describeConnection(c), 'postgresql://app@db.example:6543/conduit');
  const env = connectionEnv(c);
  assert.equal(env, { PGHOST: 'db.example', PGPORT: '6543', PGDATABASE: 'conduit', PGCONNECT_TIMEOUT: '15', PGUSER: 'app', PGPASSWORD: 's3cr@t-pw', PGSSLMODE: 'require' });
  assert.not.match(redact('connecting with s3cr@t-pw'), /s3cr@t-pw/);
  assert.not.ok(restoreArgs('conduit', '/tmp/d.pgc', { clean: true, singleTransaction: true }).some((a) => a.includes('s3cr')));
  assert.throws(() => parseDatabaseUrl('mysql://x@y/z'), /postgresql:\/\//);
  assert.throws(() => parseDatabaseUrl('postgresql://x@y/'), /names no database/);
  assert.throws(() => parseDatabaseUrl('postgresql://x@y/db?password=oops'), /unsupported URL parameter "password"/);
});

test.run();
