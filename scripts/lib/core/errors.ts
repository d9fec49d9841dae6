// One error type for everything a user can fix; anything else is an internal error (a bug).
// Exit codes are part of the command-line contract: 0 success, 1 failed/invalid input, 2 usage or tool.

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export interface UserErrorOptions {
  /** What to do about it, one sentence. */
  hint?: string;
  exitCode?: number;
  /** Structured details for --json output and tests (never secrets). */
  details?: unknown;
}

export class UserError extends Error {
  readonly hint?: string;
  readonly exitCode: number;
  readonly details?: unknown;
  constructor(message: string, options: UserErrorOptions = {}) {
    super(message);
    this.name = 'UserError';
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? EXIT_FAILED;
    this.details = options.details;
  }
}

/** Wrong flags or arguments: exit 2. */
export function usageError(message: string, hint?: string): UserError {
  return new UserError(message, { hint, exitCode: EXIT_USAGE });
}

/** A required external program is missing or cannot be installed: exit 2. */
export function toolError(message: string, hint?: string): UserError {
  return new UserError(message, { hint, exitCode: EXIT_USAGE });
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}
