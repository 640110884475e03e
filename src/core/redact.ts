/**
 * Last line of defence: replace every occurrence of a secret value in text (error output, logs)
 * with `***`. Pure. The CLI runs error output through this with the values of the loaded secrets.
 */

export const REDACTED = '***';

/**
 * The forms in which a value may show up in text we print: as is, and JSON-escaped (a value with
 * a quote, backslash or control character inside JSON.stringify output looks different).
 */
function variants(value: string): string[] {
  const out = new Set<string>([value]);
  const json = JSON.stringify(value).slice(1, -1);
  out.add(json);
  return [...out];
}

/**
 * Returns `text` with every occurrence of every non-empty value in `secretValues` replaced by
 * `***`. Longer values are replaced first, so a value that contains another is hidden whole.
 * Empty strings and non-string entries are ignored (they would match everywhere).
 */
export function redact(text: string, secretValues: readonly (string | undefined | null)[]): string {
  const needles = new Set<string>();
  for (const v of secretValues) {
    if (typeof v !== 'string' || v.length === 0) continue;
    for (const form of variants(v)) if (form.length > 0) needles.add(form);
  }
  if (needles.size === 0) return text;
  // One pass with the longest alternatives first: a replacement never creates a new match.
  const sorted = [...needles].sort((a, b) => b.length - a.length);
  const pattern = new RegExp(sorted.map(escapeRegExp).join('|'), 'g');
  return text.replace(pattern, REDACTED);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
