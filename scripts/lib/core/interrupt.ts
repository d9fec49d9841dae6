// Ctrl-C (SIGINT) and SIGTERM while a deploy holds the lock: instead of dying mid-write (leaving a
// `pending-*` release and a held Lease), the first signal asks the running step to stop cleanly and
// the deploy brings the release back to a consistent state. A second signal says what is still
// being done and what would be left; a third abandons the cleanup, naming what is left.

export const EXIT_INTERRUPTED = 130;

export interface InterruptGuardOptions {
  /** Told to the operator on the first signal. */
  onFirst: (signal: NodeJS.Signals) => void;
  /** Told on a repeated signal: what is in progress and what an abandon would leave behind. */
  describeLeftovers: () => string;
  write?: (line: string) => void;
  exit?: (code: number) => void;
  /**
   * Signals this close to the first one count as the same interrupt: `npx` forwards the terminal's
   * SIGINT to the script, which has already received it from the terminal itself.
   */
  echoWindowMs?: number;
}

export class InterruptGuard {
  readonly controller = new AbortController();
  signalName?: NodeJS.Signals;
  private count = 0;
  private firstAt = 0;
  private readonly options: InterruptGuardOptions;
  private readonly handler = (sig: NodeJS.Signals) => this.receive(sig);

  constructor(options: InterruptGuardOptions) {
    this.options = options;
  }

  get interrupted(): boolean {
    return this.count > 0;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  install(): this {
    process.on('SIGINT', this.handler);
    process.on('SIGTERM', this.handler);
    return this;
  }

  dispose(): void {
    process.off('SIGINT', this.handler);
    process.off('SIGTERM', this.handler);
  }

  /** What a signal does (public for tests). */
  receive(sig: NodeJS.Signals, now = Date.now()): void {
    const write = this.options.write ?? ((l: string) => void process.stderr.write(`${l}\n`));
    if (this.count === 0) {
      this.count = 1;
      this.firstAt = now;
      this.signalName = sig;
      this.options.onFirst(sig);
      this.controller.abort(new Error(`interrupted by ${sig}`));
      return;
    }
    if (now - this.firstAt < (this.options.echoWindowMs ?? 1000)) return;
    this.count++;
    if (this.count === 2) {
      write(`${sig} again: the cleanup is still running. ${this.options.describeLeftovers()}`);
      write('Send it once more to abandon the cleanup now and leave that state behind.');
      return;
    }
    write(`${sig} a third time: abandoning the cleanup. Left behind: ${this.options.describeLeftovers()}`);
    (this.options.exit ?? ((c: number) => process.exit(c)))(EXIT_INTERRUPTED);
  }
}
