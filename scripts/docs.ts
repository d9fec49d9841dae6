#!/usr/bin/env -S npx zx
// docs.ts: regenerate the generated documentation (chart/README.md via helm-docs), or with --check
// report what is stale without changing anything.
import { runCommand } from './lib/cli.ts';
import { usageError } from './lib/errors.ts';
import { GENERATED_FILE_CHECKS, type GeneratedFileCheck } from './lib/docs.ts';
import { table } from './lib/ui.ts';

const spec = {
  name: 'docs.ts',
  summary: 'Regenerate the generated files: the values schema (schemas/ and chart/) and chart/README.md, both from the comments of chart/values.yaml.',
  usage: ['npx zx scripts/docs.ts [--check] [--json]'],
  flags: {
    check: { type: 'boolean' as const, description: 'Change nothing; exit 1 when a generated file is stale.' },
  },
  examples: ['npx zx scripts/docs.ts', 'npx zx scripts/docs.ts --check'],
};

await runCommand(spec, async ({ flags, positionals, reporter }) => {
  if (positionals.length) throw usageError(`docs.ts takes no arguments (got ${positionals.join(' ')})`, 'Run with --help.');
  const results: GeneratedFileCheck[] = [];
  for (const check of GENERATED_FILE_CHECKS) {
    results.push(...[await reporter.step(flags.check ? `checking ${check.name}` : `regenerating ${check.name}`, () => check({ check: flags.check }))].flat());
  }
  const stale = results.filter((r) => r.stale);
  const state = (r: GeneratedFileCheck) => (r.written ? 'updated' : r.stale ? 'STALE' : 'current');
  const human = [
    table(['file', 'what', 'state'], results.map((r) => [r.file, r.name, state(r)])),
    flags.check && stale.length ? `\n${stale.length} stale file(s): run npx zx scripts/docs.ts and commit the result.` : '',
  ].join('');
  reporter.result(human, { ok: !(flags.check && stale.length), check: flags.check, files: results });
  return flags.check && stale.length ? 1 : 0;
});
