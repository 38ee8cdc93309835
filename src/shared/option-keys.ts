/**
 * Options objects are checked for keys nobody reads: a mistyped or renamed
 * option would otherwise be ignored without a word, and its default used.
 *
 * @internal
 */
import { didYouMean } from "./did-you-mean.ts";

/**
 * Throws a TypeError naming the first key of `given` that is not in `known`,
 * with the option it was renamed to (`renamed`) or the nearest known one.
 * Keys whose value is undefined count too: `{ discoverIntervalMs: undefined }`
 * is a mistake as well.
 */
export function checkOptionKeys(given: object, known: Iterable<string>, renamed: Record<string, string> = {}): void {
  const names = new Set(known);
  for (const k of Object.keys(given)) {
    if (names.has(k)) continue;
    const hint = Object.hasOwn(renamed, k) ? ` (renamed ${renamed[k]})` : didYouMean(k, names);
    throw new TypeError(`promproxy: unknown option ${JSON.stringify(k).slice(0, 80)}${hint}`);
  }
}
