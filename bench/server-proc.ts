/** Bench child: the promproxy server (createServer + listen) on a loopback port. */
import { createServer, silentLogger, type ServerOptions } from "../src/server/index.ts";
import { ready, serveCommands } from "./ipc.ts";
import { cpuMeter, rssMeter } from "./meters.ts";

/** argv[2]: extra ServerOptions as JSON (bench --server-options), for experiments. */
const extra = JSON.parse(process.argv[2] || "{}") as ServerOptions;
const server = createServer({ logger: silentLogger, ...extra });
const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
const cpu = cpuMeter();
const rss = rssMeter();
serveCommands({
  ...cpu.commands,
  ...rss.commands,
  clients: () => server.clients().length,
  async stop() {
    await server.close({ graceMs: 500 });
    // Exit explicitly: --cpu-prof writes its profile on exit.
    setImmediate(() => process.exit(0));
  },
});
ready({ port });
