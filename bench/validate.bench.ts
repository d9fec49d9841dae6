// `validate.ts --all` against the plain script an operator would write with the same tools:
// per cluster, one after the other, `helm lint --strict` and, for each Kubernetes version,
// `helm template | kubeconform -strict` with the same local schemas. Both sides read the same
// generated registry (4 and 40 clusters, copies of the repository's clusters with their own
// layer files) and the same chart, and check the same Kubernetes versions (every validated minor
// from the floor of the chart's kubeVersion to the newest; the run fails if our report names
// others). Our side does more (values schema with positions, kube-score) and must still be at
// least twice as fast.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { run } from '../scripts/lib/core/exec.ts';
import { ensureSchemas, minorOf, schemaLocationTemplate } from '../scripts/lib/adapters/kubeschemas.ts';
import { defaultKubeVersions } from '../scripts/lib/engines/validate-kube.ts';
import { chartKubeRange } from '../scripts/lib/engines/validate-range.ts';
import { REPO_ROOT } from '../scripts/lib/core/paths.ts';
import { tool } from '../scripts/lib/adapters/tools.ts';
import type { BenchCase, BenchModule } from './run.ts';

const realChart = fs.existsSync(path.join(REPO_ROOT, 'chart', 'Chart.yaml')) && fs.existsSync(path.join(REPO_ROOT, 'values', 'clusters.yaml'));
// CONDUIT_BENCH_CHART and CONDUIT_BENCH_VALUES point the benchmark at another chart and values folder.
const SOURCE =
  process.env.CONDUIT_BENCH_CHART && process.env.CONDUIT_BENCH_VALUES
    ? { chart: path.resolve(process.env.CONDUIT_BENCH_CHART), values: path.resolve(process.env.CONDUIT_BENCH_VALUES), label: process.env.CONDUIT_BENCH_CHART }
    : realChart
      ? { chart: path.join(REPO_ROOT, 'chart'), values: path.join(REPO_ROOT, 'values'), label: 'chart/' }
      : { chart: path.join(REPO_ROOT, 'test', 'fixtures', 'chart'), values: path.join(REPO_ROOT, 'test', 'fixtures', 'values'), label: 'test/fixtures/chart (the chart is not there yet)' };

/** The versions `validate.ts --all` checks for this chart: the baseline checks exactly these. */
const VERSIONS = defaultKubeVersions(chartKubeRange(SOURCE.chart));

interface RegistryEntry {
  namespace: string;
  release: string;
  environment: string;
  layers: string[];
  [k: string]: unknown;
}

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-bench-'));

/** A registry of `n` clusters in a fresh folder: copies of the source clusters, each with its own layer file. */
function generateRegistry(n: number): { file: string; clusters: { name: string; entry: RegistryEntry; layers: string[] }[] } {
  const dir = path.join(tmpRoot, `values-${n}`);
  fs.cpSync(SOURCE.values, dir, { recursive: true });
  const src = parse(fs.readFileSync(path.join(SOURCE.values, 'clusters.yaml'), 'utf8')) as { clusters: Record<string, RegistryEntry> };
  const bases = Object.entries(src.clusters);
  const out: Record<string, RegistryEntry> = {};
  const list: { name: string; entry: RegistryEntry; layers: string[] }[] = [];
  fs.mkdirSync(path.join(dir, 'generated'), { recursive: true });
  for (let i = 0; i < n; i++) {
    const [baseName, base] = bases[i % bases.length];
    const name = `${baseName}-${i}`;
    const own = base.layers[base.layers.length - 1];
    const ownCopy = `generated/${name}.yaml`;
    fs.copyFileSync(path.join(dir, own), path.join(dir, ownCopy));
    const entry = { ...base, layers: [...base.layers.slice(0, -1), ownCopy] };
    out[name] = entry;
    list.push({ name, entry, layers: entry.layers.map((l) => path.join(dir, l)) });
  }
  const file = path.join(dir, 'clusters.yaml');
  fs.writeFileSync(file, stringify({ clusters: out }));
  return { file, clusters: list };
}

/**
 * Run a command under bash and read the user + system CPU time of everything it started from
 * bash's `times` builtin (second line: children).
 */
