/**
 * Bench child: the promproxy server (createServer + listen) on a loopback port, with V8's tier-up as
 * `promproxy server` sets it (src/cli/v8-tier-up.ts; a `--invocation-count-for-turbofan` node flag wins).
 *
 * argv[2]: extra ServerOptions as JSON (bench --server-options), for experiments.
 * argv[3]: ListenOptions as JSON over { host: "127.0.0.1", port: 0 } (the idle and storm sections
 *          pass a fixed port and connection limits above their client counts).
 */
import { createServer, silentLogger, type ServerOptions } from "../src/server/index.ts";
import type { ListenOptions } from "../src/server/listen/listen.ts";
import { ready, serveCommands } from "./ipc.ts";
import { cpuMeter, rssMeter } from "./meters.ts";
import { tuneTierUp } from "../src/cli/v8-tier-up.ts";

tuneTierUp();

const extra = JSON.parse(process.argv[2] || "{}") as ServerOptions;
const listenExtra = JSON.parse(process.argv[3] || "{}") as ListenOptions;
const server = createServer({ logger: silentLogger, ...extra });
const { port } = await server.listen({ host: "127.0.0.1", port: 0, ...listenExtra });
/** Client streams refused so far, by Connect code (the `clientRefused` event). */
const refused: Record<string, number> = {};
server.on("clientRefused", (r) => void (refused[r.code] = (refused[r.code] ?? 0) + 1));
/**
 * Clients connected, kept from the server's events: the idle and storm sections ask it every 200 ms, and
 * `server.clients()` copies every client's info (10,000 objects a call): during a storm that polling took 7.3 s of
 * the new server's CPU (--cpu-prof, 7.5 % of its busy time), slowing what it measured. `clientsListed` checks it.
 */
let live = 0;
server.on("clientConnected", () => void live++);
server.on("clientDisconnected", () => void live--);
const cpu = cpuMeter();
const rss = rssMeter();
serveCommands({
  ...cpu.commands,
  ...rss.commands,
  clients: () => live,
  clientsListed: () => server.clients().length,
  refused: () => refused,
  /** Memory after full collections: RSS and the V8 heap's share, bytes. */
  memNow() {
    const g = (globalThis as { gc?: () => void }).gc;
    g?.();
    g?.();
    const m = process.memoryUsage();
    return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers };
  },
  /** Clients connected right now (clients() also lists vanished ones, connected=false). */
  connected: () => server.clients().filter((c) => (c as { connected?: boolean }).connected !== false).length,
  async stop() {
    await server.close({ graceMs: 500 });
    // Exit explicitly: --cpu-prof writes its profile on exit.
    setImmediate(() => process.exit(0));
  },
});
ready({ port });
