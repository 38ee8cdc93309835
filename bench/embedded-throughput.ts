/**
 * Concurrent scrapes for a fixed time (the throughput rows of the embedded section): scrapes/s, latency
 * quantiles and CPU ms per successful scrape of each process group.
 */
import * as http from "node:http";
import type { Child } from "./ipc.ts";
import type { ThroughputRow } from "./format.ts";
import type { CpuReading } from "./meters.ts";
import type { BenchOptions } from "./options.ts";
import { scrape } from "./scrape.ts";
import { median, quantile } from "./stats.ts";

/** One path's concurrent run: scrapes/s, latency quantiles, CPU ms per scrape by process group. */
export type Throughput = ThroughputRow;

export async function throughputRun(
  o: BenchOptions,
  label: string,
  seconds: number,
  request: (i: number) => { port: number; path: string; host: string },
  meters: Record<string, Child[]>,
): Promise<Throughput> {
  const ag = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  // Warm up: every connection opened, every client scraped once.
  let next = 0;
  await Promise.all(Array.from({ length: o.concurrency }, async () => {
    for (let k = 0; k < 4; k++) {
      const r = request(next++);
      await scrape(ag, r.port, r.path, r.host, { encoding: o.encoding }).catch(() => {});
    }
  }));
  for (const cs of Object.values(meters)) for (const c of cs) await c.call("cpuBegin");
  const driverCpu = process.cpuUsage();
  const latencies: number[] = [];
  let errors = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await Promise.all(Array.from({ length: o.concurrency }, async () => {
    while (performance.now() < deadline) {
      const r = request(next++);
      try {
        const s = await scrape(ag, r.port, r.path, r.host, { encoding: o.encoding });
        if (s.status === 200) latencies.push(s.ms);
        else errors++;
      } catch {
        errors++;
      }
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  const cpuPerScrape: Record<string, number> = {};
  const n = Math.max(1, latencies.length);
  for (const [group, cs] of Object.entries(meters)) {
    let ms = 0;
    for (const c of cs) ms += (await c.call<CpuReading>("cpuEnd")).cpuMs;
    cpuPerScrape[group] = ms / n;
  }
  const d = process.cpuUsage(driverCpu);
  cpuPerScrape["driver"] = (d.user + d.system) / 1000 / n;
  ag.destroy();
  return { label, seconds: wall, scrapes: latencies.length, errors, p50: median(latencies), p99: quantile(latencies, 0.99), cpuPerScrape };
}

/** Slices of one kind of run as one: totals, CPU per scrape weighted by scrapes, the slowest quantiles. */
export function mergeThroughput(ts: Throughput[]): Throughput {
  if (ts.length === 1) return ts[0] as Throughput;
  const scrapes = ts.reduce((a, t) => a + t.scrapes, 0);
  const cpu: Record<string, number> = {};
  for (const t of ts) for (const [k, v] of Object.entries(t.cpuPerScrape)) cpu[k] = (cpu[k] ?? 0) + (v * t.scrapes) / Math.max(1, scrapes);
  return {
    label: (ts[0] as Throughput).label,
    seconds: ts.reduce((a, t) => a + t.seconds, 0),
    scrapes,
    errors: ts.reduce((a, t) => a + t.errors, 0),
    p50: median(ts.map((t) => t.p50)),
    p99: Math.max(...ts.map((t) => t.p99)),
    cpuPerScrape: cpu,
  };
}
