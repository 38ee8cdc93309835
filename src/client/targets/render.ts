import { promisify } from "node:util";
import { gzip as gzipCb } from "node:zlib";
import { Registry } from "prom-client";
import { acceptsGzip, prefersOpenMetrics } from "./negotiate.ts";

const gzip = promisify(gzipCb);

/**
 * What promproxy serves: a prom-client `Registry` (of either content type), or
 * anything else that renders an exposition and names its content type.
 */
export interface MetricsRegistry {
  metrics(): Promise<string>;
  readonly contentType: string;
}

/** A rendered exposition. @internal */
export interface Rendered {
  contentType: string;
  contentEncoding?: "gzip";
  body: Buffer;
}

/**
 * The registry as seen in the other exposition format, without touching it:
 * a view whose content type differs and whose metrics are the registry's own.
 * Concurrent scrapes in different formats do not disturb each other.
 *
 * prom-client renames counters in place when it writes OpenMetrics (it drops
 * "_total" from `metric.name`), which would leak into later text-format
 * scrapes; the view hands it per-scrape derived metric objects to rename instead.
 */
function inFormat(registry: MetricsRegistry, contentType: string): MetricsRegistry {
  if (registry.contentType === contentType || !(registry instanceof Registry)) return registry;
  return Object.create(registry, {
    _contentType: { value: contentType },
    getMetricsAsArray: { value: () => registry.getMetricsAsArray().map((m) => Object.create(m) as typeof m) },
  }) as Registry;
}

/**
 * Renders a registry as Prometheus asked for it: OpenMetrics or text 0.0.4 per
 * `Accept`, gzip per `Accept-Encoding`.
 *
 * @internal
 */
export async function renderRegistry(
  registry: MetricsRegistry,
  accept: string | undefined,
  acceptEncoding: string | undefined,
  gzipLevel: number,
  signal?: AbortSignal,
): Promise<Rendered> {
  const wanted = prefersOpenMetrics(accept) ? Registry.OPENMETRICS_CONTENT_TYPE : Registry.PROMETHEUS_CONTENT_TYPE;
  const view = inFormat(registry, wanted);
  const text = await view.metrics();
  const body = Buffer.from(text, "utf8");
  // An abandoned scrape (timed out, cancelled) still holds its place: no gzip work for a body nobody reads.
  if (gzipLevel > 0 && body.length >= 1024 && acceptsGzip(acceptEncoding) && !signal?.aborted) {
    return { contentType: view.contentType, contentEncoding: "gzip", body: await gzip(body, { level: gzipLevel }) };
  }
  return { contentType: view.contentType, body };
}
