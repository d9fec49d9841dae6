// Throughput of `backup.ts create` against the plain-tool baseline `pg_dump -Fc -f FILE`, on the
// same database in the same run, to a local directory and to S3 (rclone serve s3 on loopback).
// Target: the directory destination costs at most 10% more time than plain pg_dump.
//
// Runs by itself: node --import tsx bench/backup.bench.ts
// Or from a runner: the default export returns rows { name, seconds, ratio } (ratio vs baseline).
// BENCH_BACKUP_ROWS scales the data set (default 1 500 000 request rows, about 150 MB of table data).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { run } from '../scripts/lib/exec.ts';
import { connectionEnv, parseDatabaseUrl, pgProgram } from '../scripts/lib/pg.ts';
import { table } from '../scripts/lib/ui.ts';
import { backupCli, loadDataset } from '../test/e2e/backup-data.ts';
import { startPostgres, startS3 } from '../test/e2e/services.ts';

export interface BenchRow {
  name: string;
  seconds: number;
  ratio: number;
  mbPerSecond?: number;
}

const REPEATS = 4;

/**
 * Run the variants in turns (A B C, A B C, ...) so that load from anything else on the machine
 * falls on all of them alike, and keep each one's best time.
 */
async function interleaved(variants: { label: string; fn: () => Promise<void> }[]): Promise<number[]> {
  const best = variants.map(() => Infinity);
  for (let i = 0; i < REPEATS; i++) {
    for (const [j, v] of variants.entries()) {
      const t0 = performance.now();
      await v.fn();
      const s = (performance.now() - t0) / 1000;
      best[j] = Math.min(best[j], s);
      process.stderr.write(`  ${v.label} run ${i + 1}: ${s.toFixed(2)}s\n`);
    }
  }
  return best;
}

export default async function backupBench(): Promise<BenchRow[]> {
  const extraRows = Number(process.env.BENCH_BACKUP_ROWS ?? 1_500_000);
  const [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-bench-'));
  try {
    process.stderr.write(`loading the data set (+${extraRows} request rows)...\n`);
    await loadDataset(pg, 'conduit');
    await pg.sql(
      'conduit',
      `INSERT INTO app.requests (user_id, model, tokens, cost, payload, at)
       SELECT 1 + (i % 20000), 'model-' || (i % 7), (random() * 4000)::integer, random(), decode(md5(i::text), 'hex'), now() - (i || ' seconds')::interval
       FROM generate_series(1, ${extraRows}) AS i; ANALYZE;`,
    );
    const size = (await pg.sql('conduit', 'SELECT pg_database_size(current_database());')).trim();
    process.stderr.write(`database size ${(Number(size) / 1e6).toFixed(0)} MB\n`);
    const env = { ...pg.env, ...s3.env };
    const conn = parseDatabaseUrl(pg.urlWithPassword('conduit'));

    const plainFile = path.join(work, 'plain.pgc');
    let n = 0;
    const viaCli = (dest: () => string) => async () => {
      const r = await backupCli(['create', '--database-url', pg.url('conduit'), '--to', dest()], env);
      if (r.exitCode !== 0) throw new Error(r.stderr);
    };
    const [baseline, dirSeconds, s3Seconds] = await interleaved([
      {
        label: 'pg_dump -Fc -f',
        fn: async () => {
          const r = await run(pgProgram('pg_dump'), ['--format=custom', '--no-password', `--file=${plainFile}`], { env: connectionEnv(conn) });
          if (r.exitCode !== 0) throw new Error(r.stderr);
        },
      },
      {
        label: 'backup.ts create --to DIR',
        fn: viaCli(() => {
          const d = path.join(work, `dir${n++}`);
          fs.mkdirSync(d);
          return d;
        }),
      },
      { label: 'backup.ts create --to s3://', fn: viaCli(() => `s3://${s3.bucket}/bench${n++}`) },
    ]);
    const dumpBytes = fs.statSync(plainFile).size;

    const mbps = (s: number) => dumpBytes / 1e6 / s;
    return [
      { name: 'pg_dump -Fc -f FILE (baseline)', seconds: baseline, ratio: 1, mbPerSecond: mbps(baseline) },
      { name: 'backup.ts create --to DIR', seconds: dirSeconds, ratio: dirSeconds / baseline, mbPerSecond: mbps(dirSeconds) },
      { name: 'backup.ts create --to s3://', seconds: s3Seconds, ratio: s3Seconds / baseline, mbPerSecond: mbps(s3Seconds) },
    ];
  } finally {
    await Promise.all([pg.stop(), s3.stop()]);
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const rows = await backupBench();
  process.stdout.write(
    table(
      ['benchmark', `seconds (best of ${REPEATS})`, 'MB/s (dump bytes)', 'ratio'],
      rows.map((r) => [r.name, r.seconds.toFixed(2), (r.mbPerSecond ?? 0).toFixed(1), r.ratio.toFixed(3)]),
    ) + '\n',
  );
  const dir = rows.find((r) => r.name.includes('DIR'))!;
  process.stdout.write(`directory overhead: ${((dir.ratio - 1) * 100).toFixed(1)}% (target <= 10%)\n`);
}
