/**
 * The latency rows of the embedded section: one registry size, scraped sequentially through the server to an
 * embedded client (proxy), directly from the app (direct) and through two TCP relays (floor), interleaved, with
 * the server's RSS growth and the CPU of every process per proxied scrape.
 */
import type * as http from "node:http";
import type { Child } from "./ipc.ts";
import type { CpuReading, RssReading } from "./meters.ts";
import type { BenchOptions } from "./options.ts";
import type { SizeName } from "./registries.ts";
import { agent, scrape as scrapeOnce, type ScrapeResult } from "./scrape.ts";
import { quantile } from "./stats.ts";

/** Samples per path (warm-up, measured), full / quick. */
export const plan: Record<SizeName, { live: [number, number]; cached: [number, number]; quick: [number, number] }> = {
  "10k": { live: [50, 500], cached: [50, 500], quick: [20, 100] },
  "1m": { live: [5, 60], cached: [5, 60], quick: [3, 15] },
  "20m": { live: [2, 12], cached: [2, 20], quick: [1, 5] },
  "100m": { live: [0, 0], cached: [1, 6], quick: [1, 2] },
};

export type PathKind = "proxy" | "alt" | "direct" | "altDirect" | "floor";
const allKinds: PathKind[] = ["proxy", "alt", "direct", "altDirect", "floor"];

/** One GET with this run's Accept-Encoding, timed from request to the last body byte. */
function scrape(o: BenchOptions, ag: http.Agent, port: number, requestPath: string, host: string, hash = false): Promise<ScrapeResult> {
  return scrapeOnce(ag, port, requestPath, host, { hash, encoding: o.encoding });
}

export interface Endpoints {
  serverPort: number;
  altServerPort?: number;
  altDirectPort?: number;
  directPort: number;
  floorPort: number;
}

function target(kind: PathKind, e: Endpoints, name: string): [port: number, path: string] {
  switch (kind) {
    case "proxy":
      return [e.serverPort, `http://${name}:80/metrics`];
    case "alt":
      return [e.altServerPort ?? 0, `http://${name}:80/metrics`];
    case "direct":
      return [e.directPort, "/metrics"];
    case "altDirect":
      return [e.altDirectPort ?? 0, "/metrics"];
    case "floor":
      return [e.floorPort, "/metrics"];
  }
}

export interface LatencyRow {
  row: string;
  size: SizeName;
  cached: boolean;
  bytes: number;
  samples: number;
  p50: Record<PathKind, number>;
  p99: Record<PathKind, number>;
  serverRss: RssReading;
  altServerRss?: RssReading;
  /** CPU and GC of the server (only proxied scrapes reach it) and of the app (every path), per proxied scrape. */
  cpu: { server: CpuReading; app: CpuReading; altServer?: CpuReading; altApp?: CpuReading; proxied: number; altProxied: number };
  errors: number;
}

export interface RowProcs {
  server: Child;
  app: Child;
  altServer?: Child;
  altApp?: Child;
}

export async function latencyRow(o: BenchOptions, e: Endpoints, procs: RowProcs, size: SizeName, isCached: boolean): Promise<LatencyRow> {
  const { server, altServer } = procs;
  const name = isCached ? `app-${size}-cached` : `app-${size}`;
  const [warm, n0] = o.quick ? plan[size].quick : isCached ? plan[size].cached : plan[size].live;
  const n = o.samplesOverride ?? n0;
  const kinds = allKinds.filter((k) => o.paths.has(k) || k === "direct");
  const agents = { proxy: agent(), alt: agent(), direct: agent(), altDirect: agent(), floor: agent() };
  const host = `${name}:80`;
  const samples: Record<PathKind, number[]> = { proxy: [], alt: [], direct: [], altDirect: [], floor: [] };
  let errors = 0;

  await server.call("rssBegin");
  await altServer?.call("rssBegin");
  for (const c of Object.values(procs)) await c?.call("cpuBegin");
  let proxied = 0;
  let altProxied = 0;
  // The same bytes on every path (the gauges do not change between scrapes).
  const hashes = new Map<PathKind, ScrapeResult>();
  for (const k of kinds) hashes.set(k, await scrape(o, agents[k], ...target(k, e, name), host, true));
  const ref = hashes.get("direct") as ScrapeResult;
  for (const [k, r] of hashes) {
    if (r.status !== 200 || r.hash !== ref.hash) {
      console.error(`bench: ${name}: ${k} answered ${r.status} with ${r.bytes} bytes, differing from the direct scrape (${ref.bytes} bytes)`);
      errors++;
    }
  }
  const measured = kinds.filter((k) => o.paths.has(k));
  for (let i = 0; i < warm + n; i++) {
    for (let j = 0; j < measured.length; j++) {
      const k = measured[(i + j) % measured.length] as PathKind;
      try {
        if (k === "proxy") proxied++;
        if (k === "alt") altProxied++;
        const r = await scrape(o, agents[k], ...target(k, e, name), host);
        if (r.status !== 200) errors++;
        else if (i >= warm) samples[k].push(r.ms);
      } catch (err) {
        errors++;
        console.error(`bench: ${name} ${k}: ${(err as Error).message}`);
      }
    }
  }
  const cpu = {
    server: await server.call<CpuReading>("cpuEnd"),
    app: await procs.app.call<CpuReading>("cpuEnd"),
    altServer: await altServer?.call<CpuReading>("cpuEnd"),
    altApp: await procs.altApp?.call<CpuReading>("cpuEnd"),
    proxied,
    altProxied,
  };
  const serverRss = await server.call<RssReading>("rssEnd");
  const altServerRss = await altServer?.call<RssReading>("rssEnd");
  for (const a of Object.values(agents)) a.destroy();
  const p = (q: number) => Object.fromEntries(allKinds.map((k) => [k, quantile(samples[k], q)])) as Record<PathKind, number>;
  return { row: isCached ? `${size} cached` : `${size} live`, size, cached: isCached, bytes: ref.bytes, samples: n, p50: p(0.5), p99: p(0.99), serverRss, altServerRss, cpu, errors };
}

