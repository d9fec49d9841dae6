#!/usr/bin/env -S npx zx
// validate.ts: check what would be deployed to one cluster (or all) without touching any cluster.
import path from 'node:path';
import chalk from 'chalk';
import { runCommand } from './lib/core/cli.ts';
import { DEFAULT_REGISTRY, loadRegistry, selectClusters } from './lib/domain/clusters.ts';
import { EXIT_FAILED, EXIT_OK, usageError } from './lib/core/errors.ts';
import { KUBE_VERSIONS, minorOf } from './lib/adapters/kubeschemas.ts';
import { CHART_DIR, displayPath } from './lib/core/paths.ts';
import { helmMajor } from './lib/adapters/helm.ts';
import { formatMs, table } from './lib/core/ui.ts';
import { validateClusters, type ClusterReport, type ValidationReport } from './lib/engines/validate.ts';
import { planKubeVersions } from './lib/engines/validate-kube.ts';

const spec = {
  name: 'validate.ts',
  summary: 'Validate the merged values, the chart and every rendered object of one cluster (or all), offline.',
  usage: ['npx zx scripts/validate.ts [--cluster NAME | --all] [--values FILE]... [--set k=v]... [--kube-version X.Y] [--helm 3|4] [--json]'],
  flags: {
    cluster: { type: 'string' as const, arg: 'NAME', description: 'Cluster from values/clusters.yaml (default: local).' },
    all: { type: 'boolean' as const, description: 'Every cluster in the registry.' },
    values: { type: 'string' as const, multiple: true as const, arg: 'FILE', description: 'Extra values file, applied after the cluster layers.' },
    set: { type: 'string' as const, multiple: true as const, arg: 'K=V', description: 'Set a value (Helm --set syntax), applied last.' },
    'kube-version': {
      type: 'string' as const,
      arg: 'X.Y',
      description: `Validate for one Kubernetes minor only (default: each of ${Object.keys(KUBE_VERSIONS).join(', ')} that the chart's kubeVersion admits).`,
    },
    helm: { type: 'string' as const, arg: '3|4', description: 'Helm major to lint and render with (default: 4, or CONDUIT_HELM_MAJOR).' },
    registry: { type: 'string' as const, arg: 'FILE', description: 'Cluster registry (default: values/clusters.yaml); layers are relative to its folder.' },
    chart: { type: 'string' as const, arg: 'DIR', description: 'Chart directory (default: chart/).' },
    jobs: { type: 'string' as const, arg: 'N', description: 'How many helm processes run at once (default: number of CPUs, at least 2).' },
  },
  examples: [
    'npx zx scripts/validate.ts',
    'npx zx scripts/validate.ts --cluster prod-eu --kube-version 1.36',
    'npx zx scripts/validate.ts --all --json > report.json',
    'npx zx scripts/validate.ts --cluster staging --values my-overrides.yaml --set api.replicaCount=4',
  ],
  notes: [
    'Steps per cluster: values (merge like Helm + values.schema.json, errors point at file:line:column),',
    'helm lint --strict, helm template per Kubernetes version, strict schemas of every object (kubeconform,',
    "offline schemas generated from the Kubernetes OpenAPI documents and the operators' CRDs), kube-score",
    '(ignored checks and reasons in .kube-score.yaml). Nothing is sent to any cluster.',
    "Kubernetes versions: every minor from the floor of chart/Chart.yaml's kubeVersion to the newest; each",
    "cluster's kubeVersion in the registry must be one of them.",
  ],
};

function clusterTable(c: ClusterReport): string {
  const rows = c.steps.map((s) => [
    s.step,
    s.kubeVersion
      ? s.kubeVersion
          .split(',')
          .map((v) => (/^\d+\.\d+\.\d+$/.test(v) ? minorOf(v) : v))
          .join(',')
      : '-',
    s.status === 'ok' ? 'ok' : s.status === 'skipped' ? `skipped${s.note ? ` (${s.note})` : ''}` : `FAILED (${s.findings.length})`,
    s.status === 'skipped' ? '-' : formatMs(s.ms),
    s.status === 'skipped' ? '' : (s.note ?? ''),
  ]);
  return table(['step', 'kube', 'result', 'time', 'note'], rows);
}

