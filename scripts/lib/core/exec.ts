// The one way this toolkit starts another program: argv arrays (never a shell string), secrets
// passed through env or stdin (never argv), output captured and redacted before anyone sees it.
// Built on node:child_process directly: importing execa alone cost every script ~250 ms of start-up.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
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
  /**
   * Start the child in its own process group, so that a Ctrl-C on the terminal (sent to the whole
   * foreground group) does not reach it: the caller decides when and how to stop it (via `signal`).
   */
  detached?: boolean;
  /**
   * After `signal` aborted or the timeout sent SIGTERM, SIGKILL the child if it still runs this long
   * after. A timed-out child is always killed in the end: 10 s after SIGTERM unless set.
   */
  killAfterMs?: number;
  /**
   * Linux: the child receives this signal when this process dies, even by SIGKILL (util-linux
   * `setpriv --pdeathsig`, when installed), so a detached child is never left running on its own.
   */
  parentDeathSignal?: NodeJS.Signals;
  /** Called with the child's pid once it is started. */
  onSpawn?: (pid: number) => void;
}

const SETPRIV = '/usr/bin/setpriv';
/** A timed-out child that ignores SIGTERM this long gets SIGKILL. */
const TIMEOUT_KILL_AFTER_MS = 10_000;
/** How long a stopped child's output is still read after it exited. */
const STOPPED_OUTPUT_WAIT_MS = 2_000;
let setprivPresent: boolean | undefined;

/** The argv that starts `cmd` so that it gets `sig` when this process dies (unchanged where that is not possible). */
export function withParentDeathSignal(cmd: string, args: readonly string[], sig: NodeJS.Signals | undefined): [string, string[]] {
  if (!sig || process.platform !== 'linux') return [cmd, [...args]];
  setprivPresent ??= fs.existsSync(SETPRIV);
  return setprivPresent ? [SETPRIV, ['--pdeathsig', sig.replace(/^SIG/, ''), '--', cmd, ...args]] : [cmd, [...args]];
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
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...options.env })) if (v !== undefined) env[k] = v;
  return new Promise<RunResult>((resolve) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let spawnError: Error | undefined;
    let settled = false;
    const [program, argv] = withParentDeathSignal(cmd, args, options.parentDeathSignal);
    const child = spawn(program, argv, { cwd: options.cwd, env, detached: options.detached, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (child.pid) options.onSpawn?.(child.pid);
    let killTimer: NodeJS.Timeout | undefined;
    const signalChild = (sig: NodeJS.Signals) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      try {
        // A detached child leads its own group: signal the group (its own children too).
        if (options.detached && child.pid) process.kill(-child.pid, sig);
        else child.kill(sig);
      } catch {
        child.kill(sig);
      }
    };
    const kill = () => {
      signalChild('SIGTERM');
      const grace = options.killAfterMs ?? (timedOut ? TIMEOUT_KILL_AFTER_MS : undefined);
      if (grace !== undefined && !killTimer) killTimer = setTimeout(() => signalChild('SIGKILL'), grace);
    };
    const timer = options.timeoutMs ? setTimeout(() => ((timedOut = true), kill()), options.timeoutMs) : undefined;
    const onAbort = () => kill();
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => {
      err.push(d);
      if (options.streamStderr) process.stderr.write(redact(d.toString()));
    });
    if (options.input !== undefined && child.stdin) {
      // A child that exits without reading its input must not crash us (EPIPE).
      child.stdin.on('error', () => {});
      child.stdin.end(options.input);
    }
    const finish = (exitCode: number) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', onAbort);
      const stderr = Buffer.concat(err).toString() + (spawnError ? `${spawnError.message}\n` : '');
      resolve({ command: formatArgv(cmd, args), argv: [cmd, ...args], exitCode, stdout: Buffer.concat(out).toString(), stderr, ms: performance.now() - started, timedOut });
    };
    child.on('error', (e) => {
      // The program could not be started (e.g. not found): reported like a failed run.
      spawnError = e;
      finish(1);
    });
    child.on('close', (code) => finish(typeof code === 'number' ? code : 1));
    // A child that was stopped may leave children of its own holding its output open ('close' would
    // then never come): once it has exited, whatever it printed by then is the result.
    child.on('exit', (code) => {
      if (!timedOut && !options.signal?.aborted) return;
      setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        finish(typeof code === 'number' ? code : 1);
      }, STOPPED_OUTPUT_WAIT_MS).unref();
    });
  });
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
