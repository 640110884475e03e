/**
 * Quote a value for POSIX shells: the result is one single-quoted word that the shell never expands.
 * `it's` → `'it'\''s'`. Numbers and booleans are stringified first; null/undefined become `''`.
 */
export function shq(value: unknown): string {
  const s = value === undefined || value === null ? '' : String(value);
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
