/** Bench child: relay A of the floor (stands where the server stands). argv: targetPort. */
import { ready, serveCommands } from "./ipc.ts";
import { startRelay } from "./relay.ts";
import { cpuMeter, rssMeter } from "./meters.ts";

const relay = await startRelay(Number(process.argv[2]));
const cpu = cpuMeter();
const rss = rssMeter();
serveCommands({
  ...cpu.commands,
  ...rss.commands,
  stop() {
    relay.close();
    setImmediate(() => process.exit(0));
  },
});
ready({ port: relay.port });
