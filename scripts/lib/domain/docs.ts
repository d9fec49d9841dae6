// Generated documentation files and their staleness checks. Each check is one function returning
// what it found, so scripts/docs.ts (and CI) can run them all and other generated files can join.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../core/errors.ts';
import { CHART_DIR, displayPath } from '../core/paths.ts';
import { tool } from '../adapters/tools.ts';
import { renderValuesSchema, VALUES_SCHEMA_FILES } from './values-schema.ts';
import { deployerFiles } from './permissions.ts';

export interface GeneratedFileCheck {
  /** Short name shown in reports, e.g. "chart README". */
  name: string;
  /** Repository-relative path of the generated file. */
  file: string;
  /** True when the file on disk differs from what the generator produces. */
  stale: boolean;
  /** True when the file was (re)written by this run. */
  written: boolean;
}

export const CHART_README = path.join(CHART_DIR, 'README.md');
export const CHART_README_TEMPLATE = 'README.md.gotmpl';

/** The README helm-docs renders from chart/README.md.gotmpl and the `# --` comments of values.yaml. */
export async function renderChartReadme(chartDir: string = CHART_DIR): Promise<string> {
  const helmDocs = await tool('helm-docs');
  // helm-docs is wrapped with execa, loaded only here so that other scripts do not pay its import.
  const { execa } = await import('execa');
  const r = await execa(helmDocs, ['--chart-search-root', chartDir, '--template-files', CHART_README_TEMPLATE, '--dry-run', '--log-level', 'error'], {
    cwd: chartDir,
    reject: false,
    stripFinalNewline: false,
    stdin: 'ignore',
  });
  if (r.exitCode !== 0) {
    throw new UserError(`helm-docs failed on ${displayPath(chartDir)}: ${r.stderr.trim()}`, { hint: `Fix the template ${CHART_README_TEMPLATE} or the values.yaml comments it reads.` });
  }
  // --dry-run prints the document followed by a newline of its own.
  return r.stdout.replace(/\n+$/, '\n');
}

/** Regenerate chart/README.md (check: only compare, never write). */
export async function chartReadme({ check }: { check: boolean }): Promise<GeneratedFileCheck> {
  const wanted = await renderChartReadme();
  const current = fs.existsSync(CHART_README) ? fs.readFileSync(CHART_README, 'utf8') : undefined;
  const stale = current !== wanted;
  if (stale && !check) fs.writeFileSync(CHART_README, wanted);
  return { name: 'chart README', file: displayPath(CHART_README), stale, written: stale && !check };
}

/** Regenerate schemas/values.schema.json and its identical copy chart/values.schema.json from values.yaml. */
export async function valuesSchema({ check }: { check: boolean }): Promise<GeneratedFileCheck[]> {
  const wanted = renderValuesSchema();
  return VALUES_SCHEMA_FILES.map((file) => {
    const stale = !fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== wanted;
    if (stale && !check) fs.writeFileSync(file, wanted);
    return { name: 'values schema', file: displayPath(file), stale, written: stale && !check };
  });
}

export interface GeneratedFileTask {
  title: string;
  run: (o: { check: boolean }) => Promise<GeneratedFileCheck | GeneratedFileCheck[]>;
}

/** Every generated-file check, in the order they run. Add new generated files here. */
export const GENERATED_FILE_CHECKS: readonly GeneratedFileTask[] = [
  { title: 'values schema (schemas/values.schema.json, chart/values.schema.json)', run: valuesSchema },
  { title: 'chart README (chart/README.md)', run: chartReadme },
  { title: 'deployer RBAC (rbac/conduit-deployer.yaml, the rule table of docs/rbac.md)', run: async (o) => deployerFiles(o) },
];
