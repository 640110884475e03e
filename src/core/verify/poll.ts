/**
 * The verify loop under one deadline. Time, sleeping and the API come in as functions (the
 * command wires them to the real clock and src/adapters/kube.ts), so this stays deterministic and
 * unit-testable with a fake clock.
 */
import type { Clock } from '../clock.js';
import type { CheckResult } from './checks.js';
import { summarize } from './checks.js';

export interface PollDeps<S> extends Clock {
  /** one snapshot of the cluster; must give up after timeoutMs */
  snapshot(timeoutMs: number): Promise<S>;
  /** errors worth retrying under --wait (API not up yet); others (401, TLS) end the loop at once */
  isRetryable(error: unknown): boolean;
  evaluate(snapshot: S): CheckResult[];
  /** called after every round that did not end the loop */
  onRound?(round: { results?: CheckResult[]; error?: unknown; remainingMs: number }): void;
}

export interface PollOptions {
  timeoutMs: number;
  intervalMs: number;
  /** keep polling until everything passes (or the deadline); otherwise one round */
  wait: boolean;
}

export interface PollOutcome {
  results: CheckResult[];
  rounds: number;
  /** --wait gave up at the deadline with failures left */
  timedOut: boolean;
}

export async function pollChecks<S>(deps: PollDeps<S>, opts: PollOptions): Promise<PollOutcome> {
  const deadline = deps.now() + opts.timeoutMs;
  let rounds = 0;
  let last: CheckResult[] | undefined;
  let lastError: unknown;
  for (;;) {
    const remaining = deadline - deps.now();
    if (remaining <= 0 && rounds > 0) break;
    rounds += 1;
    try {
      const results = deps.evaluate(await deps.snapshot(Math.max(1, remaining)));
      last = results;
      lastError = undefined;
      if (!opts.wait || summarize(results).ok) return { results, rounds, timedOut: false };
      deps.onRound?.({ results, remainingMs: deadline - deps.now() });
    } catch (error) {
      // The deadline cut this round short after an earlier round had answered: the operator gets
      // that round's results (timed out), not an API error the deadline itself caused.
      if (opts.wait && last !== undefined && lastError === undefined && deps.now() >= deadline) break;
      if (!opts.wait || !deps.isRetryable(error)) throw error;
      lastError = error;
      deps.onRound?.({ error, remainingMs: deadline - deps.now() });
    }
    const left = deadline - deps.now();
    if (left <= 0) break;
    await deps.sleep(Math.min(opts.intervalMs, left));
  }
  if (lastError !== undefined || last === undefined) throw lastError;
  return { results: last, rounds, timedOut: true };
}