async function runTimed(argv: string[], cwd?: string): Promise<{ exitCode: number; stdout: string; stderr: string; cpuMs: number }> {
  const marker = '__BENCH_TIMES__';
  const r = await run('bash', ['-c', `"$@"; rc=$?; echo ${marker} >&2; times >&2; exit $rc`, 'bench', ...argv], { cwd });
  const after = r.stderr
    .slice(r.stderr.lastIndexOf(marker) + marker.length)
    .trim()
    .split('\n');
  const secs = (t: string) => {
    const m = /(\d+)m([\d.]+)s/.exec(t);
    return m ? Number(m[1]) * 60 + Number(m[2]) : 0;
  };
  const [u, sy] = (after[1] ?? '').trim().split(/\s+/);
  return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr.slice(0, r.stderr.lastIndexOf(marker)), cpuMs: (secs(u) + secs(sy)) * 1000 };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The operator's plain script: sequential lint, then template | kubeconform per version. */
function baselineScript(helm: string, kubeconform: string, clusters: { name: string; entry: RegistryEntry; layers: string[] }[]): string {
  const lines = ['set -u', 'status=0'];
  for (const c of clusters) {
    const values = c.layers.map((l) => `-f ${shellQuote(l)}`).join(' ');
    lines.push(`echo "== ${c.name}"`);
    lines.push(`${shellQuote(helm)} lint --strict ${shellQuote(SOURCE.chart)} --namespace ${c.entry.namespace} ${values} >/dev/null || status=1`);
    for (const v of VERSIONS) {
      lines.push(
        `${shellQuote(helm)} template ${c.entry.release} ${shellQuote(SOURCE.chart)} --namespace ${c.entry.namespace} --kube-version v${v} ${values}` +
          ` | ${shellQuote(kubeconform)} -strict -summary -kubernetes-version ${v} -schema-location ${shellQuote(schemaLocationTemplate())} >/dev/null || status=1`,
      );
    }
  }
  lines.push('exit $status');
  return lines.join('\n') + '\n';
}

const bench: BenchModule = {
  title: 'validate',
  description: [
    `chart: ${SOURCE.label}; Kubernetes ${VERSIONS.map(minorOf).join(', ')} (both sides)`,
    'ours: node scripts/validate.ts --all (values schema, helm lint --strict, helm template, kubeconform -strict, kube-score)',
    'baseline: bash, per cluster in turn: helm lint --strict; per version: helm template | kubeconform -strict (same local schemas)',
  ],
  async cases(): Promise<BenchCase[]> {
    const [helm, kubeconform] = await Promise.all([tool('helm'), tool('kubeconform'), tool('kube-score')]);
    // Schema generation is a one-time cost per version (cached); both sides use the cache.
    await Promise.all(VERSIONS.map((v) => ensureSchemas(v)));
    return [4, 40].map((n): BenchCase => {
      const reg = generateRegistry(n);
      const script = path.join(tmpRoot, `baseline-${n}.sh`);
      fs.writeFileSync(script, baselineScript(helm, kubeconform, reg.clusters));
      return {
        name: `${n} clusters`,
        reps: n > 10 ? 1 : 3,
        warmup: n <= 10,
        target: 2,
        ours: async () => {
          const r = await runTimed(
            [process.execPath, '--import', 'tsx', path.join(REPO_ROOT, 'scripts', 'validate.ts'), '--all', '--registry', reg.file, '--chart', SOURCE.chart, '--json'],
            REPO_ROOT,
          );
          if (r.exitCode === 2) throw new Error(`validate.ts failed to run:\n${r.stderr.slice(-2000)}`);
          const report = JSON.parse(r.stdout) as { clusters: unknown[]; kubeVersions: string[] };
          if (report.clusters.length !== n) throw new Error(`validate.ts reported ${report.clusters.length} clusters, expected ${n}`);
          if (report.kubeVersions.join() !== VERSIONS.join()) throw new Error(`validate.ts checked Kubernetes ${report.kubeVersions.join(', ')}, the baseline ${VERSIONS.join(', ')}`);
          return { cpuMs: r.cpuMs };
        },
        baseline: async () => {
          const r = await runTimed(['bash', script]);
          if ((r.stdout.match(/^== /gm) ?? []).length !== n) throw new Error(`baseline script did not cover ${n} clusters:\n${r.stderr.slice(-2000)}`);
          return { cpuMs: r.cpuMs };
        },
      };
    });
  },
  async teardown() {
    fs.rmSync(tmpRoot, { recursive: true, force: true });
  },
};

export default bench;
