// promtool (Prometheus 3.x, pinned in tools.ts): `check rules` and `test rules` on our rule files.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { run, type RunResult } from '../core/exec.ts';
import { tool } from './tools.ts';

export interface PromtoolResult {
  ok: boolean;
  output: string;
  result: RunResult;
}

async function promtool(args: string[], cwd?: string): Promise<PromtoolResult> {
  const bin = await tool('promtool');
  const result = await run(bin, args, { cwd, timeoutMs: 5 * 60_000 });
  return { ok: result.exitCode === 0, output: (result.stdout + result.stderr).trim(), result };
}

/** `promtool check rules --lint=all --lint-fatal FILE...` (syntax, PromQL types, templates, duplicate rules). */
export function checkRules(files: string[]): Promise<PromtoolResult> {
  return promtool(['check', 'rules', '--lint=all', '--lint-fatal', ...files]);
}

/** `promtool test rules FILE...`, run from the tests' directory so rule_files resolve. */
export function testRules(files: string[]): Promise<PromtoolResult> {
  const dir = path.dirname(files[0] ?? '.');
  return promtool(['test', 'rules', ...files.map((f) => path.relative(dir, f))], dir);
}

/** `promtool check config FILE`: a Prometheus configuration (scrape configs, files it names) as Prometheus would load it. */
export function checkConfig(file: string): Promise<PromtoolResult> {
  return promtool(['check', 'config', '--lint=none', file]);
}

export async function promtoolVersion(): Promise<string> {
  const r = await promtool(['--version']);
  return /version (\S+)/.exec(r.output)?.[1] ?? 'unknown';
}

/**
 * Check arbitrary PromQL expressions (e.g. dashboard queries, Grafana variables substituted) with
 * Prometheus' own parser and type checker: they become recording rules of a temporary rule file
 * that `promtool check rules` reads. Returns promtool's verdict; the output names failing rules as
 * `query_<index>`.
 */
export async function checkExpressions(exprs: string[]): Promise<PromtoolResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-promql-'));
  const file = path.join(dir, 'queries.rules.yaml');
  try {
    const doc = { groups: [{ name: 'queries', rules: exprs.map((expr, i) => ({ record: `query_${i}`, expr })) }] };
    fs.writeFileSync(file, YAML.stringify(doc));
    return await checkRules([file]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
