/**
 * Registries for the benchmark: prom-client Gauges with label values, sized to
 * an approximate exposition size, and "cached" registries that hand out one
 * pre-rendered exposition (to isolate the relay from prom-client's rendering).
 */
import { Gauge, Registry } from "prom-client";
import { renderRegistry, type MetricsRegistry } from "../src/client/targets/render.ts";

/** The exposition sizes the benchmark knows, by name. */
export const sizes = {
  "10k": 10 * 1024,
  "1m": 1024 * 1024,
  "20m": 20 * 1024 * 1024,
  /** Only pre-rendered (synthetic text): prom-client would take seconds per render and gigabytes to build it. */
  "100m": 100 * 1024 * 1024,
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
 * A registry stand-in serving a synthetic OpenMetrics exposition of about
 * `bytes` (gauge lines like gaugeRegistry's), built without prom-client.
 */
export function syntheticRegistry(bytes: number, openMetrics: boolean): MetricsRegistry {
  const lines: string[] = [];
  let size = 0;
  for (let m = 0; size < bytes; m++) {
    const name = `bench_gauge_${String(m).padStart(4, "0")}`;
    lines.push(`# HELP ${name} Benchmark gauge number ${m}, with 1000 series.`, `# TYPE ${name} gauge`);
    for (let i = 0; i < 1000 && size < bytes; i++) {
      const id = String(i).padStart(5, "0");
      const line = `${name}{instance="inst-${id}",path="/api/v1/items/${id}",code="${200 + (i % 5)}"} ${(i * 1.0001 + m) % 10_000}`;
      lines.push(line);
      size += line.length + 1;
    }
  }
  const text = lines.join("\n") + (openMetrics ? "\n# EOF\n" : "\n");
  const contentType = (openMetrics ? Registry.OPENMETRICS_CONTENT_TYPE : Registry.PROMETHEUS_CONTENT_TYPE) as Registry["contentType"];
  return { contentType, metrics: async () => text };
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
