/**
 * Bench child: an application with embedded promproxy clients that also serves
 * the very same registries directly over plain HTTP (rendered by the same
 * renderRegistry), plus relay B of the floor in front of that direct endpoint.
 *
 * argv[2]: JSON AppConfig.
 */
import * as http from "node:http";
import type { Registry } from "prom-client";
import { createClient, silentLogger, type PromproxyClient } from "../src/client/index.ts";
import { renderRegistry, type MetricsRegistry } from "../src/client/targets/render.ts";
import { ready, serveCommands } from "./ipc.ts";
import { cpuMeter, rssMeter } from "./meters.ts";
import { prefersOpenMetrics } from "../src/client/targets/negotiate.ts";
import { cachedRegistry, gaugeRegistry, sizes, syntheticRegistry, type SizeName } from "./registries.ts";
import { startRelay } from "./relay.ts";

export interface AppConfig {
  serverPort: number;
  /** Prometheus' Accept header, for the cached expositions. */
  accept: string;
  /** latency: one client per size (and a cached twin); fleet: `count` clients sharing one 10 KB registry. */
  role: "latency" | "fleet";
  sizes?: SizeName[];
  count?: number;
  prefix?: string;
}

const config = JSON.parse(process.argv[2] ?? "{}") as AppConfig;
const serverUrl = `http://127.0.0.1:${config.serverPort}`;
/** Registries by client name (= the Host the direct endpoint is asked for). */
const byName = new Map<string, MetricsRegistry>();
let fallback: MetricsRegistry | undefined;

if (config.role === "latency") {
  for (const size of config.sizes ?? []) {
    if (size === "100m") {
      byName.set(`app-${size}-cached`, syntheticRegistry(sizes[size], prefersOpenMetrics(config.accept)));
      continue;
    }
    const live: Registry = gaugeRegistry(sizes[size]);
    byName.set(`app-${size}`, live);
    byName.set(`app-${size}-cached`, await cachedRegistry(live, config.accept));
  }
} else {
  fallback = gaugeRegistry(sizes["10k"]);
  for (let i = 0; i < (config.count ?? 0); i++) byName.set(`${config.prefix ?? "fleet"}-${i}`, fallback);
}

// The direct endpoint: the same registry, the same rendering, the same gzip level as the embedded client.
const direct = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const host = (req.headers.host ?? "").replace(/:\d+$/, "").toLowerCase();
  const registry = byName.get(host) ?? fallback;
  if (!registry || !req.url?.startsWith("/metrics")) {
    res.writeHead(404).end("no such registry\n");
    return;
  }
  renderRegistry(registry, req.headers["accept"], req.headers["accept-encoding"], 1).then(
    (r) => {
      const headers: Record<string, string | number> = { "content-type": r.contentType, "content-length": r.body.length };
      if (r.contentEncoding) headers["content-encoding"] = r.contentEncoding;
      res.writeHead(200, headers);
      res.end(r.body);
    },
    (e: unknown) => res.writeHead(500).end(String(e)),
  );
});
await new Promise<void>((resolve) => direct.listen(0, "127.0.0.1", resolve));
const directPort = (direct.address() as { port: number }).port;
const relayB = await startRelay(directPort);

const clients: PromproxyClient[] = [];
for (const [name, registry] of byName) {
  // The bench scrapes back to back, far faster than any Prometheus: the guards against a flooding server are
  // lifted, so that every scrape is read at once and renders for itself (the figures are a render's, not a reuse's).
  const unguarded = { maxServerFramesPerSecond: 1_000_000, maxRenderPercent: 100, maxRegistryScrapesPerSecond: 1_000_000 };
  clients.push(createClient({ name, serverUrl, registry, logger: silentLogger, backoff: { initialMs: 50, maxMs: 1000 }, ...unguarded }));
}
// Connect in batches so a fleet does not stampede the server.
for (let i = 0; i < clients.length; i += 25) {
  await Promise.all(clients.slice(i, i + 25).map((c) => c.start({ timeoutMs: 30_000 })));
}

const cpu = cpuMeter();
const rss = rssMeter();
serveCommands({
  ...cpu.commands,
  ...rss.commands,
  names: () => [...byName.keys()],
  async stop() {
    await Promise.all(clients.map((c) => c.stop()));
    relayB.close();
    direct.closeAllConnections();
    direct.close();
    setImmediate(() => process.exit(0));
  },
});
ready({ directPort, relayPort: relayB.port, names: [...byName.keys()] });
