import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { createClient } from "../client/client.ts";
import { createServer } from "../server/server.ts";
import { createConsoleLogger } from "../shared/logger.ts";
import { parseFlags } from "./config-source.ts";
import { envName } from "./flag-table.ts";
import { serverDefaults } from "./server-flags.ts";
import { listenFailure, parseHostPort, scrapeConfig, untilSignal, dialableHost } from "./util.ts";

const usage = `usage: promproxy demo [--listen HOST:PORT] [--name NAME]

Runs a server on --listen [${serverDefaults.listen}] and an embedded client named --name [demo]
that serves a registry with a few live metrics, in one process. Ctrl-C stops both.`;

/** A registry with metrics that move, so that a demo graph shows something. @internal */
export function demoRegistry(): { registry: Registry; stop(): void } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({ name: "demo_requests_total", help: "Requests the demo pretends to serve.", labelNames: ["route"], registers: [registry] });
  const latency = new Histogram({ name: "demo_request_duration_seconds", help: "Pretend request latency.", buckets: [0.01, 0.05, 0.1, 0.5, 1], registers: [registry] });
  const temperature = new Gauge({ name: "demo_temperature_celsius", help: "A value that wanders.", registers: [registry] });
  let t = 20;
  const timer = setInterval(() => {
    requests.inc({ route: Math.random() < 0.7 ? "/" : "/api" }, 1 + Math.floor(Math.random() * 5));
    latency.observe(Math.random() * Math.random());
    t += (Math.random() - 0.5) * 0.5;
    temperature.set(+t.toFixed(2));
  }, 500);
  timer.unref();
  return { registry, stop: () => clearInterval(timer) };
}

export async function runDemo(argv: string[]): Promise<number> {
  const parsed = { values: parseFlags("demo", argv, { listen: { type: "string" }, name: { type: "string" }, help: { type: "boolean", short: "h" } }) as { listen?: string; name?: string; help?: boolean } };
  if (parsed.values.help) {
    process.stdout.write(usage + "\n");
    return 0;
  }
  const { host, port } = parseHostPort(parsed.values.listen ?? process.env[envName("listen")] ?? serverDefaults.listen, "--listen");
  const name = parsed.values.name ?? "demo";
  const logger = createConsoleLogger("info");
  const server = createServer({ logger });
  const bound = await server.listen({ host, port }).catch((e: unknown) => listenFailure(e, host, port));
  if (typeof bound === "string") {
    process.stderr.write(`promproxy: ${bound}\n`);
    return 1;
  }
  const shown = dialableHost(host);
  const url = `http://${shown}:${bound.port}`;
  const demo = demoRegistry();
  const client = createClient({ name, serverUrl: url, registry: demo.registry, labels: { env: "demo" }, logger });
  await client.start();
  await client.ready({ timeoutMs: 10_000 });
  process.stdout.write(
    `promproxy demo: server on ${url}, client "${name}" connected.\n\n` +
      `Try:  curl -x ${url} http://${name}/metrics\n      curl ${url}/clients\n\n` +
      `Prometheus configuration (prometheus.yml):\n\n${scrapeConfig(url)}\n\nCtrl-C stops.\n`,
  );
  const sig = await untilSignal();
  logger.info("shutting down", { signal: sig });
  demo.stop();
  await client.stop();
  await server.close({ graceMs: 2_000 });
  return 0;
}