/** `Kubernetes 1.33`, saying where the minor comes from when the registry does not name it, and when this run did not check it. */
function clusterKube(c: ClusterReport): string {
  return `Kubernetes ${c.kubeMinor}${c.kubeMinorFrom === 'newest' ? ', none declared: the newest validated' : ''}${c.kubeVersion ? '' : ', not checked in this run'}`;
}

/** The versions checked, the chart's floor and each cluster's minor, in one line. */
function coverageLine(report: ValidationReport): string {
  const minors = report.kubeMinors.length > 1 ? `${report.kubeMinors[0]} to ${report.kubeMinors[report.kubeMinors.length - 1]}` : report.kubeMinors[0];
  const floor = report.chartKubeVersion === null ? 'chart/Chart.yaml sets no kubeVersion' : `chart floor ${report.floorMinor ?? '?'} (kubeVersion "${report.chartKubeVersion}")`;
  return `Kubernetes ${minors} validated; ${floor}; clusters: ${report.clusters.map((c) => `${c.cluster} ${c.kubeMinor}`).join(', ')}`;
}

export function humanReport(report: ValidationReport): string {
  const out: string[] = [];
  for (const c of report.clusters) {
    const mark = c.ok ? chalk.green('✔') : chalk.red('✖');
    out.push(`${mark} cluster ${chalk.bold(c.cluster)} (${clusterKube(c)}; release ${c.release}, namespace ${c.namespace}; layers: chart/values.yaml, ${c.layers.join(', ')})`);
    out.push(clusterTable(c).replace(/^/gm, '  '));
    for (const w of c.warnings) out.push(`  ${chalk.yellow('warning:')} ${w}`);
    for (const s of c.steps) {
      for (const f of s.findings) {
        const where = f.location ?? f.object ?? '';
        const key = f.key ? `${f.key}: ` : '';
        out.push(
          `  ${chalk.red('✖')} [${s.step}${s.kubeVersion && s.step !== 'values' ? ' ' + s.kubeVersion : ''}] ${where ? where + ': ' : ''}${f.location && f.object ? f.object + ': ' : ''}${key}${f.message}`,
        );
        if (f.hint) out.push(`      ${chalk.dim('hint:')} ${f.hint}`);
      }
    }
    out.push('');
  }
  const failed = report.clusters.filter((c) => !c.ok).map((c) => c.cluster);
  out.push(coverageLine(report));
  out.push(
    failed.length
      ? chalk.red(`${failed.length} of ${report.clusters.length} cluster(s) invalid: ${failed.join(', ')}`) + ` (${formatMs(report.ms)})`
      : chalk.green(`${report.clusters.length} cluster(s) valid`) + ` for Kubernetes ${report.kubeVersions.map(minorOf).join(', ')} with helm ${report.helm} (${formatMs(report.ms)})`,
  );
  return out.join('\n');
}

await runCommand(spec, async ({ flags, positionals, reporter }) => {
  if (positionals.length) throw usageError(`unexpected argument "${positionals[0]}"`, 'validate.ts takes flags only; see --help.');
  const major = helmMajor(flags.helm);
  let jobs: number | undefined;
  if (flags.jobs !== undefined) {
    jobs = Number(flags.jobs);
    if (!Number.isInteger(jobs) || jobs < 1) throw usageError(`--jobs must be a positive integer, not "${flags.jobs}"`);
  }
  const registryFile = flags.registry ? path.resolve(flags.registry) : DEFAULT_REGISTRY;
  const registry = loadRegistry(registryFile);
  const clusters = selectClusters(registry, { cluster: flags.cluster, all: flags.all });
  const chartDir = flags.chart ? path.resolve(flags.chart) : CHART_DIR;
  const versions = planKubeVersions({ chartDir, clusters, registryFile, requested: flags['kube-version'] });
  const report = await reporter.step(`validate ${clusters.length} cluster(s) × ${versions.length} Kubernetes version(s)`, (progress) =>
    validateClusters({
      clusters,
      chartDir,
      valuesFiles: flags.values.map((f) => path.resolve(f)),
      sets: flags.set,
      kubeVersions: versions,
      helm: major,
      concurrency: jobs,
      progress,
    }),
  );
  reporter.result(humanReport(report), { ...report, registry: displayPath(registryFile) });
  return report.ok ? EXIT_OK : EXIT_FAILED;
});
