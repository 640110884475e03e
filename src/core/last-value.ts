/**
 * "Last value wins" for every option of every command: yargs collects a flag given twice into an
 * array; this middleware (installed once in src/cli.ts, before validation) keeps the last value of
 * every option not declared as an array. Pure; no command module is needed to apply it.
 */

/** yargs middleware: every option not declared as an array keeps only its last value. */
export function lastValueWins(argv: Record<string, unknown>, y: { getOptions(): { array: readonly string[] } }): void {
  const arrays = new Set(y.getOptions().array);
  for (const key of Object.keys(argv)) {
    if (key === '_' || key === '$0' || arrays.has(key)) continue;
    const v = argv[key];
    if (Array.isArray(v)) argv[key] = v[v.length - 1];
  }
}
