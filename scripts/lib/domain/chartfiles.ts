// The chart can only read files inside chart/, so it ships copies of the monitoring sources:
//   alerts/*.rules.yaml -> chart/files/alerts/   dashboards/*.json -> chart/files/dashboards/
// The copies are byte-identical; stale copies (a source removed or renamed) are deleted; any other
// file in those directories is left alone. With `check: true` nothing is changed and the result
// lists what a sync would change.
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../core/paths.ts';

export interface ChartFileSet {
  /** Source directory and the chart directory, relative to the repository root. */
  from: string;
  to: string;
  /** Which files of the source directory are shipped. */
  match: (name: string) => boolean;
}

export const CHART_FILE_SETS: readonly ChartFileSet[] = [
  { from: 'alerts', to: 'chart/files/alerts', match: (n) => n.endsWith('.rules.yaml') },
  { from: 'dashboards', to: 'chart/files/dashboards', match: (n) => n.endsWith('.json') },
];

export interface SyncOptions {
  check: boolean;
  /** Repository root (tests use a temporary copy). */
  root?: string;
}

export interface SyncResult {
  /** Chart paths (repository-relative) that were, or in check mode would be, written or deleted. */
  stale: string[];
  /** The part of `stale` that is (or would be) deleted because its source is gone. */
  removed: string[];
  /** Chart paths that already match their source. */
  current: string[];
}

function list(dir: string, match: (n: string) => boolean): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && match(e.name))
    .map((e) => e.name)
    .sort();
}

export function syncChartFiles({ check, root = REPO_ROOT }: SyncOptions): SyncResult {
  const result: SyncResult = { stale: [], removed: [], current: [] };
  for (const set of CHART_FILE_SETS) {
    const src = path.join(root, set.from);
    const dst = path.join(root, set.to);
    const sources = list(src, set.match);
    for (const name of sources) {
      const want = fs.readFileSync(path.join(src, name));
      const target = path.join(dst, name);
      const rel = `${set.to}/${name}`;
      if (fs.existsSync(target) && fs.readFileSync(target).equals(want)) {
        result.current.push(rel);
        continue;
      }
      result.stale.push(rel);
      if (!check) {
        fs.mkdirSync(dst, { recursive: true });
        fs.writeFileSync(target + '.tmp', want);
        fs.renameSync(target + '.tmp', target);
      }
    }
    for (const name of list(dst, set.match)) {
      if (sources.includes(name)) continue;
      result.stale.push(`${set.to}/${name}`);
      result.removed.push(`${set.to}/${name}`);
      if (!check) fs.rmSync(path.join(dst, name));
    }
  }
  return result;
}
