/**
 * One error hierarchy for the whole tool. Every error carries a category (which decides the exit
 * code) and an optional hint telling the user how to fix it. Messages must never contain secrets.
 */
export type ErrorCategory = 'input' | 'environment' | 'io' | 'cluster' | 'internal';

/** Exit codes by category (0 = success, 1 = a check failed, e.g. verify or boot-test). */
export const EXIT_CODES: Record<ErrorCategory | 'ok' | 'checkFailed', number> = {
  ok: 0,
  checkFailed: 1,
  input: 2,
  environment: 3,
  io: 4,
  cluster: 5,
  internal: 70,
};

export class PiImageError extends Error {
  readonly category: ErrorCategory;
  readonly hint: string | undefined;
  /** Extra lines printed after the message (e.g. every validation problem). */
  readonly details: readonly string[];

  constructor(
    category: ErrorCategory,
    message: string,
    opts: { hint?: string; details?: readonly string[]; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.category = category;
    this.hint = opts.hint;
    this.details = opts.details ?? [];
  }

  get exitCode(): number {
    return EXIT_CODES[this.category];
  }
}

/** Bad inventory, flags, arguments or files the user gave us. */
export class InputError extends PiImageError {
  constructor(message: string, opts: { hint?: string; details?: readonly string[]; cause?: unknown } = {}) {
    super('input', message, opts);
  }
}

/** A missing tool, a missing key, not enough disk space, wrong platform. */
export class EnvironmentError extends PiImageError {
  constructor(message: string, opts: { hint?: string; details?: readonly string[]; cause?: unknown } = {}) {
    super('environment', message, opts);
  }
}

/** Reading or writing files, images or block devices failed. */
export class IoError extends PiImageError {
  constructor(message: string, opts: { hint?: string; details?: readonly string[]; cause?: unknown } = {}) {
    super('io', message, opts);
  }
}

/** The cluster (Kubernetes API, a node over SSH) refused, failed or is unreachable. */
export class ClusterError extends PiImageError {
  constructor(message: string, opts: { hint?: string; details?: readonly string[]; cause?: unknown } = {}) {
    super('cluster', message, opts);
  }
}

/** A bug in pi-image. Printed with a stack trace. */
export class InternalError extends PiImageError {
  constructor(message: string, opts: { hint?: string; details?: readonly string[]; cause?: unknown } = {}) {
    super('internal', message, opts);
  }
}

/** A check-style command (verify, boot-test, validate --strict) that ran fine but found failures. */
export class ChecksFailedError extends PiImageError {
  override get exitCode(): number {
    return EXIT_CODES.checkFailed;
  }
  constructor(message: string, opts: { hint?: string; details?: readonly string[] } = {}) {
    super('cluster', message, opts);
  }
}
