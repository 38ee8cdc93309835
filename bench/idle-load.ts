/**
 * Bench child: a load process of the idle and storm sections. `count` real
 * promproxy clients (createClient, each with its own HTTP/2 connection and
 * one Scrape stream, answering the server's heartbeats and PINGs), serving a
 * tiny registry, with the client's default backoff (500 ms doubling to 30 s).
 *
 * argv[2]: JSON { serverPort, count, prefix, localAddress? }.
 */
import { Code } from "@connectrpc/connect";
import { Gauge, Registry } from "prom-client";
import { createClient, silentLogger, type PromproxyClient } from "../src/client/index.ts";
import { ready, serveCommands } from "./ipc.ts";
import { cpuMeter, rssMeter } from "./meters.ts";

const config = JSON.parse(process.argv[2] ?? "{}") as { serverPort: number; count: number; prefix: string; localAddress?: string };
const registry = new Registry();
new Gauge({ name: "idle_up", help: "An idle client.", registers: [registry] }).set(1);

let connected = 0;
let everConnected = 0;
/** Welcomes so far: more than `count` means clients were dropped and reconnected. */
let welcomes = 0;
/** Failed attempts so far (onError), by Connect code: refusals and connections that did not open. */
const errors: Record<string, number> = {};
const clients: PromproxyClient[] = [];
const seen = new Set<number>();
for (let i = 0; i < config.count; i++) {
  clients.push(
    createClient({
      name: `${config.prefix}-${i}`,
      serverUrl: `http://127.0.0.1:${config.serverPort}`,
      registry,
      logger: silentLogger,
      http2Options: config.localAddress ? ({ localAddress: config.localAddress } as object) : undefined,
      onConnected: () => {
        connected++;
        welcomes++;
        if (!seen.has(i)) {
          seen.add(i);
          everConnected++;
        }
      },
      onDisconnected: () => connected--,
      onError: (e) => void (errors[Code[e.code] ?? "Unknown"] = (errors[Code[e.code] ?? "Unknown"] ?? 0) + 1),
    }),
  );
}

serveCommands({
  ...cpuMeter().commands,
  ...rssMeter().commands,
  /**
   * Starts every client, `batch` every `everyMs` (default 100 per 100 ms), without waiting for welcomes:
   * the driver watches the server's count. Resolves once all were started.
   */
  async connect(arg: unknown) {
    const { batch = 100, everyMs = 100 } = (arg ?? {}) as { batch?: number; everyMs?: number };
    for (let i = 0; i < clients.length; i += batch) {
      for (const c of clients.slice(i, i + batch)) c.start().catch(() => {});
      await new Promise((r) => setTimeout(r, everyMs));
    }
    return clients.length;
  },
  connected: () => connected,
  everConnected: () => everConnected,
  welcomes: () => welcomes,
  errors: () => errors,
  async stop() {
    await Promise.all(clients.map((c) => c.stop().catch(() => {})));
    setImmediate(() => process.exit(0));
  },
});
ready({ pid: process.pid });
