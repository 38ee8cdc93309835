/** The idle and storm sections' tables. */
import type { IdleResult } from "./idle.ts";
import { byCode, type StormResult } from "./storm.ts";
import { fmtBytes, table } from "./stats.ts";

export function printIdle(idle: IdleResult[] | undefined, storm: StormResult | undefined, perProcess: number): void {
  if (idle && idle.length > 0) {
    console.log(
      `Idle clients: real clients (createClient, one HTTP/2 connection and one Scrape stream each) in load processes of up to ${perProcess}; ` +
        `server RSS and JS heap after GC, before and after they connected and settled (5 s); CPU over a window with heartbeats only (default intervals).`,
    );
    console.log(
      table(
        ["clients", "connected", "connect s", "server RSS before", "server RSS after", "RSS per client", "JS heap per client", "idle server CPU", "window s", "reconnects in window", "load procs CPU", "load RSS per client"],
        idle.map((r) => [
          String(r.clients),
          String(r.connected),
          r.connectSeconds.toFixed(1),
          fmtBytes(r.before.rss),
          fmtBytes(r.after.rss),
          fmtBytes(r.rssPerClient),
          fmtBytes(r.heapPerClient),
          r.serverCpuPercent.toFixed(2) + " %",
          r.cpuWindowSeconds.toFixed(0),
          String(r.reconnects ?? "-"),
          r.loadCpuPercent.toFixed(1) + " %",
          fmtBytes(r.loadRssPerClient),
        ]),
      ),
    );
  }
  if (storm) {
    console.log(`Reconnect storm: ${storm.clients} clients connected, server SIGKILLed and a new one started on the same port ${storm.downSeconds ? `${storm.downSeconds} s later` : "at once"}; clients use the default backoff (500 ms doubling to 30 s, half random).`);
    console.log(
      table(
        ["clients", "back", "all back (from kill)", "from new listen", "50%", "90%", "99%", "new server peak RSS", "settled RSS", "server CPU ms", "refused streams", "failed attempts", "listen overflows"],
        [[
          String(storm.clients),
          String(storm.back),
          Number.isFinite(storm.allBackSeconds) ? storm.allBackSeconds.toFixed(1) + " s" : "NOT ALL",
          Number.isFinite(storm.fromListenSeconds) ? storm.fromListenSeconds.toFixed(1) + " s" : "-",
          storm.quantiles.q50.toFixed(1) + " s",
          storm.quantiles.q90.toFixed(1) + " s",
          storm.quantiles.q99.toFixed(1) + " s",
          fmtBytes(storm.peakRss),
          fmtBytes(storm.settledRss),
          storm.serverCpuMs.toFixed(0),
          byCode(storm.refused),
          byCode(storm.attemptErrors),
          String(storm.listenOverflows),
        ]],
      ),
    );
  }
  if ((idle && idle.length > 0) || storm) console.log("");
}
