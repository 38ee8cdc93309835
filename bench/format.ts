/** Formatting shared by the bench's tables. */
import type { CpuReading } from "./meters.ts";
import { fmtMs, table } from "./stats.ts";

/** "CPU ms (GC ms)" per scrape. */
export function perScrape(c: CpuReading | undefined, n: number): string {
  if (!c || n === 0) return "-";
  return `${(c.cpuMs / n).toFixed(2)} (${(c.gcMs / n).toFixed(2)})`;
}

export function ratio(a: number, b: number): string {
  const r = a / b;
  return Number.isFinite(r) ? r.toFixed(2) : "-";
}

/** One concurrent run of a path: what a throughput table shows of it. */
export interface ThroughputRow {
  label: string;
  seconds: number;
  scrapes: number;
  errors: number;
  p50: number;
  p99: number;
  /** CPU ms per scrape, by process group. */
  cpuPerScrape: Record<string, number>;
}

/** The table of concurrent runs: one line per path, one CPU column per process group ("-" where a group has no figure). */
export function throughputTable(rows: ThroughputRow[], groups: string[]): string {
  return table(
    ["path", "seconds", "scrapes/s", "errors", "p50", "p99", ...groups.map((g) => `${g} CPU ms/scrape`)],
    rows.map((t) => [
      t.label,
      t.seconds.toFixed(1),
      (t.scrapes / t.seconds).toFixed(0),
      String(t.errors),
      fmtMs(t.p50) + " ms",
      fmtMs(t.p99) + " ms",
      ...groups.map((g) => (t.cpuPerScrape[g] === undefined ? "-" : (t.cpuPerScrape[g] as number).toFixed(3))),
    ]),
  );
}
