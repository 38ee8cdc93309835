/**
 * The benches scrape one exporter through a forwarder as fast as they can: the forwarder's per-target rate
 * limit lifted, for a checkout that has one (an A/B baseline from before `--target-max-scrapes-per-second`
 * takes no such flag).
 */
import * as fs from "node:fs";
import * as path from "node:path";

/** The `promproxy client` flags that lift the rate limit of the checkout at `root`, or none. */
export function unlimitedRate(root: string): string[] {
  const flags = fs.readFileSync(path.join(root, "src", "cli", "client-flags.ts"), "utf8");
  return flags.includes('"target-max-scrapes-per-second"') ? ["--target-max-scrapes-per-second", "1000000"] : [];
}
