/** One verdict line per goal, each computed from figures of this run ("n/a" when the section did not run). */
import type { EmbeddedResults } from "./embedded.ts";
import type { ForwarderResults } from "./forwarder.ts";
import { ratio } from "./format.ts";
import type { IdleResult } from "./idle.ts";
import type { StormResult } from "./storm.ts";
import { fmtBytes } from "./stats.ts";

export function printVerdicts(r: EmbeddedResults & {
  forwarder?: ForwarderResults;
  idleClients?: IdleResult[];
  storm?: StormResult;
}) {
  const lines: string[] = [];
  const verdict = (goal: string, ok: boolean | undefined, detail: string) =>
    lines.push(`${ok === undefined ? "n/a " : ok ? "MET " : "MISS"}  ${goal}: ${detail}`);
  const fw = r.forwarder;
  const limits: Record<string, number> = { "10k": 2.3, "1m": 1.8, "20m": 1.8 };
  const rows = fw?.rows ?? [];
  const fwRatios = rows.map((x) => [x.size, (x.p50.proxy ?? NaN) / (x.p50.floor ?? NaN), (x.p50.pushprox ?? NaN) / (x.p50.floor ?? NaN)] as const);
  verdict(
    "forwarder p50/floor <= 2.3 at 10 KB, <= 1.8 at 1 MB and 20 MB",
    fwRatios.length === 3 && fwRatios.every(([, v]) => Number.isFinite(v)) ? fwRatios.every(([k, v]) => v <= (limits[k] ?? 0)) : undefined,
    fwRatios.length ? fwRatios.map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ") : "not run (--only=forwarder)",
  );
  const hasPP = fwRatios.some(([, , p]) => Number.isFinite(p));
  verdict(
    "forwarder p50 no more than PushProx's at each size",
    hasPP ? fwRatios.every(([, v, p]) => v <= p) : undefined,
    hasPP ? fwRatios.map(([k, v, p]) => `${k} ${v.toFixed(2)} vs ${p.toFixed(2)} (/floor)`).join(", ") : "not run (--pushprox=DIR)",
  );
  const fwTp = fw?.throughput.find((t) => t.label === "proxy");
  const ppTp = fw?.throughput.find((t) => t.label === "pushprox");
  const sCpu = fwTp?.cpuPerScrape["server"];
  verdict("server CPU per 10 KB scrape (one forwarder, 8 concurrent) <= 0.15 ms", sCpu === undefined ? undefined : sCpu <= 0.15, sCpu === undefined ? "not run" : `${sCpu.toFixed(3)} ms (x${fwTp?.concurrency})`);
  const fCpu = fwTp?.cpuPerScrape["forwarder"];
  const fSeq = rows.find((x) => x.size === "10k")?.cpuPerScrape["forwarder"];
  verdict(
    "forwarder client CPU per 10 KB scrape <= 0.18 ms",
    fCpu === undefined ? undefined : fCpu <= 0.18,
    fCpu === undefined ? "not run" : `${fCpu.toFixed(3)} ms (x${fwTp?.concurrency}); sequential ${fSeq?.toFixed(2) ?? "-"} ms`,
  );
  const rate = (t: typeof fwTp) => (t ? t.scrapes / t.seconds : NaN);
  verdict("more scrapes/s than PushProx (10 KB, 8 concurrent)", fwTp && ppTp ? rate(fwTp) > rate(ppTp) : undefined, fwTp && ppTp ? `${rate(fwTp).toFixed(0)} vs ${rate(ppTp).toFixed(0)}` : "not run (--pushprox=DIR)");
  const big20 = rows.find((x) => x.size === "20m");
  const f20 = big20?.cpuPerScrape["forwarder"];
  const p20 = big20?.cpuPerScrape["pushprox client"] ?? NaN;
  verdict(
    "forwarder CPU per 20 MB scrape no more than PushProx's client",
    f20 !== undefined && Number.isFinite(p20) ? f20 <= p20 : undefined,
    f20 !== undefined && Number.isFinite(p20) ? `${f20.toFixed(1)} vs ${p20.toFixed(1)} ms` : "not run (--fwd-sizes with 20m and --pushprox=DIR)",
  );
  const e10 = r.latency.find((x) => x.row === "10k live");
  verdict(
    "embedded p50/direct registry at 10 KB <= 1.5",
    e10 ? e10.p50.proxy / e10.p50.direct <= 1.5 : undefined,
    e10 ? `${ratio(e10.p50.proxy, e10.p50.direct)} (live; cached ${ratio(r.latency.find((x) => x.row === "10k cached")?.p50.proxy ?? NaN, r.latency.find((x) => x.row === "10k cached")?.p50.direct ?? NaN)})` : "not run (--only=10k)",
  );
  const cachedRows = r.latency.filter((x) => x.cached && x.size !== "100m");
  const relay = cachedRows.map((x) => [x.size, x.p50.proxy / x.p50.floor] as const);
  verdict(
    "relay cost alone (cached rows) proxy/floor <= 1.3",
    relay.length && relay.every(([, v]) => Number.isFinite(v)) ? relay.every(([, v]) => v <= 1.3) : undefined,
    relay.length ? relay.map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ") : "not run",
  );
  const idle = r.idleClients ?? [];
  if (idle.length > 0) {
    const worst = Math.max(...idle.map((x) => x.rssPerClient));
    verdict("server RSS per idle client <= 45 KiB (at 2,000 clients)", worst <= 45 * 1024, idle.map((x) => `${x.clients}: ${fmtBytes(x.rssPerClient)}`).join(", "));
  } else {
    verdict("server RSS per idle client <= 45 KiB (at 2,000 clients)", undefined, r.idle ? `not run (--only=idle); the throughput fleet gave ${fmtBytes(r.idle.rssPerClient)} at ${r.idle.clients} clients` : "not run (--only=idle)");
  }
  const big = r.latency.find((x) => x.size === "100m");
  const growth = big ? big.serverRss.peak - big.serverRss.baseline : NaN;
  verdict("peak RSS growth for one ~100 MB scrape <= 16 MiB", big ? growth <= 16 * 1024 * 1024 : undefined, big ? `${fmtBytes(growth)} (server, 100 MiB cached row)` : "not run (--only=100m)");
  const st = r.storm;
  verdict(
    "reconnect storm: every client back <= 30 s after the new server listens, memory bounded",
    st ? Number.isFinite(st.fromListenSeconds) && st.fromListenSeconds <= 30 && st.back >= st.clients : undefined,
    st
      ? `${st.back}/${st.clients} back, ${Number.isFinite(st.fromListenSeconds) ? st.fromListenSeconds.toFixed(1) + " s" : "not all"} from the listen ` +
          `(${Number.isFinite(st.allBackSeconds) ? st.allBackSeconds.toFixed(1) + " s" : "-"} from the kill, down ${st.downSeconds} s); peak RSS ${fmtBytes(st.peakRss)}, settled ${fmtBytes(st.settledRss)}`
      : "not run (--only=storm)",
  );
  console.log("Goals, each against figures of this run:");
  for (const l of lines) console.log("  " + l);
}
