// Throughput of `backup.ts create` against the plain-tool baseline `pg_dump -Fc -f FILE`, on the
// same database in the same run, to a local directory and to S3 (rclone serve s3 on loopback).
// Target: each destination costs at most 10% more time than plain pg_dump (baseline/ours >= 0.91),
// the upload to S3 included. Ours is timed from process start to exit, node start-up included
// (started as the tests start it, `node --import tsx`; `npx zx` adds npm's own start-up on top).
// BENCH_BACKUP_ROWS scales the data set (default 1 500 000 extra request rows, about 200 MB in the
// database).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../scripts/lib/core/exec.ts';
import { connectionEnv, parseDatabaseUrl, pgProgram } from '../scripts/lib/adapters/pg.ts';
import { backupCli, loadDataset } from '../test/e2e/backup-data.ts';
import { startPostgres, startS3, type PostgresServer, type S3Server } from '../test/e2e/services.ts';
import type { BenchCase, BenchModule } from './run.ts';

let pg: PostgresServer | undefined;
let s3: S3Server | undefined;
let work = '';

const bench: BenchModule = {
  title: 'backup',
  description: [
    'ours: node --import tsx scripts/backup.ts create --database-url URL --to DEST (dump, sha256, per-table counts and checksums, manifest)',
    'baseline: pg_dump --format=custom --file FILE on the same database (what an operator would script)',
  ],
  async cases(): Promise<BenchCase[]> {
    const extraRows = Number(process.env.BENCH_BACKUP_ROWS ?? 1_500_000);
    [pg, s3] = await Promise.all([startPostgres(), startS3()]);
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-bench-'));
    process.stderr.write(`  loading the data set (+${extraRows} request rows)...\n`);
    await loadDataset(pg, 'conduit');
    await pg.sql(
      'conduit',
      `INSERT INTO app.requests (user_id, model, tokens, cost, payload, at)
       SELECT 1 + (i % 20000), 'model-' || (i % 7), (random() * 4000)::integer, random(), decode(md5(i::text), 'hex'), now() - (i || ' seconds')::interval
       FROM generate_series(1, ${extraRows}) AS i;
       -- As autovacuum leaves a table in service (hint bits set, pages all-visible); otherwise it
       -- vacuums the new rows in the middle of a measured run, on the same two cores.
       VACUUM (ANALYZE);`,
    );
    const size = Number((await pg.sql('conduit', 'SELECT pg_database_size(current_database());')).trim());
    process.stderr.write(`  database size ${(size / 1e6).toFixed(0)} MB\n`);
    const env = { ...pg.env, ...s3.env };
    const conn = parseDatabaseUrl(pg.urlWithPassword('conduit'));
    const plainFile = path.join(work, 'plain.pgc');
    const server = pg;
    const bucket = s3.bucket;
    let n = 0;
    const plainDump = async () => {
      const r = await run(pgProgram('pg_dump'), ['--format=custom', '--no-password', `--file=${plainFile}`], { env: connectionEnv(conn) });
      if (r.exitCode !== 0) throw new Error(r.stderr);
    };
    const create = (dest: () => string) => async () => {
      const r = await backupCli(['create', '--database-url', server.url('conduit'), '--to', dest()], env);
      if (r.exitCode !== 0) throw new Error(r.stderr);
    };
    // Throughput in dump bytes per second, from the baseline's dump size.
    const mbps = (ms: number) => (fs.statSync(plainFile).size / 1e6 / (ms / 1000)).toFixed(1);
    const note = (o: number, b: number) => `ours ${mbps(o)} MB/s, baseline ${mbps(b)} MB/s; overhead ${((o / b - 1) * 100).toFixed(1)}%`;
    return [
      {
        name: `create --to DIR (${(size / 1e6).toFixed(0)} MB database)`,
        ours: create(() => fs.mkdtempSync(path.join(work, 'dir'))),
        baseline: plainDump,
        target: 0.91,
        reps: 4,
        warmup: true,
        note,
      },
      {
        name: 'create --to s3:// (upload included)',
        ours: create(() => `s3://${bucket}/bench${n++}`),
        baseline: plainDump,
        target: 0.91,
        reps: 4,
        warmup: true,
        note,
      },
    ];
  },
  async teardown() {
    await Promise.all([pg?.stop(), s3?.stop()]);
    if (work) fs.rmSync(work, { recursive: true, force: true });
  },
};

export default bench;
