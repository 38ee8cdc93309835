/**
 * "did you mean --listen?" for a mistyped flag, config key or environment
 * variable: the known word nearest by edit distance, if it is near enough to
 * be the one meant.
 *
 * @internal
 */

/** Edit distance (insertions, deletions, substitutions, and swaps of two neighbours count 1). */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        rows[0]![j] = j;
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}

/**
 * The known word closest to `word`: within a third of its length (at least 1,
 * at most 3 edits), or the one it is a prefix of or starts with; undefined
 * when none is close. Case and `-`/`_` are ignored.
 */
export function closest(word: string, known: Iterable<string>): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/_/g, "-");
  const w = norm(word);
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const n = norm(k);
    const d = n === w ? 0 : editDistance(w, n);
    if (d < bestD) [best, bestD] = [k, d];
  }
  if (best === undefined) return undefined;
  if (bestD <= Math.min(3, Math.max(1, Math.floor(w.length / 3)))) return best;
  const prefixed = [...known].filter((k) => norm(k).startsWith(w) || w.startsWith(norm(k)));
  return w.length >= 3 && prefixed.length === 1 ? prefixed[0] : undefined;
}

/** " (did you mean X?)" with X shown by `show`, or "". */
export function didYouMean(word: string, known: Iterable<string>, show: (k: string) => string = (k) => k): string {
  const k = closest(word, known);
  return k === undefined ? "" : ` (did you mean ${show(k)}?)`;
}
