import type { Argv } from 'yargs';
import type { Io, OutputFormat } from '../app/io.js';
import type { Clock } from '../core/clock.js';

/**
 * What one run of the CLI hands to every command: where to print and the clock. Created by runCli
 * (src/cli.ts) and passed to yargs as its parse context, so it arrives in every handler as
 * `argv.ctx`: no module globals.
 */
export interface RunContext {
  io: Io;
  clock: Clock;
}

/** Options every command understands (declared once in src/cli.ts), and the run context. */
export interface GlobalArgs {
  inventory: string;
  output: OutputFormat;
  verbose: boolean;
  ctx: RunContext;
}

export type Builder<T> = (y: Argv<GlobalArgs>) => Argv<T>;

/**
 * yargs coercion for a whole-number option given as text: `--jobs abc` is a usage error that echoes
 * what was typed (a `type: 'number'` option would only see NaN). Repeated flags: the last one wins.
 */
export function wholeNumber(flag: string, min: number, max = Number.MAX_SAFE_INTEGER): (v: unknown) => number {
  return (v) => {
    const raw = Array.isArray(v) ? v[v.length - 1] : v;
    const text = String(raw).trim();
    if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `from ${min} to ${max}`;
      throw new Error(`${flag} ${JSON.stringify(String(raw))}: must be a whole number ${range}`);
    }
    return Number(text);
  };
}
