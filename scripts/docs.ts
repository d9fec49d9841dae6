#!/usr/bin/env -S npx zx
// docs.ts: regenerate the generated documentation (chart/README.md via helm-docs), or with --check
// report what is stale without changing anything.
import { runCommand } from './lib/core/cli.ts';
import { usageError } from './lib/core/errors.ts';
import { GENERATED_FILE_CHECKS, type GeneratedFileCheck } from './lib/domain/docs.ts';
import { table } from './lib/core/ui.ts';

const spec = {
  name: 'docs.ts',
  summary: 'Regenerate the generated files: the values schema (schemas/ and chart/) and chart/README.md, both from the comments of chart/values.yaml.',
  usage: ['npx zx scripts/docs.ts [--check | --dry-run] [--json]'],
  flags: {
    check: { type: 'boolean' as const, description: 'Change nothing; exit 1 when a generated file is stale (for CI).' },
    'dry-run': { type: 'boolean' as const, description: 'Change nothing; show which files would be regenerated (exit 0).' },
  },
  examples: ['npx zx scripts/docs.ts', 'npx zx scripts/docs.ts --check', 'npx zx scripts/docs.ts --dry-run --json'],
};

await runCommand(spec, async ({ flags, positionals, reporter }) => {
  if (positionals.length) throw usageError(`docs.ts takes no arguments (got ${positionals.join(' ')})`, 'Run with --help.');
  const readOnly = flags.check || flags['dry-run'];
  const results: GeneratedFileCheck[] = [];
  for (const task of GENERATED_FILE_CHECKS) {
    results.push(...[await reporter.step(`${readOnly ? 'checking' : 'regenerating'} ${task.title}`, () => task.run({ check: readOnly }))].flat());
  }
  const stale = results.filter((r) => r.stale);
  const state = (r: GeneratedFileCheck) => (r.written ? 'updated' : r.stale ? (flags['dry-run'] ? 'would update' : 'STALE') : 'current');
  const human = [
    table(
      ['file', 'what', 'state'],
      results.map((r) => [r.file, r.name, state(r)]),
    ),
    flags.check && stale.length ? `\n${stale.length} stale file(s): run npx zx scripts/docs.ts and commit the result.` : '',
  ].join('');
  reporter.result(human, { ok: !(flags.check && stale.length), check: flags.check, dryRun: flags['dry-run'], files: results });
  return flags.check && stale.length ? 1 : 0;
});
