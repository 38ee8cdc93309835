/**
 * The idle section of `npm run bench` (opt-in: --only=idle): N real clients (idle-load.ts processes, 2,500
 * clients each at most) connect to a fresh server; after they settle, the server's RSS after GC minus its RSS
 * before, divided by N; then the server's CPU over a window of at least 30 s while the clients only exchange
 * heartbeats (server app-level pings every 10 s, client HTTP/2 PINGs every 10 s, server HTTP/2 PINGs every
 * 30 s: the defaults). Server and load: idle-fleet.ts.
 */
import * as path from "node:path";
import { startLoad, startServer, sleep, waitConnected, type IdleConfig, type Mem } from "./idle-fleet.ts";
import { procCpuMs, procRss } from "./proc.ts";

export { fdLimits, type IdleConfig } from "./idle-fleet.ts";

export interface IdleResult {
  clients: number;
  connected: number;
  connectSeconds: number;
  before: Mem;
  after: Mem;
  rssPerClient: number;
  heapPerClient: number;
  cpuWindowSeconds: number;
  serverCpuPercent: number;
  loadCpuPercent: number;
  loadRssPerClient: number;
  /** Welcomes in the load processes during the CPU window: clients that were dropped and came back. */
  reconnects: number;
}

export async function idleSection(cfg: IdleConfig): Promise<IdleResult[]> {
  const out: IdleResult[] = [];
  for (const n of cfg.counts) {
    const server = await startServer(n, 0, cfg, `idle-server-${n}`);
    const before = await server.call<Mem>("memNow");
    if (cfg.heapSnapshotDir) await server.call<string>("heapSnapshot", path.join(cfg.heapSnapshotDir, `server-idle-${n}-before.heapsnapshot`));
    const t0 = performance.now();
    const loads = await startLoad(n, server.info.port, cfg, 100);
    const connected = await waitConnected(server, n, 120_000);
    const connectSeconds = (performance.now() - t0) / 1000;
    await sleep(5000); // past the first heartbeats and PINGs
    const after = await server.call<Mem>("memNow");
    if (cfg.heapSnapshotDir) {
      const f = await server.call<string>("heapSnapshot", path.join(cfg.heapSnapshotDir, `server-idle-${n}.heapsnapshot`));
      cfg.log(`  heap snapshot: ${f}`);
    }
    const spid = server.proc.pid as number;
    const lpids = loads.map((l) => l.proc.pid as number);
    const welcomes = async () => (await Promise.all(loads.map((l) => l.call<number>("welcomes")))).reduce((a, b) => a + b, 0);
    const w0count = await welcomes();
    const s0 = procCpuMs(spid);
    const l0 = lpids.reduce((a, p) => a + procCpuMs(p), 0);
    const w0 = performance.now();
    await sleep(cfg.cpuSeconds * 1000);
    const wall = performance.now() - w0;
    const serverCpuPercent = ((procCpuMs(spid) - s0) / wall) * 100;
    const loadCpuPercent = ((lpids.reduce((a, p) => a + procCpuMs(p), 0) - l0) / wall) * 100;
    const stillConnected = await server.call<number>("clientsListed");
    const reconnects = (await welcomes()) - w0count;
    const loadRss = lpids.reduce((a, p) => a + procRss(p), 0);
    const r: IdleResult = {
      clients: n,
      connected: Math.min(connected, stillConnected),
      connectSeconds,
      before,
      after,
      rssPerClient: (after.rss - before.rss) / n,
      heapPerClient: (after.heapUsed - before.heapUsed) / n,
      cpuWindowSeconds: wall / 1000,
      serverCpuPercent,
      loadCpuPercent,
      loadRssPerClient: loadRss / n,
      reconnects,
    };
    out.push(r);
    cfg.log(
      `  idle ${n}: ${r.connected} connected in ${connectSeconds.toFixed(1)} s; server RSS ${((after.rss - before.rss) / 1048576).toFixed(1)} MiB more, ` +
        `${(r.rssPerClient / 1024).toFixed(1)} KiB per client (JS heap ${(r.heapPerClient / 1024).toFixed(1)} KiB); idle server CPU ${serverCpuPercent.toFixed(2)}% over ${(wall / 1000).toFixed(0)} s, ${reconnects} reconnects in it`,
    );
    await Promise.all(loads.map((l) => l.stop(30_000).catch(() => {})));
    await server.stop().catch(() => {});
  }
  return out;
}
