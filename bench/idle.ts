/**
 * The idle and storm sections of `npm run bench` (opt-in: --only=idle, --only=storm).
 *
 * Idle: N real clients (idle-load.ts processes, 2,500 clients each at most) connect to a fresh server;
 * after they settle, the server's RSS after GC minus its RSS before, divided by N; then the server's CPU
 * over a window of at least 30 s while the clients only exchange heartbeats (server app-level pings every
 * 10 s, client HTTP/2 PINGs every 10 s, server HTTP/2 PINGs every 30 s: the defaults).
 *
 * Storm: N clients connected, the server is killed (SIGKILL) and a new one started on the same port at
 * once; seconds from the kill until every client is welcomed again, and the new server's peak RSS (VmHWM,
 * i.e. since its start: the storm) and its RSS once settled.
 *
 * The server gets listen limits above N (maxConnections, maxConnectionsPerAddress: every client comes
 * from 127.0.0.1, which the default of 1,000 per address would cap) and maxClients above N; every other
 * option (maxPendingHellos, helloTimeoutMs, heartbeats) keeps its default, but for replicaCount: 1 (see
 * startServer).
 */
import * as net from "node:net";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";
import { startChild, type Child } from "./ipc.ts";
import { procCpuMs, procHwm, procRss } from "./proc.ts";

const here = path.dirname(fileURLToPath(import.meta.url));

export interface Mem { rss: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number }

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

export interface StormResult {
  clients: number;
  /** Seconds from the SIGKILL to every client welcomed by the new server. */
  allBackSeconds: number;
  /** Seconds from the new server listening to every client welcomed. */
  fromListenSeconds: number;
  /** The new server's peak RSS (VmHWM) during the storm, and its RSS after settling, bytes. */
  peakRss: number;
  settledRss: number;
  /** Clients back at the end (of `clients`). */
  back: number;
  /** Seconds to 50%, 90%, 99% of the clients back (from the kill). */
  quantiles: { q50: number; q90: number; q99: number };
  serverCpuMs: number;
}

export interface IdleConfig {
  counts: number[];
  cpuSeconds: number;
  perProcess: number;
  serverOptions: Record<string, unknown>;
  execArgvFor(name: string): string[];
  heapSnapshotDir?: string;
  children: Child[];
  log(line: string): void;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
    s.on("error", reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The soft and hard limits of open files this driver (and so its children) has. */
export function fdLimits(): string {
  try {
    return execFileSync("sh", ["-c", "echo $(ulimit -Sn) soft, $(ulimit -Hn) hard"], { encoding: "utf8" }).trim();
  } catch {
    return "?";
  }
}

async function startServer(n: number, port: number, cfg: IdleConfig, tag: string): Promise<Child<{ port: number }>> {
  // replicaCount 1: a single server says so, else every client of the new client code probes for other
  // replicas with an extra connection every 30 s (measurements.md); --server-options='{"replicaCount":0}'
  // measures that default.
  const opts = { maxClients: Math.max(10_000, n + 100), replicaCount: 1, ...cfg.serverOptions };
  const listen = { port, maxConnections: n + 1000, maxConnectionsPerAddress: n + 1000 };
  const s = await startChild<{ port: number }>(path.join(here, "server-proc.ts"), [JSON.stringify(opts), JSON.stringify(listen)], cfg.execArgvFor(tag));
  cfg.children.push(s);
  return s;
}

async function startLoad(n: number, port: number, cfg: IdleConfig, batch: number): Promise<Child[]> {
  const procs = Math.max(1, Math.ceil(n / cfg.perProcess));
  const loads: Child[] = [];
  for (let i = 0; i < procs; i++) {
    const count = Math.floor(n / procs) + (i < n % procs ? 1 : 0);
    const c = await startChild(path.join(here, "idle-load.ts"), [JSON.stringify({ serverPort: port, count, prefix: `idle-${i}` })], ["--expose-gc"]);
    cfg.children.push(c);
    loads.push(c);
  }
  // All processes start their clients at once, each `batch` clients every 100 ms (4 processes: 4,000/s).
  await Promise.all(loads.map((l) => l.call("connect", { batch, everyMs: 100 })));
  return loads;
}

async function waitConnected(server: Child, n: number, timeoutMs: number, onTick?: (connected: number, ms: number) => void): Promise<number> {
  const t0 = performance.now();
  let c = 0;
  while (performance.now() - t0 < timeoutMs) {
    c = await server.call<number>("clients");
    onTick?.(c, performance.now() - t0);
    if (c >= n) return c;
    await sleep(200);
  }
  return c;
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
    const stillConnected = await server.call<number>("clients");
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

export async function stormSection(cfg: IdleConfig, n: number): Promise<StormResult> {
  const port = await freePort();
  const first = await startServer(n, port, cfg, "storm-server-1");
  const loads = await startLoad(n, port, cfg, 100);
  const c0 = await waitConnected(first, n, 120_000);
  if (c0 < n) cfg.log(`  storm: only ${c0} of ${n} connected before the kill`);
  await sleep(3000);
  const tKill = performance.now();
  first.proc.kill("SIGKILL");
  await new Promise<void>((r) => (first.proc.exitCode !== null || first.proc.signalCode !== null ? r() : first.proc.once("exit", () => r())));
  const second = await startServer(n, port, cfg, "storm-server-2");
  const tListen = performance.now();
  const pid = second.proc.pid as number;
  const cpu0 = procCpuMs(pid);
  const marks: { q50?: number; q90?: number; q99?: number } = {};
  const back = await waitConnected(second, n, 180_000, (c, _ms) => {
    const s = (performance.now() - tKill) / 1000;
    if (marks.q50 === undefined && c >= n * 0.5) marks.q50 = s;
    if (marks.q90 === undefined && c >= n * 0.9) marks.q90 = s;
    if (marks.q99 === undefined && c >= n * 0.99) marks.q99 = s;
  });
  const allBack = (performance.now() - tKill) / 1000;
  const fromListen = (performance.now() - tListen) / 1000;
  const serverCpuMs = procCpuMs(pid) - cpu0;
  const peakRss = procHwm(pid);
  await sleep(3000);
  const settled = await second.call<Mem>("memNow");
  const r: StormResult = {
    clients: n,
    allBackSeconds: back >= n ? allBack : NaN,
    fromListenSeconds: back >= n ? fromListen : NaN,
    peakRss,
    settledRss: settled.rss,
    back,
    quantiles: { q50: marks.q50 ?? NaN, q90: marks.q90 ?? NaN, q99: marks.q99 ?? NaN },
    serverCpuMs,
  };
  cfg.log(
    `  storm ${n}: ${back} of ${n} back ${Number.isFinite(r.allBackSeconds) ? `in ${allBack.toFixed(1)} s` : "(NOT all back)"} after the kill ` +
      `(50% ${r.quantiles.q50.toFixed(1)} s, 90% ${r.quantiles.q90.toFixed(1)} s, 99% ${r.quantiles.q99.toFixed(1)} s); new server peak RSS ${(peakRss / 1048576).toFixed(0)} MiB, settled ${(settled.rss / 1048576).toFixed(0)} MiB`,
  );
  await Promise.all(loads.map((l) => l.stop(30_000).catch(() => {})));
  await second.stop().catch(() => {});
  return r;
}
