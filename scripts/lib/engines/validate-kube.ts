// Which Kubernetes versions validate.ts checks, and why. The chart promises every minor its
// Chart.yaml `kubeVersion` admits, and each registered cluster runs one minor (values/clusters.yaml
// `kubeVersion`). So, by default, every minor we have schemas for (KUBE_VERSIONS) that the
// constraint admits is checked; a floor older than the oldest of them is an error (the chart would
// promise what nobody checks), and so is a cluster whose declared minor is not checked.
import fs from 'node:fs';
import { UserError } from '../core/errors.ts';
import { displayPath } from '../core/paths.ts';
import { KUBE_VERSIONS, minorOf, resolveKubeVersion } from '../adapters/kubeschemas.ts';
import type { ClusterConfig } from '../domain/clusters.ts';
import { formatPos, parseValuesText, pathKey, type SourcePos } from '../domain/values.ts';
import { chartKubeRange, compareMinors, satisfiesConstraint, type ChartKubeRange } from './validate-range.ts';

/** Minors from `from` to `to` (same major), both included: `1.30`..`1.33`. */
function minorsBetween(from: string, to: string): string[] {
  const [major, first] = from.split('.').map(Number);
  const last = Number(to.split('.')[1]);
  return Array.from({ length: Math.max(0, last - first + 1) }, (_, i) => `${major}.${first + i}`);
}

/** Refuses a chart floor below the oldest minor we have schemas for: the chart would promise what nobody checks. */
export function checkFloorCovered(range: ChartKubeRange, supported: Readonly<Record<string, string>> = KUBE_VERSIONS): void {
  const minors = Object.keys(supported).sort(compareMinors);
  const [oldest, newest] = [minors[0], minors[minors.length - 1]];
  if (!range.floorMinor || compareMinors(range.floorMinor, oldest) >= 0) return;
  const missing = minorsBetween(range.floorMinor, oldest).slice(0, -1);
  const file = displayPath(range.file);
  throw new UserError(`${file}: kubeVersion "${range.constraint}" admits Kubernetes ${missing.join(', ')}, which no validation covers (validated: ${oldest} to ${newest})`, {
    hint: `Raise the floor in ${file} to ">=${oldest}.0-0" (and say so in docs/upgrading.md and CHANGELOG.md), or add ${missing.join(', ')} to KUBE_VERSIONS in scripts/lib/adapters/kubeschemas.ts.`,
  });
}

/** Each of `supported` (minor -> full version) that the chart's constraint admits, oldest first; none is an error. */
export function admittedKubeVersions(range: ChartKubeRange, supported: Readonly<Record<string, string>> = KUBE_VERSIONS): string[] {
  const minors = Object.keys(supported).sort(compareMinors);
  const admitted = minors.filter((m) => range.constraint === null || satisfiesConstraint(supported[m], range.constraint) !== false);
  if (!admitted.length) {
    const file = displayPath(range.file);
    throw new UserError(`${file}: kubeVersion "${range.constraint}" admits none of the Kubernetes versions validated here (${minors[0]} to ${minors[minors.length - 1]})`, {
      hint: `Fix kubeVersion in ${file}, or add the minors it admits to KUBE_VERSIONS in scripts/lib/adapters/kubeschemas.ts.`,
    });
  }
  return admitted.map((m) => supported[m]);
}

/** The full versions a default run checks: every supported minor the chart admits, from its floor (which they must cover) to the newest. */
export function defaultKubeVersions(range: ChartKubeRange, supported: Readonly<Record<string, string>> = KUBE_VERSIONS): string[] {
  checkFloorCovered(range, supported);
  return admittedKubeVersions(range, supported);
}

/** Where a cluster's kubeVersion key is in the registry file (else the cluster's own entry). */
function kubeVersionPos(cluster: ClusterConfig, registryFile: string | undefined): SourcePos {
  if (!registryFile || !fs.existsSync(registryFile)) return cluster.at;
  try {
    const layer = parseValuesText(fs.readFileSync(registryFile, 'utf8'), displayPath(registryFile));
    return layer.positions.get(pathKey(['clusters', cluster.name, 'kubeVersion'])) ?? cluster.at;
  } catch {
    return cluster.at;
  }
}

/** What a cluster whose minor is not validated should do, depending on why. */
function undeclaredHint(cluster: ClusterConfig, minor: string, validated: string[], range: ChartKubeRange, registry: string): string {
  const key = `clusters.${cluster.name}.kubeVersion`;
  const list = validated.join(', ');
  if (range.floorMinor && compareMinors(minor, range.floorMinor) < 0) {
    return `The chart needs Kubernetes ${range.constraint} (${displayPath(range.file)}): upgrade the cluster first, or, if ${minor} is a typo, set ${key} in ${registry} to its real minor (one of ${list}).`;
  }
  const newer = compareMinors(minor, validated[validated.length - 1]) > 0;
  return (
    `Set ${key} in ${registry} to the cluster's real minor, one of ${list}` +
    (newer ? `; to validate ${minor} itself, add it to KUBE_VERSIONS in scripts/lib/adapters/kubeschemas.ts (its newest patch of the Go module k8s.io/kubernetes).` : '.')
  );
}

/**
 * Every cluster's declared minor must be one of the validated minors: a cluster on a minor nobody
 * checks is an error naming the registry file, the key and the fix (not a silent skip).
 */
export function checkClusterMinors(clusters: ClusterConfig[], validated: string[], range: ChartKubeRange, registryFile?: string): void {
  const minors = validated.map(minorOf);
  const bad = clusters.filter((c) => c.kubeVersion !== undefined && !minors.includes(c.kubeVersion));
  if (!bad.length) return;
  const registry = registryFile ? displayPath(registryFile) : bad[0].at.file;
  const lines = bad.map((c) => {
    const pos = kubeVersionPos(c, registryFile);
    return `${formatPos(pos)}: clusters.${c.name}.kubeVersion: Kubernetes ${c.kubeVersion} is not validated here (validated: ${minors.join(', ')})`;
  });
  throw new UserError(lines.length === 1 ? lines[0] : `clusters on a Kubernetes minor that is not validated:\n  ${lines.join('\n  ')}`, {
    hint: undeclaredHint(bad[0], bad[0].kubeVersion!, minors, range, registry),
    details: bad.map((c) => ({ cluster: c.name, key: `clusters.${c.name}.kubeVersion`, kubeVersion: c.kubeVersion, file: registry })),
  });
}

/**
 * The full versions validate.ts checks: the one --kube-version names, else every validated minor
 * the chart admits (whose floor they must cover). Either way each cluster's declared minor must be
 * one of the minors the chart is validated for.
 */
export function planKubeVersions(options: { chartDir: string; clusters: ClusterConfig[]; registryFile?: string; requested?: string }): string[] {
  const range = chartKubeRange(options.chartDir);
  const requested = options.requested === undefined ? undefined : resolveKubeVersion(options.requested);
  // A run for one named version does not answer for the floor; the default run does.
  if (!requested) checkFloorCovered(range);
  const validated = admittedKubeVersions(range);
  checkClusterMinors(options.clusters, validated, range, options.registryFile);
  return requested ? [requested] : validated;
}
