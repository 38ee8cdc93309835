/** Formatting shared by the bench's tables. */
import type { CpuReading } from "./meters.ts";

/** "CPU ms (GC ms)" per scrape. */
export function perScrape(c: CpuReading | undefined, n: number): string {
  if (!c || n === 0) return "-";
  return `${(c.cpuMs / n).toFixed(2)} (${(c.gcMs / n).toFixed(2)})`;
}

export function ratio(a: number, b: number): string {
  const r = a / b;
  return Number.isFinite(r) ? r.toFixed(2) : "-";
}
