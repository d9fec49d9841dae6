// One way for tests to run a toolkit script as an operator does (`npx zx scripts/<name>.ts`).
// The script runs in its own process group: when its time is up, the whole tree (npx, zx, the script
// and whatever it started) is stopped, so a hung script fails its test instead of hanging the run.
import path from 'node:path';
import { run, type RunOptions, type RunResult } from '../../scripts/lib/core/exec.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';

export const SCRIPT_TIMEOUT_MS = 10 * 60_000;

/** The path of scripts/<name>.ts. */
export const scriptPath = (name: string): string => path.join(REPO_ROOT, 'scripts', `${name}.ts`);

/** `npx zx scripts/<name>.ts ...args` from the repository root; ten minutes at most unless `timeoutMs` says otherwise. */
export function runScript(name: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return run('npx', ['zx', scriptPath(name), ...args], { cwd: REPO_ROOT, timeoutMs: SCRIPT_TIMEOUT_MS, detached: true, ...options });
}
