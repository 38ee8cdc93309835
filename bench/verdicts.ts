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
  const fwRatios = (fw?.rows ?? []).map((x) => [x.size, (x.p50.proxy ?? NaN) / (x.p50.floor ?? NaN)] as const);
  verdict(
    "forwarder p50/floor <= 1.5 at 10 KB, 1 MB, 20 MB",
    fwRatios.length === 3 && fwRatios.every(([, v]) => Number.isFinite(v)) ? fwRatios.every(([, v]) => v <= 1.5) : undefined,
    fwRatios.length ? fwRatios.map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ") : "not run (--only=forwarder)",
  );
  const fwTp = fw?.throughput.find((t) => t.label === "proxy");
  const sCpu = fwTp?.cpuPerScrape["server"];
  verdict("server CPU per 10 KB scrape (one forwarder, 8 concurrent) <= 0.12 ms", sCpu === undefined ? undefined : sCpu <= 0.12, sCpu === undefined ? "not run" : `${sCpu.toFixed(3)} ms (x${fwTp?.concurrency})`);
  const fCpu = fwTp?.cpuPerScrape["forwarder"];
  const fSeq = fw?.rows.find((x) => x.size === "10k")?.cpuPerScrape["forwarder"];
  verdict(
    "forwarder client CPU per 10 KB scrape <= 0.20 ms",
    fCpu === undefined ? undefined : fCpu <= 0.2,
    fCpu === undefined ? "not run" : `${fCpu.toFixed(3)} ms (x${fwTp?.concurrency}); sequential ${fSeq?.toFixed(2) ?? "-"} ms`,
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
    verdict("server RSS per idle client <= 20 KiB", worst <= 20 * 1024, idle.map((x) => `${x.clients}: ${fmtBytes(x.rssPerClient)}`).join(", "));
  } else {
    verdict("server RSS per idle client <= 20 KiB", undefined, r.idle ? `not run (--only=idle); the throughput fleet gave ${fmtBytes(r.idle.rssPerClient)} at ${r.idle.clients} clients` : "not run (--only=idle)");
  }
  const big = r.latency.find((x) => x.size === "100m");
  const growth = big ? big.serverRss.peak - big.serverRss.baseline : NaN;
  verdict("peak RSS growth for one ~100 MB scrape <= 16 MiB", big ? growth <= 16 * 1024 * 1024 : undefined, big ? `${fmtBytes(growth)} (server, 100 MiB cached row)` : "not run (--only=100m)");
  const st = r.storm;
  verdict(
    "reconnect storm: all clients back <= 30 s",
    st ? Number.isFinite(st.allBackSeconds) && st.allBackSeconds <= 30 && st.back >= st.clients : undefined,
    st ? `${st.back}/${st.clients} back, ${Number.isFinite(st.allBackSeconds) ? st.allBackSeconds.toFixed(1) + " s" : "not all"} from the kill; peak RSS ${fmtBytes(st.peakRss)}` : "not run (--only=storm)",
  );
  console.log("Goals, each against figures of this run:");
  for (const l of lines) console.log("  " + l);
}
