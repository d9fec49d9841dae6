// Where things are: the repository (found from this file, so scripts work from any cwd)
// and the per-user cache for tools and the local cluster (outside the repository).
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const CHART_DIR = path.join(REPO_ROOT, 'chart');
export const VALUES_DIR = path.join(REPO_ROOT, 'values');
export const SCHEMAS_DIR = path.join(REPO_ROOT, 'schemas');

/** Root of everything cached per user: CONDUIT_CACHE_DIR, else $XDG_CACHE_HOME/conduit-deploy, else ~/.cache/conduit-deploy. */
export function cacheRoot(): string {
  if (process.env.CONDUIT_CACHE_DIR) return path.resolve(process.env.CONDUIT_CACHE_DIR);
  const xdg = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(xdg, 'conduit-deploy');
}

export function repoPath(...parts: string[]): string {
  return path.join(REPO_ROOT, ...parts);
}

/** A path relative to the repository when it is inside it (for messages), else as given. */
export function displayPath(p: string): string {
  const rel = path.relative(REPO_ROOT, path.resolve(p));
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : p;
}

/** Whether the file exists and this process may execute it. */
export function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
