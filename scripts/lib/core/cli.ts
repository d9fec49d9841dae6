// The shared command-line frame of every script: flag parsing (strict: an unknown flag is a usage
// error), --help, --json, and the single place where errors become messages and exit codes.
import { parseArgs } from 'node:util';
import chalk from 'chalk';
import { EXIT_FAILED, EXIT_OK, isUserError, usageError } from './errors.ts';
import { redact } from './redact.ts';
import { Reporter } from './ui.ts';

export interface FlagSpec {
  type: 'string' | 'boolean';
  description: string;
  multiple?: boolean;
  short?: string;
  default?: string | boolean;
  /** Placeholder shown in --help, e.g. NAME. */
  arg?: string;
}

export interface CommandSpec<F extends Record<string, FlagSpec>> {
  name: string;
  summary: string;
  usage: string[];
  verbs?: Record<string, string>;
  flags: F;
  examples: string[];
  /** Extra text at the end of --help (environment variables, notes). */
  notes?: string[];
}

type FlagValue<S extends FlagSpec> = S['type'] extends 'boolean' ? boolean : S['multiple'] extends true ? string[] : string | undefined;

export type ParsedFlags<F extends Record<string, FlagSpec>> = { [K in keyof F]: FlagValue<F[K]> } & { json: boolean; help: boolean };

export interface Invocation<F extends Record<string, FlagSpec>> {
  flags: ParsedFlags<F>;
  positionals: string[];
  reporter: Reporter;
}

const COMMON: Record<string, FlagSpec> = {
  json: { type: 'boolean', description: 'Print one JSON document on stdout instead of the human summary.' },
  help: { type: 'boolean', short: 'h', description: 'Show this help.' },
};

export function helpText<F extends Record<string, FlagSpec>>(spec: CommandSpec<F>): string {
  const all = { ...spec.flags, ...COMMON } as Record<string, FlagSpec>;
  const lines = [`${chalk.bold(spec.name)}: ${spec.summary}`, '', 'Usage:', ...spec.usage.map((u) => `  ${u}`)];
  if (spec.verbs) {
    lines.push('', 'Verbs:');
    const w = Math.max(...Object.keys(spec.verbs).map((v) => v.length));
    for (const [v, d] of Object.entries(spec.verbs)) lines.push(`  ${v.padEnd(w)}  ${d}`);
  }
  lines.push('', 'Flags:');
  const label = (n: string, f: FlagSpec) => `--${n}${f.type === 'string' ? ' ' + (f.arg ?? 'VALUE') : ''}${f.short ? `, -${f.short}` : ''}`;
  const w = Math.max(...Object.entries(all).map(([n, f]) => label(n, f).length));
  for (const [n, f] of Object.entries(all)) {
    const extra = [f.multiple ? 'repeatable' : '', f.default !== undefined && f.default !== false ? `default: ${f.default}` : ''].filter(Boolean).join('; ');
    lines.push(`  ${label(n, f).padEnd(w)}  ${f.description}${extra ? ` (${extra})` : ''}`);
  }
  lines.push('', 'Examples:', ...spec.examples.map((e) => `  ${e}`));
  if (spec.notes?.length) lines.push('', ...spec.notes);
  lines.push('', 'Exit codes: 0 success, 1 failed or invalid input, 2 usage error or missing tool.');
  return lines.join('\n');
}

export function parseFlags<F extends Record<string, FlagSpec>>(spec: CommandSpec<F>, argv: string[]): { flags: ParsedFlags<F>; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string; default?: string | boolean }> = {};
  for (const [n, f] of Object.entries({ ...spec.flags, ...COMMON } as Record<string, FlagSpec>)) {
    options[n] = { type: f.type, ...(f.multiple ? { multiple: true } : {}), ...(f.short ? { short: f.short } : {}), ...(f.default !== undefined ? { default: f.default } : {}) };
  }
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    const flags = values as Record<string, unknown>;
    for (const [n, f] of Object.entries(spec.flags)) {
      if (f.type === 'boolean' && flags[n] === undefined) flags[n] = false;
      if (f.multiple && flags[n] === undefined) flags[n] = [];
    }
    flags.json = Boolean(flags.json);
    flags.help = Boolean(flags.help);
    return { flags: flags as ParsedFlags<F>, positionals };
  } catch (e) {
    throw usageError(`${spec.name}: ${(e as Error).message}`, `Run with --help to see the flags.`);
  }
}

