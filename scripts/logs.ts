#!/usr/bin/env -S npx zx
// logs.ts: static check of the log pipeline's collector configuration (logs/otelcol/), with the
// pinned OpenTelemetry Collector, before it is shipped or plugged into another collector.
import { runCommand } from './lib/core/cli.ts';
import { usageError } from './lib/core/errors.ts';
import { COLLECTOR_CONFIGS, validateCollectorConfig } from './lib/adapters/otelcol.ts';
import { OTELCOL } from './lib/adapters/tools.ts';

const spec = {
  name: 'logs.ts',
  summary: 'Check the log pipeline configuration (logs/otelcol/) with the pinned OpenTelemetry Collector.',
  usage: ['npx zx scripts/logs.ts check [--config FILE]... [--json]'],
  verbs: {
    check: `Run \`otelcol validate\` (collector ${OTELCOL}) on the configuration files: YAML, environment references, every component's settings and every OTTL statement.`,
  },
  flags: {
    config: {
      type: 'string' as const,
      multiple: true as const,
      arg: 'FILE',
      description: "Configuration files, merged in order like the collector's --config (default: logs/otelcol/collector.yaml and conduit-processors.yaml).",
    },
  },
  examples: ['npx zx scripts/logs.ts check', 'npx zx scripts/logs.ts check --config logs/otelcol/collector.yaml --config logs/otelcol/conduit-processors.yaml --config my-override.yaml'],
  notes: ['LOGS_OTLP_ENDPOINT is replaced by a placeholder for the check; the other LOGS_* variables keep their defaults.'],
};

await runCommand(spec, async ({ flags, positionals, reporter }) => {
  const [verb, ...rest] = positionals;
  if (verb !== 'check' || rest.length) throw usageError(verb ? `unknown arguments: ${positionals.join(' ')}` : 'missing verb', 'Usage: npx zx scripts/logs.ts check [--config FILE]...');
  const files = flags.config.length ? flags.config : COLLECTOR_CONFIGS;
  const result = await reporter.step(`otelcol ${OTELCOL} validate`, () => validateCollectorConfig(files));
  const human = result.ok
    ? `collector configuration valid: ${result.files.join(' + ')}`
    : `collector configuration invalid (${result.files.join(' + ')}):\n${result.problems.map((p) => `  ${p}`).join('\n')}`;
  reporter.result(human, { collector: OTELCOL, ...result });
  return result.ok ? 0 : 1;
});
