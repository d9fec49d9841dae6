// Benchmark runner: loads bench/*.bench.ts (or the names given), runs each case's own path and its
// plain-tool baseline in the same run, alternating them, and prints the median times and the ratio.
// Usage: node --import tsx bench/run.ts [NAME...] [--reps N] [--json]
// Times are wall-clock medians; the CPU columns (user + system time of every process a side started)
// show the work done, which stays comparable when the machine is busy with other things.
// Exit 1 when a case misses its target ratio (baseline wall time / our wall time) or its time limit.
// A case may have no baseline (e.g. first-run without --with-build): then only its time limit counts.
// Flags a bench reads itself (such as --with-build) pass through.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatMs, table } from '../scripts/lib/core/ui.ts';

/** What one side reports about a run: the CPU time its processes used, when it can tell. */
export interface SideResult {
  cpuMs?: number;
}

export interface BenchCase {
  name: string;
  ours: () => Promise<SideResult | void>;
  /** The plain-tool side; a case without one measures ours alone (against maxMs). */
  baseline?: () => Promise<SideResult | void>;
  /** Required baseline/ours ratio. */
  target?: number;
  /** Ours (median) must take at most this long. */
  maxMs?: number;
  /** Timed repetitions (median is reported); default 3. */
  reps?: number;
  /** Run each side once untimed first (warms file caches). */
  warmup?: boolean;
  /** Extra figures for the table from the median times, e.g. throughput. */
  note?: (oursMs: number, baselineMs: number) => string;
}

export interface BenchModule {
  title: string;
  /** What "ours" and "baseline" mean, printed above the table. */
  description: string[];
  cases: () => Promise<BenchCase[]>;
  teardown?: () => Promise<void>;
}

export interface BenchRow {
  bench: string;
  case: string;
  oursMs: number;
  baselineMs: number;
  ratio: number;
  target?: number;
  maxMs?: number;
  met: boolean;
  oursRuns: number[];
  baselineRuns: number[];
  oursCpuMs?: number;
  baselineCpuMs?: number;
  note?: string;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function time(fn: () => Promise<SideResult | void>, cpu: number[]): Promise<number> {
  const t = performance.now();
  const r = await fn();
  if (r && r.cpuMs !== undefined) cpu.push(r.cpuMs);
  return performance.now() - t;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const json = args.includes('--json');
const ri = args.indexOf('--reps');
const repsOverride = ri >= 0 ? Number(args[ri + 1]) : undefined;
const names = args.filter((a, i) => !a.startsWith('--') && !(ri >= 0 && i === ri + 1));
const files = fs
  .readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts') && (!names.length || names.some((n) => f.startsWith(n))))
  .sort();
if (!files.length) {
  console.error(`no benchmark matches ${names.join(' ')}`);
  process.exit(2);
}

const rows: BenchRow[] = [];
for (const file of files) {
  const mod = (await import(pathToFileURL(path.join(here, file)).href)).default as BenchModule;
  const log = (m: string) => process.stderr.write(m + '\n');
  log(`# ${mod.title}`);
  for (const d of mod.description) log(`  ${d}`);
  try {
    for (const c of await mod.cases()) {
      const reps = repsOverride ?? c.reps ?? 3;
      const baselineSide = c.baseline;
      if (c.warmup) {
        log(`  ${c.name}: warm-up`);
        await c.ours();
        await baselineSide?.();
      }
      const ours: number[] = [];
      const base: number[] = [];
      const oursCpu: number[] = [];
      const baseCpu: number[] = [];
      for (let i = 0; i < reps; i++) {
        // Alternate the order so neither side always runs on a warmer machine.
        if (!baselineSide) ours.push(await time(c.ours, oursCpu));
        else if (i % 2 === 0) {
          ours.push(await time(c.ours, oursCpu));
          base.push(await time(baselineSide, baseCpu));
        } else {
          base.push(await time(baselineSide, baseCpu));
          ours.push(await time(c.ours, oursCpu));
        }
        const cpu = oursCpu[i] !== undefined && baseCpu[i] !== undefined ? ` (CPU ${formatMs(oursCpu[i])} vs ${formatMs(baseCpu[i])})` : '';
        log(`  ${c.name}: run ${i + 1}/${reps}: ours ${formatMs(ours[i])}${baselineSide ? `, baseline ${formatMs(base[i])}` : ''}${cpu}`);
      }
      const o = median(ours);
      const b = baselineSide ? median(base) : NaN;
      const ratio = b / o;
      const met = (c.target === undefined || !baselineSide || ratio >= c.target) && (c.maxMs === undefined || o <= c.maxMs);
      rows.push({
        bench: mod.title,
        case: c.name,
        oursMs: o,
        baselineMs: b,
        ratio,
        target: c.target,
        maxMs: c.maxMs,
        met,
        oursRuns: ours,
        baselineRuns: base,
        ...(oursCpu.length ? { oursCpuMs: median(oursCpu) } : {}),
        ...(baseCpu.length ? { baselineCpuMs: median(baseCpu) } : {}),
        ...(c.note ? { note: c.note(o, b) } : {}),
      });
    }
  } finally {
    await mod.teardown?.();
  }
}

if (json) process.stdout.write(JSON.stringify({ ok: rows.every((r) => r.met), rows }, null, 2) + '\n');
else {
  process.stdout.write(
    table(
      ['bench', 'case', 'ours', 'baseline', 'ratio', 'target', 'result', 'CPU ours', 'CPU baseline', 'CPU ratio', 'note'],
      rows.map((r) => [
        r.bench,
        r.case,
        formatMs(r.oursMs),
        Number.isNaN(r.baselineMs) ? '-' : formatMs(r.baselineMs),
        Number.isNaN(r.ratio) ? '-' : `${r.ratio.toFixed(2)}x`,
        [r.target && !Number.isNaN(r.ratio) ? `>= ${r.target}x` : '', r.maxMs ? `<= ${formatMs(r.maxMs)}` : ''].filter(Boolean).join(', ') || '-',
        r.met ? 'ok' : 'MISSED',
        r.oursCpuMs !== undefined ? formatMs(r.oursCpuMs) : '-',
        r.baselineCpuMs !== undefined ? formatMs(r.baselineCpuMs) : '-',
        r.oursCpuMs && r.baselineCpuMs ? `${(r.baselineCpuMs / r.oursCpuMs).toFixed(2)}x` : '-',
        r.note ?? '',
      ]),
    ) + '\n',
  );
}
process.exitCode = rows.every((r) => r.met) ? 0 : 1;
