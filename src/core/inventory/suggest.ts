/** "Did you mean …?" for unknown names: the closest candidate by edit distance, if close enough. Pure. */

/** Levenshtein distance, case-insensitive. */
export function editDistance(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

/** The candidate closest to `word` (ties: the first), when within max(2, ⌊len/3⌋) edits. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const limit = Math.max(2, Math.floor(word.length / 3));
  let best: { k: string; d: number } | undefined;
  for (const k of candidates) {
    const d = editDistance(word, k);
    if (d <= limit && (best === undefined || d < best.d)) best = { k, d };
  }
  return best?.k;
}
