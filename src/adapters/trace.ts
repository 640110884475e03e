/**
 * What `-v` shows: one line on stderr for every outside action a run takes — each program it runs
 * (with its arguments, exit code and time), each Kubernetes API request, each SSH command, each
 * download and each file it writes atomically — so an operator can see, and re-run by hand, what
 * pi-image did (as `kubectl -v=6` shows its requests and `sh -x` its commands).
 *
 * Each CLI run installs its own sink (`withTrace`, src/cli.ts), carried through everything the run
 * awaits, so two runs in one process never print each other's lines; outside a traced run `trace`
 * does nothing. The sink is the run's stderr, which masks every secret value the run has seen;
 * callers also pass their own `redact` strings (token paths, passwords).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { redact } from '../core/redact.js';

type Sink = (line: string) => void;

const currentRun = new AsyncLocalStorage<Sink>();

/** Runs `fn` (and everything it awaits) with `sink` receiving the trace lines. */
export function withTrace<T>(sink: Sink, fn: () => T): T {
  return currentRun.run(sink, fn);
}

/** True inside a traced run (`-v`). */
export function tracing(): boolean {
  return currentRun.getStore() !== undefined;
}

/** One trace line (without the newline); `secrets` are masked first. */
export function trace(line: string, secrets: readonly string[] = []): void {
  const sink = currentRun.getStore();
  if (sink === undefined) return;
  sink(`+ ${secrets.length ? redact(line, secrets) : line}\n`);
}

/** Seconds since `startMs` (performance.now), for a trace line: `0.42 s`. */
export function elapsed(startMs: number): string {
  return `${((performance.now() - startMs) / 1000).toFixed(2)} s`;
}

const MAX_ARG = 300;

/**
 * A program and its arguments as one shell line one can paste: arguments quoted where needed, a
 * long one shortened with …, an inline script (an argument with line breaks) shown as `<script: N lines>`.
 */
export function commandLine(cmd: string, args: readonly string[]): string {
  return [cmd, ...args]
    .map((a) => (a.includes('\n') ? `<script: ${a.trim().split('\n').length} lines>` : a.length > MAX_ARG ? `${a.slice(0, MAX_ARG)}…` : a))
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) || /^<script: \d+ lines>$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}
