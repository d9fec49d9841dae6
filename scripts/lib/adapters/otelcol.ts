// The OpenTelemetry Collector of the log pipeline (pinned in tools.ts, built from tools/go/otelcol):
// the shipped configuration files, the environment they read, and `otelcol validate` on them.
// The e2e test starts the same binary with the same files (collectorArgs + collectorEnv).
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../core/errors.ts';
import { run } from '../core/exec.ts';
import { displayPath, repoPath } from '../core/paths.ts';
import { tool } from './tools.ts';

export const LOGS_DIR = repoPath('logs');
/** The collector configuration, in the order the DaemonSet passes it (later files merge over earlier ones). */
export const COLLECTOR_CONFIGS = [path.join(LOGS_DIR, 'otelcol', 'collector.yaml'), path.join(LOGS_DIR, 'otelcol', 'conduit-processors.yaml')];

/** What collector.yaml reads from its environment (LOGS_*); unset keys keep the file's defaults. */
export interface CollectorSettings {
  /** OTLP/HTTP base URL; /v1/logs is appended. */
  otlpEndpoint: string;
  otlpEncoding?: 'proto' | 'json';
  /** Namespaces to read, a glob such as `conduit` or `{conduit,conduit-staging}`. */
  namespaces?: string;
  podsDir?: string;
  storageDir?: string;
  healthEndpoint?: string;
  metricsHost?: string;
  metricsPort?: number;
}

export function collectorEnv(s: CollectorSettings): Record<string, string> {
  const env: Record<string, string | undefined> = {
    LOGS_OTLP_ENDPOINT: s.otlpEndpoint,
    LOGS_OTLP_ENCODING: s.otlpEncoding,
    LOGS_NAMESPACES: s.namespaces,
    LOGS_PODS_DIR: s.podsDir,
    LOGS_STORAGE_DIR: s.storageDir,
    LOGS_HEALTH_ENDPOINT: s.healthEndpoint,
    LOGS_METRICS_HOST: s.metricsHost,
    LOGS_METRICS_PORT: s.metricsPort === undefined ? undefined : String(s.metricsPort),
  };
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/** `--config=file:...` for each file, in order. */
export function collectorArgs(files: readonly string[] = COLLECTOR_CONFIGS): string[] {
  return files.map((f) => `--config=file:${path.resolve(f)}`);
}

export interface ValidateResult {
  ok: boolean;
  files: string[];
  /** The collector's own message when the configuration is invalid. */
  problems: string[];
}

/**
 * `otelcol validate`: parses every file, resolves ${env:...}, builds every component and parses every
 * OTTL statement, without starting anything. The endpoint is a placeholder unless `settings` has one,
 * so the check needs no site configuration.
 */
export async function validateCollectorConfig(files: readonly string[] = COLLECTOR_CONFIGS, settings?: Partial<CollectorSettings>): Promise<ValidateResult> {
  for (const f of files) {
    if (!fs.existsSync(f)) throw new UserError(`collector configuration ${displayPath(f)} does not exist`, { hint: 'Pass existing files with --config (default: logs/otelcol/*.yaml).' });
  }
  const env = collectorEnv({ otlpEndpoint: 'http://127.0.0.1:4318', ...settings });
  const r = await run(await tool('otelcol'), ['validate', ...collectorArgs(files)], { env, timeoutMs: 60_000 });
  const problems =
    r.exitCode === 0
      ? []
      : [
          ...new Set(
            (r.stderr + r.stdout)
              .split('\n')
              .map((l) => l.replace(/^(Error: |\d{4}\/\d\d\/\d\d [\d:]+ )/, '').trim())
              .filter(Boolean),
          ),
        ];
  return { ok: r.exitCode === 0, files: files.map((f) => displayPath(f)), problems };
}
