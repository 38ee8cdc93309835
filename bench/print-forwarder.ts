/** The forwarder section's tables: latency rows (PushProx beside ours when measured) and the concurrent run. */
import type { ForwarderResults } from "./forwarder.ts";
import { ratio, throughputTable } from "./format.ts";
import { fmtBytes, fmtMs, table } from "./stats.ts";

export function printForwarder(f: ForwarderResults | undefined, encoding: string): void {
  if (!f) return;
  const hasPP = f.rows.some((r) => r.p50.pushprox !== undefined);
  console.log(
    `Forwarder: a static exporter (own process, fixed bodies) scraped sequentially, paths interleaved, keep-alive HTTP/1.1, ` +
      `Accept-Encoding: ${encoding}. proxy = driver -> server -> stream -> \`promproxy client\` process -> target; ` +
      `floor = driver -> TCP relay -> TCP relay -> target (each relay its own process)${hasPP ? "; pushprox = PushProx proxy + client, same target" : ""}. ` +
      `CPU from /proc/PID/stat (10 ms ticks): server and forwarder per proxied scrape, both relays together per floor scrape.`,
  );
  const ppHead = hasPP ? ["pushprox p50", "pushprox p99", "pushprox/floor", "pushprox CPU ms (proxy + client)", "pushprox client CPU ms"] : [];
  console.log(
    table(
      ["body", "n", "proxy p50", "proxy p99", "direct p50", "direct p99", "floor p50", "floor p99", "proxy/direct", "floor/direct", "proxy/floor", "server CPU ms", "forwarder CPU ms", "relays CPU ms", "server peak RSS growth", ...ppHead],
      f.rows.map((r) => [
        `${r.size} (${fmtBytes(r.bytes)})`,
        String(r.samples) + (r.errors ? ` (${r.errors} err)` : ""),
        fmtMs(r.p50.proxy ?? NaN) + " ms",
        fmtMs(r.p99.proxy ?? NaN) + " ms",
        fmtMs(r.p50.direct ?? NaN) + " ms",
        fmtMs(r.p99.direct ?? NaN) + " ms",
        fmtMs(r.p50.floor ?? NaN) + " ms",
        fmtMs(r.p99.floor ?? NaN) + " ms",
        ratio(r.p50.proxy ?? NaN, r.p50.direct ?? NaN),
        ratio(r.p50.floor ?? NaN, r.p50.direct ?? NaN),
        ratio(r.p50.proxy ?? NaN, r.p50.floor ?? NaN),
        (r.cpuPerScrape["server"] ?? NaN).toFixed(2),
        (r.cpuPerScrape["forwarder"] ?? NaN).toFixed(2),
        (r.cpuPerScrape["relays"] ?? NaN).toFixed(2),
        fmtBytes(r.serverRss.peak - r.serverRss.baseline),
        ...(hasPP
          ? [fmtMs(r.p50.pushprox ?? NaN) + " ms", fmtMs(r.p99.pushprox ?? NaN) + " ms", ratio(r.p50.pushprox ?? NaN, r.p50.floor ?? NaN), (r.cpuPerScrape["pushprox"] ?? NaN).toFixed(2), (r.cpuPerScrape["pushprox client"] ?? NaN).toFixed(2)]
          : []),
      ]),
    ),
  );
  if (f.throughput.length > 0) {
    const groups = ["server", "forwarder", "relays", "pushprox proxy", "pushprox client"].filter((g) => f.throughput.some((t) => t.cpuPerScrape[g] !== undefined));
    console.log(`Forwarder at 10 KB, ${f.throughput[0]?.concurrency} concurrent scrapers (keep-alive) through one forwarder; CPU ms per successful scrape (/proc/PID/stat).`);
    console.log(throughputTable(f.throughput, groups));
  }
  console.log("");
}
