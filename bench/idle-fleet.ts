/**
 * What the idle and storm sections share: a server for N clients (server-proc.ts with listen limits above N)
 * and load processes of real clients (idle-load.ts), and the wait for the server's count.
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

const here = path.dirname(fileURLToPath(import.meta.url));

export interface Mem { rss: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number }

export interface IdleConfig {
  counts: number[];
  cpuSeconds: number;
  perProcess: number;
  serverOptions: Record<string, unknown>;
  /** Extra listen() options (over the limits above N). */
  listenOptions?: Record<string, unknown>;
  execArgvFor(name: string): string[];
  heapSnapshotDir?: string;
  children: Child[];
  log(line: string): void;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
    s.on("error", reject);
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The soft and hard limits of open files this driver (and so its children) has. */
export function fdLimits(): string {
  try {
    return execFileSync("sh", ["-c", "echo $(ulimit -Sn) soft, $(ulimit -Hn) hard"], { encoding: "utf8" }).trim();
  } catch {
    return "?";
  }
}

export async function startServer(n: number, port: number, cfg: IdleConfig, tag: string): Promise<Child<{ port: number }>> {
  // replicaCount 1: a single server says so, else every client of the new client code probes for other
  // replicas with an extra connection every 30 s (measurements.md); --server-options='{"replicaCount":0}'
  // measures that default.
  const opts = { maxClients: Math.max(10_000, n + 100), replicaCount: 1, ...cfg.serverOptions };
  const listen = { port, maxConnections: n + 1000, maxConnectionsPerAddress: n + 1000, ...cfg.listenOptions };
  const s = await startChild<{ port: number }>(path.join(here, "server-proc.ts"), [JSON.stringify(opts), JSON.stringify(listen)], cfg.execArgvFor(tag));
  cfg.children.push(s);
  return s;
}

export async function startLoad(n: number, port: number, cfg: IdleConfig, batch: number): Promise<Child[]> {
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

export async function waitConnected(server: Child, n: number, timeoutMs: number, onTick?: (connected: number, ms: number) => void): Promise<number> {
  const t0 = performance.now();
  let c = 0;
  while (performance.now() - t0 < timeoutMs) {
    c = await server.call<number>("clients"); // counted from events: cheap to ask every 200 ms
    if (c >= n) c = await server.call<number>("clientsListed"); // the server's own list has the last word
    onTick?.(c, performance.now() - t0);
    if (c >= n) return c;
    await sleep(200);
  }
  return c;
}