/** The arguments a script was given (zx passes the script path first; node passes node + path). */
export function scriptArgs(): string[] {
  const argv = process.argv.slice(2);
  // `npx zx scripts/x.ts ...` leaves the script path in argv[2] on some zx versions.
  if (argv[0] && /\.(ts|mjs|js)$/.test(argv[0]) && argv[0].includes('scripts')) return argv.slice(1);
  return argv;
}

/**
 * Run a command: parse flags, print help, call `run`, and turn errors into a message and exit code.
 * `run` returns the exit code (0 by default).
 */
export async function runCommand<F extends Record<string, FlagSpec>>(spec: CommandSpec<F>, run: (inv: Invocation<F>) => Promise<number | void>, argv: string[] = scriptArgs()): Promise<number> {
  let json = argv.includes('--json');
  let code: number;
  try {
    const { flags, positionals } = parseFlags(spec, argv);
    json = flags.json;
    if (flags.help) {
      process.stdout.write(helpText(spec) + '\n');
      return finish(EXIT_OK);
    }
    const reporter = new Reporter({ json });
    code = (await run({ flags, positionals, reporter })) ?? EXIT_OK;
  } catch (e) {
    code = reportError(e, json);
  }
  return finish(code);
}

export function reportError(e: unknown, json: boolean): number {
  if (isUserError(e)) {
    if (json) process.stdout.write(redact(JSON.stringify({ ok: false, error: e.message, hint: e.hint, details: e.details }, null, 2)) + '\n');
    process.stderr.write(`${chalk.red('error:')} ${redact(e.message)}\n`);
    if (e.hint) process.stderr.write(`${chalk.dim('hint:')} ${redact(e.hint)}\n`);
    return e.exitCode;
  }
  const err = e as Error;
  if (json) process.stdout.write(JSON.stringify({ ok: false, error: redact(String(err?.message ?? err)), internal: true }) + '\n');
  process.stderr.write(`${chalk.red('internal error:')} ${redact(String(err?.stack ?? err))}\n`);
  process.stderr.write(`${chalk.dim('This is a bug in the toolkit, not in your input. Please report it with the output above.')}\n`);
  return EXIT_FAILED;
}

function finish(code: number): number {
  process.exitCode = code;
  // A command is over once its handler has settled: a connection or timer left open (an idle
  // keep-alive socket to the API server, a watch) must not keep the process alive. The timer is
  // unref'd: a process that ends by itself does not wait for it.
  setTimeout(() => process.exit(code), 2000).unref();
  return code;
}

/**
 * Ask a question on the terminal (prompt on stderr) and return the trimmed answer. Callers check
 * process.stdin.isTTY first and require --yes otherwise: without a terminal no answer ever comes.
 */
export async function askOnTerminal(question: string): Promise<string> {
  const { default: readline } = await import('node:readline/promises');
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(question)).trim();
  } catch (e) {
    // readline reads the terminal raw: Ctrl-C arrives as a key, not as a signal, and only aborts the
    // question. The command reacts to it as to any Ctrl-C: the SIGINT handlers it installed run now
    // (a deploy holding its lock brings itself to a consistent state), and without any it stops
    // with the signal's exit code, as the default action would. The answer is "".
    if ((e as { code?: string }).code !== 'ABORT_ERR') throw e;
    process.stderr.write('\n');
    if (process.listenerCount('SIGINT') === 0) process.exit(130);
    process.emit('SIGINT', 'SIGINT');
    return '';
  } finally {
    rl.close();
  }
}

/** A y/N question; false (never asked) when stdin is not a terminal. */
export async function confirmOnTerminal(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  return /^y(es)?$/i.test(await askOnTerminal(`${question} [y/N] `));
}
