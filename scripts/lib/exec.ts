// The one way this toolkit starts another program: argv arrays (never a shell string), secrets
// passed through env or stdin (never argv), output captured and redacted before anyone sees it.
import { execa } from 'execa';
import { redact } from './redact.ts';

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** Written to the child's stdin (e.g. a values document containing secrets). */
  input?: string;
  timeoutMs?: number;
  /** Stream the child's stderr to ours (redacted) while it runs. */
  streamStderr?: boolean;
  signal?: AbortSignal;
}

export interface RunResult {
  command: string;
  argv: string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

/** How a command is shown in plans, dry runs and errors (redacted). */
export function formatArgv(cmd: string, args: readonly string[]): string {
  const q = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return redact([cmd, ...args].map(q).join(' '));
}

export async function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const started = performance.now();
  const child = execa(cmd, [...args], {
    cwd: options.cwd,
    env: options.env,
    extendEnv: true,
    input: options.input,
    stdin: options.input === undefined ? 'ignore' : undefined,
    timeout: options.timeoutMs,
    reject: false,
    stripFinalNewline: false,
    cancelSignal: options.signal,
    maxBuffer: 512 * 1024 * 1024,
  });
  if (options.streamStderr) child.stderr?.on('data', (d: Buffer) => process.stderr.write(redact(d.toString())));
  const r = await child;
  return {
    command: formatArgv(cmd, args),
    argv: [cmd, ...args],
    exitCode: typeof r.exitCode === 'number' ? r.exitCode : r.failed ? 1 : 0,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    ms: performance.now() - started,
    timedOut: Boolean(r.timedOut),
  };
}

/** A non-zero exit as an Error whose message holds the (redacted) command and its stderr tail. */
export class CommandFailed extends Error {
  readonly result: RunResult;
  constructor(result: RunResult) {
    const tail = redact((result.stderr || result.stdout).trim().split('\n').slice(-15).join('\n'));
    super(`${result.command} exited ${result.exitCode}${result.timedOut ? ' (timed out)' : ''}${tail ? `:\n${tail}` : ''}`);
    this.result = result;
  }
}

export async function runChecked(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, options);
  if (r.exitCode !== 0) throw new CommandFailed(r);
  return r;
}

/** Run async tasks with at most `limit` at once, keeping result order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  });
  await Promise.all(workers);
  return results;
}
