// Chart.yaml's kubeVersion constraint, read as Helm reads it (Masterminds syntax), and the oldest
// Kubernetes minor it admits. Kept apart from validate-kube.ts so the validation pipeline can ask
// whether a render depends on the version without loading the schema tooling.
import fs from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { parse as parseYaml } from 'yaml';
import { toolError, UserError } from '../core/errors.ts';
import { displayPath } from '../core/paths.ts';

/** A Masterminds constraint (Helm's syntax: `,` joins, `||` alternates) as a node-semver range; undefined when unreadable. */
function semverRange(constraint: string): string | undefined {
  // Masterminds separates AND-ed parts with commas (or spaces) and allows `>= 1.2` with a space.
  const range = constraint.replace(/\s*,\s*/g, ' ').replace(/(>=|<=|!=|>|<|=|~|\^)\s+/g, '$1');
  return semver.validRange(range) === null ? undefined : range;
}

/**
 * Whether a Kubernetes version satisfies Chart.yaml's kubeVersion constraint, evaluated with the
 * `semver` package; undefined when the constraint cannot be read.
 */
export function satisfiesConstraint(version: string, constraint: string): boolean | undefined {
  const v = semver.coerce(version);
  const range = semverRange(constraint);
  if (!v || range === undefined) return undefined;
  return semver.satisfies(v, range, { includePrerelease: true });
}

/** The oldest Kubernetes minor a constraint admits (`>=1.30.0-0` -> `1.30`); undefined when it has none or cannot be read. */
export function floorMinorOf(constraint: string): string | undefined {
  const range = semverRange(constraint);
  const min = range === undefined ? null : semver.minVersion(range);
  // `>=0.0.0` (or `*`) sets no floor.
  return min && (min.major > 0 || min.minor > 0) ? `${min.major}.${min.minor}` : undefined;
}

/** Chart.yaml's kubeVersion constraint and the oldest minor it admits (null when the chart sets none). */
export interface ChartKubeRange {
  file: string;
  constraint: string | null;
  floorMinor: string | null;
}

export function chartKubeRange(chartDir: string): ChartKubeRange {
  const file = path.join(chartDir, 'Chart.yaml');
  if (!fs.existsSync(file)) throw toolError(`no chart at ${displayPath(chartDir)} (Chart.yaml missing)`, 'Run from a checkout of the repository, or pass --chart DIR.');
  let chart: { kubeVersion?: unknown } | null;
  try {
    chart = parseYaml(fs.readFileSync(file, 'utf8')) as typeof chart;
  } catch (e) {
    throw new UserError(`${displayPath(file)} is not valid YAML: ${(e as Error).message.split('\n')[0]}`, { hint: 'Fix the chart metadata (helm lint reads it too).' });
  }
  const constraint = chart?.kubeVersion === undefined || chart.kubeVersion === null ? null : String(chart.kubeVersion);
  return { file, constraint, floorMinor: constraint === null ? null : (floorMinorOf(constraint) ?? null) };
}

/** Compare MAJOR.MINOR strings numerically. */
export function compareMinors(a: string, b: string): number {
  const [am, an] = a.split('.').map(Number);
  const [bm, bn] = b.split('.').map(Number);
  return am - bm || an - bn;
}
