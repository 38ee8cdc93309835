/**
 * Registries for the benchmark: prom-client Gauges with label values, sized to
 * an approximate exposition size, and "cached" registries that hand out one
 * pre-rendered exposition (to isolate the relay from prom-client's rendering).
 */
import { Gauge, Registry } from "prom-client";
import { renderRegistry, type MetricsRegistry } from "../src/client/render.ts";

/** The exposition sizes the benchmark knows, by name. */
export const sizes = {
  "10k": 10 * 1024,
  "1m": 1024 * 1024,
  "20m": 20 * 1024 * 1024,
} as const;
export type SizeName = keyof typeof sizes;

/**
 * A registry of Gauges whose text exposition is about `bytes` long: metrics of
 * up to 1,000 series each, three labels per series, one HELP and TYPE per metric.
 */
export function gaugeRegistry(bytes: number): Registry {
  const registry = new Registry();
  // One series line with its share of HELP/TYPE is about 86 bytes in OpenMetrics:
  // bench_gauge_007{instance="inst-00042",path="/api/v1/items/00042",code="200"} 4242.4242
  const lineBytes = 86;
  let series = Math.max(1, Math.round(bytes / lineBytes));
  const perMetric = 1000;
  for (let m = 0; series > 0; m++) {
    const n = Math.min(perMetric, series);
    series -= n;
    const g = new Gauge({
      name: `bench_gauge_${String(m).padStart(3, "0")}`,
      help: `Benchmark gauge number ${m}, with ${n} series.`,
      labelNames: ["instance", "path", "code"] as const,
      registers: [registry],
    });
    for (let i = 0; i < n; i++) {
      const id = String(i).padStart(5, "0");
      g.set({ instance: `inst-${id}`, path: `/api/v1/items/${id}`, code: String(200 + (i % 5)) }, (i * 1.0001 + m) % 10_000);
    }
  }
  return registry;
}

/**
 * A registry stand-in whose `metrics()` returns one exposition rendered up
 * front (as Prometheus' `accept` header asks for it). Both the proxied and the
 * direct path still turn it into a Buffer per scrape (renderRegistry does),
 * exactly as they would a fresh one.
 */
export async function cachedRegistry(from: Registry, accept: string): Promise<MetricsRegistry> {
  const r = await renderRegistry(from, accept, "identity", 0);
  const text = r.body.toString("utf8");
  return { contentType: r.contentType as Registry["contentType"], metrics: async () => text };
}
