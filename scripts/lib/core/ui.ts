// Human output goes to stderr (steps with timings, a spinner on waits, warnings); stdout carries
// the final summary, or one JSON document with --json. Everything printed passes through redact().
import chalk from 'chalk';
import { redact } from './redact.ts';

export interface StepRecord {
  title: string;
  status: 'ok' | 'failed' | 'skipped';
  ms: number;
  note?: string;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(ms / 60_000);
  return `${m}m${Math.round((ms % 60_000) / 1000)}s`;
}

export class Reporter {
  readonly json: boolean;
  readonly steps: StepRecord[] = [];
  private readonly tty: boolean;
  private readonly quiet: boolean;

  constructor(options: { json?: boolean; quiet?: boolean } = {}) {
    this.json = Boolean(options.json);
    this.quiet = Boolean(options.quiet);
    this.tty = Boolean(process.stderr.isTTY) && !process.env.CI;
  }

  /** A line for the human reader (stderr). */
  info(message: string): void {
    if (!this.quiet) process.stderr.write(redact(message) + '\n');
  }

  warn(message: string): void {
    process.stderr.write(chalk.yellow('warning: ') + redact(message) + '\n');
  }

  /** Run one named step: shows a spinner while it runs (on a terminal), then its result and time. */
  async step<T>(title: string, fn: (progress: (note: string) => void) => Promise<T>): Promise<T> {
    const started = performance.now();
    let note = '';
    let frame = 0;
    const render = () => {
      const elapsed = formatMs(performance.now() - started);
      process.stderr.write(`\r\x1b[2K${chalk.cyan(SPINNER[frame++ % SPINNER.length])} ${title} ${chalk.dim(elapsed)}${note ? chalk.dim(' ' + redact(note)) : ''}`);
    };
    const timer = this.tty && !this.quiet ? setInterval(render, 100) : undefined;
    if (!timer && !this.quiet) process.stderr.write(`${chalk.cyan('›')} ${title}\n`);
    const progress = (n: string) => {
      note = n;
      if (!timer && !this.quiet && n) process.stderr.write(chalk.dim(`  ${redact(n)}\n`));
    };
    try {
      const result = await fn(progress);
      const ms = performance.now() - started;
      this.steps.push({ title, status: 'ok', ms });
      this.finishLine(timer, chalk.green('✔'), title, ms);
      return result;
    } catch (e) {
      const ms = performance.now() - started;
      this.steps.push({ title, status: 'failed', ms });
      this.finishLine(timer, chalk.red('✖'), title, ms);
      throw e;
    }
  }

  skip(title: string, why: string): void {
    this.steps.push({ title, status: 'skipped', ms: 0, note: why });
    if (!this.quiet) process.stderr.write(`${chalk.dim('-')} ${title} ${chalk.dim('(' + why + ')')}\n`);
  }

  private finishLine(timer: NodeJS.Timeout | undefined, mark: string, title: string, ms: number): void {
    if (timer) {
      clearInterval(timer);
      process.stderr.write('\r\x1b[2K');
    }
    if (!this.quiet) process.stderr.write(`${mark} ${title} ${chalk.dim(formatMs(ms))}\n`);
  }

  /** The final result: a readable summary on stdout, or the JSON document with --json. */
  result(human: string, data: unknown): void {
    if (this.json) process.stdout.write(redact(JSON.stringify(data, null, 2)) + '\n');
    else process.stdout.write(redact(human) + (human.endsWith('\n') ? '' : '\n'));
  }
}

/** Render rows as an aligned text table (no colours inside cells, so widths stay right). */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (c ?? '').padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}
