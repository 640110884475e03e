/**
 * One error hierarchy for the whole tool. Every error carries a category (which decides the exit
 * code) and an optional hint telling the user how to fix it. Messages must never contain secrets.
 */
export type ErrorCategory = 'checkFailed' | 'input' | 'environment' | 'io' | 'cluster' | 'internal';

/**
 * Exit codes by category (0 = success). The exit code of a run is always the category of the error
 * that ended it: there is no other channel (a command that ran fine but found failures throws a
 * ChecksFailedError after printing its report).
 */
export const EXIT_CODES: Record<ErrorCategory | 'ok', number> = {
  ok: 0,
  checkFailed: 1,
  input: 2,
  environment: 3,
  io: 4,
  cluster: 5,
  internal: 70,
};

export interface ErrorOptions {
  hint?: string;
  details?: readonly string[];
  cause?: unknown;
  /** the command already printed everything about it (its report): the CLI adds nothing, only sets the exit code */
  reported?: boolean;
}

export class PiImageError extends Error {
  readonly category: ErrorCategory;
  readonly hint: string | undefined;
  /** Extra lines printed after the message (e.g. every validation problem). */
  readonly details: readonly string[];
  /** see ErrorOptions.reported */
  readonly reported: boolean;

  constructor(category: ErrorCategory, message: string, opts: ErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.category = category;
    this.hint = opts.hint;
    this.details = opts.details ?? [];
    this.reported = opts.reported ?? false;
  }

  get exitCode(): number {
    return EXIT_CODES[this.category];
  }
}

/** Bad inventory, flags, arguments or files the user gave us. */
export class InputError extends PiImageError {
  constructor(message: string, opts: ErrorOptions = {}) {
    super('input', message, opts);
  }
}

/** A missing tool, a missing key, not enough disk space, wrong platform. */
export class EnvironmentError extends PiImageError {
  constructor(message: string, opts: ErrorOptions = {}) {
    super('environment', message, opts);
  }
}

/** Reading or writing files, images or block devices failed. */
export class IoError extends PiImageError {
  constructor(message: string, opts: ErrorOptions = {}) {
    super('io', message, opts);
  }
}

/** The cluster (Kubernetes API, a node over SSH) refused, failed or is unreachable. */
export class ClusterError extends PiImageError {
  constructor(message: string, opts: ErrorOptions = {}) {
    super('cluster', message, opts);
  }
}

/** A bug in pi-image. Printed with a stack trace. */
export class InternalError extends PiImageError {
  constructor(message: string, opts: ErrorOptions = {}) {
    super('internal', message, opts);
  }
}

/**
 * A check-style command (verify, boot-test, diff, images verify, the rebuild drill) that ran fine
 * but found failures: exit code 1. Thrown after the report was printed (usually `reported: true`).
 */
export class ChecksFailedError extends PiImageError {
  constructor(message: string, opts: ErrorOptions = {}) {
    super('checkFailed', message, opts);
  }
}
