import type { Argv } from 'yargs';
import type { Io, OutputFormat } from '../app/io.js';

/** Options every command understands (declared once in src/cli.ts). */
export interface GlobalArgs {
  inventory: string;
  output: OutputFormat;
  verbose: boolean;
}

/**
 * The Io of the current run. src/cli.ts sets it before yargs parses, so command handlers can
 * print without reaching for process.stdout (tests run the CLI in-process).
 */
let current: Io | undefined;
let exitCode = 0;
export function setIo(io: Io): void {
  current = io;
  exitCode = 0;
}
/** A command that finished its work but found failures (e.g. verify) sets a non-zero exit code here. */
export function setExitCode(code: number): void {
  exitCode = code;
}
export function getExitCode(): number {
  return exitCode;
}
export function io(): Io {
  if (!current) throw new Error('Io not set: commands must be run through runCli()');
  return current;
}

export type Builder<T> = (y: Argv<GlobalArgs>) => Argv<T>;

/** A flag given twice arrives as an array: the last one wins, as with ssh and kubectl (yargs `coerce`). */
export function lastValue<T>(v: T | T[]): T {
  return Array.isArray(v) ? (v[v.length - 1] as T) : v;
}
export const lastString = (v: string | string[]): string => lastValue(v);
export const lastNumber = (v: number | number[]): number => lastValue(v);

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
