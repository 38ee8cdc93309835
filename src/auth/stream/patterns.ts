/**
 * Name patterns: which client names an identity may hold.
 *
 * A pattern is a client name (a DNS host name, compared case-insensitively) in
 * which `*` stands for any run of characters within one dot-separated label
 * (`app-*` holds `app-1` and `app-web`, not `app-1.eu`), and `**` for any run
 * of characters, dots included (`**` alone holds every name).
 */

const patternChars = /^[a-z0-9.*-]+$/;

/** Returns the canonical (lower-case) pattern, or throws a TypeError naming what is wrong with it. */
export function checkPattern(pattern: string): string {
  const p = typeof pattern === "string" ? pattern.trim().toLowerCase() : "";
  if (p.length === 0 || p.length > 253 || !patternChars.test(p) || /\*{3,}/.test(p)) {
    throw new TypeError(
      `promproxy: bad name pattern ${JSON.stringify(String(pattern).slice(0, 64))}: use a client name, "*" for any characters within a label or "**" for any characters`,
    );
  }
  return p;
}

/**
 * Compiles patterns into one matcher. The matcher takes a canonical (lower
 * case) client name; an empty list matches nothing.
 */
export function compilePatterns(patterns: readonly string[]): (name: string) => boolean {
  const exact = new Set<string>();
  const globs: RegExp[] = [];
  for (const raw of patterns) {
    const p = checkPattern(raw);
    if (!p.includes("*")) {
      exact.add(p);
      continue;
    }
    const source = p
      .split(/(\*\*|\*)/)
      .map((part) => (part === "**" ? ".*" : part === "*" ? "[^.]*" : part.replace(/[.-]/g, "\\$&")))
      .join("");
    globs.push(new RegExp(`^${source}$`));
  }
  return (name) => {
    const n = name.toLowerCase();
    return exact.has(n) || globs.some((g) => g.test(n));
  };
}

/** Normalises "a,b" / ["a", "b"] into a list of checked patterns. @internal */
export function patternList(value: string | readonly string[]): string[] {
  const list = typeof value === "string" ? value.split(",") : [...value];
  return list.map((s) => s.trim()).filter((s) => s !== "").map(checkPattern);
}
