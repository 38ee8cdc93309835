/**
 * The command line of a bench script: `--name=value` and bare `--name` (value "") arguments, by name.
 *
 *   const opt = benchFlags();
 *   const altDir = altDirOrExit(opt, "usage: node bench/x.ts --alt=DIR [--rounds=6]");
 */
export function benchFlags(argv: readonly string[] = process.argv.slice(2)): Map<string, string> {
  return new Map(argv.map((a) => {
    const m = /^--([^=]+)=?(.*)$/.exec(a);
    return [m?.[1] ?? a, m?.[2] ?? ""] as const;
  }));
}

/** The `--alt=DIR` of an A/B script (the other tree), or its usage on stderr and exit code 2. */
export function altDirOrExit(opt: Map<string, string>, usage: string): string {
  const dir = opt.get("alt");
  if (dir) return dir;
  console.error(usage);
  process.exit(2);
}
