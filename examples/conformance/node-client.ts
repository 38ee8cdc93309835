// The Node client as a conformance kit's client under test: an embedded client serving a registry of about 2 MB,
// so that bodies span many chunks and credit grants.
//   npx promproxy conformance --client "npx node examples/conformance/node-client.ts {server} {name}"
// It imports the client from src/ (not the published "promproxy/client"), so the kit checks the working tree.
import { Counter, Gauge, Registry } from "prom-client";
import { createClient } from "../../src/client/index.ts";

const [serverUrl, name] = process.argv.slice(2);
if (!serverUrl || !name) {
  console.error("usage: node examples/conformance/node-client.ts SERVER_URL NAME");
  process.exit(2);
}

const registry = new Registry();
new Counter({ name: "conformance_up_total", help: "Always 1.", registers: [registry] }).inc();
const series = new Gauge({ name: "conformance_series", help: "Many series, for a large body.", labelNames: ["shard", "series"], registers: [registry] });
for (let i = 0; i < 20_000; i++) series.set({ shard: `shard-${i % 64}`, series: `series-number-${i}` }, i);

const client = createClient({ name, serverUrl, registry, labels: { kit: "conformance" } });
let stopping = false;
void client.start();
// ready() rejects when a refusal retrying cannot fix stopped the client (or when we stop it).
client.ready().catch((e: unknown) => {
  if (stopping) return;
  console.error("promproxy conformance client: not started:", e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    stopping = true;
    void client.stop();
  });
}
