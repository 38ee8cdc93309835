/** The embedded section's tables: latency rows and throughput. */
import type { EmbeddedResults } from "./embedded.ts";
import { perScrape, ratio, throughputTable } from "./format.ts";
import type { BenchOptions } from "./options.ts";
import { fmtBytes, fmtMs, table } from "./stats.ts";

export function printEmbedded(o: BenchOptions, results: EmbeddedResults): void {
  const { altDir, encoding, concurrency, fleetClients } = o;
if (results.latency.length > 0) {
  console.log(
    `Latency: sequential scrapes, keep-alive HTTP/1.1 (one connection per path), proxied/direct/floor${altDir ? "/alt" : ""} interleaved, ` +
      `Accept-Encoding: ${encoding}. "live" = prom-client renders each scrape; "cached" = one pre-rendered exposition ` +
      `(each scrape still encodes it to a Buffer), isolating the relay. Floor = driver -> TCP relay -> TCP relay -> direct endpoint.`,
  );
  const altHead = altDir ? ["alt p50", "alt p99", "alt direct p50", "alt/alt direct", "alt/proxy", "alt server RSS growth", "alt server CPU ms (GC)"] : [];
  console.log(
    table(
      ["row", "body", "n", "proxy p50", "proxy p99", "direct p50", "direct p99", "floor p50", "proxy/direct p50", "floor/direct", "proxy/floor", "server peak RSS growth", "server CPU ms (GC)", ...altHead],
      results.latency.map((r) => [
        r.row,
        fmtBytes(r.bytes),
        String(r.samples) + (r.errors ? ` (${r.errors} err)` : ""),
        fmtMs(r.p50.proxy) + " ms",
        fmtMs(r.p99.proxy) + " ms",
        fmtMs(r.p50.direct) + " ms",
        fmtMs(r.p99.direct) + " ms",
        fmtMs(r.p50.floor) + " ms",
        ratio(r.p50.proxy, r.p50.direct),
        ratio(r.p50.floor, r.p50.direct),
        ratio(r.p50.proxy, r.p50.floor),
        fmtBytes(r.serverRss.peak - r.serverRss.baseline),
        perScrape(r.cpu.server, r.cpu.proxied),
        ...(altDir
          ? [
              fmtMs(r.p50.alt) + " ms",
              fmtMs(r.p99.alt) + " ms",
              fmtMs(r.p50.altDirect) + " ms",
              ratio(r.p50.alt, r.p50.altDirect),
              ratio(r.p50.alt, r.p50.proxy),
              r.altServerRss ? fmtBytes(r.altServerRss.peak - r.altServerRss.baseline) : "-",
              perScrape(r.cpu.altServer, r.cpu.altProxied),
            ]
          : []),
      ]),
    ),
  );
  if (altDir) console.log(`alt = the same scrapes through the server and client of ${altDir}, interleaved with the others.`);
  console.log(`Server CPU ms (GC ms): the server's CPU time (all threads) and main-thread GC pauses per proxied scrape, warm-up included.`);
  console.log(`Server peak RSS growth: peak RSS during the row (${results.latency[0]?.serverRss.method === "VmHWM" ? "kernel VmHWM, reset at the row's start" : "sampled every 5 ms"}) minus RSS after GC at its start.`);
  console.log("Goals: proxy/direct p50 <= 1.5 at 10 KB, <= 1.1 at 1 MB and 20 MB; server RSS growth well under the body.");
  console.log("");
}
if (results.throughput.length > 0) {
  console.log(
    `Throughput at 10 KB: ${concurrency} concurrent scrapers (keep-alive), round-robin over ${fleetClients} connected clients ` +
      `in 2 app processes; CPU is process.cpuUsage per successful scrape.`,
  );
  const groups = ["server", "relays", "apps", "driver"];
  console.log(throughputTable(results.throughput, groups));
  if (results.idle) console.log(`Idle: server RSS ${fmtBytes(results.idle.rssPerClient)} per connected client (${results.idle.clients} clients, after GC).`);
}
}
