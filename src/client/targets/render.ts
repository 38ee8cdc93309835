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
  /** How long the gzip took (on libuv's thread pool, so not in the event loop's busy time). */
  gzipMs?: number;
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
  // The view holds no state of a scrape (each call of getMetricsAsArray derives new metric objects): made once.
  const views = contentType === Registry.OPENMETRICS_CONTENT_TYPE ? openMetricsViews : textViews;
  let view = views.get(registry);
  if (!view) {
    view = Object.create(registry, {
      _contentType: { value: contentType },
      getMetricsAsArray: { value: () => registry.getMetricsAsArray().map((m) => Object.create(m) as typeof m) },
    }) as Registry;
    views.set(registry, view);
  }
  return view;
}

/** Each registry's view in the other format, per format. */
const openMetricsViews = new WeakMap<Registry, Registry>();
const textViews = new WeakMap<Registry, Registry>();

/**
 * The answers for the last few headers, per negotiation: Prometheus sends the
 * same `Accept` and `Accept-Encoding` with every scrape, so each is parsed once.
 */
function lastAnswer(decide: (header: string | undefined) => boolean): (header: string | undefined) => boolean {
  // The last few: a server alternating formats (or Prometheus servers of both kinds) is not parsed anew each time.
  const answers = new Map<string | undefined, boolean>();
  return (header) => {
    let answer = answers.get(header);
    if (answer === undefined) {
      answer = decide(header);
      if (answers.size >= 4) answers.delete(answers.keys().next().value);
      answers.set(header, answer);
    }
    return answer;
  };
}
const wantsOpenMetrics = lastAnswer(prefersOpenMetrics);
const wantsGzip = lastAnswer(acceptsGzip);

/**
 * What a render for these headers produces, as a key: scrapes with the same
 * key get the same bytes (OpenMetrics or text, gzip or not).
 *
 * @internal
 */
export function formatKey(accept: string | undefined, acceptEncoding: string | undefined, gzipLevel: number): string {
  return `${wantsOpenMetrics(accept) ? "om" : "text"}${gzipLevel > 0 && wantsGzip(acceptEncoding) ? "+gzip" : ""}`;
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
  const wanted = wantsOpenMetrics(accept) ? Registry.OPENMETRICS_CONTENT_TYPE : Registry.PROMETHEUS_CONTENT_TYPE;
  const view = inFormat(registry, wanted);
  const text = await view.metrics();
  const body = Buffer.from(text, "utf8");
  // An abandoned scrape (timed out, cancelled) still holds its place: no gzip work for a body nobody reads.
  if (gzipLevel > 0 && body.length >= 1024 && wantsGzip(acceptEncoding) && !signal?.aborted) {
    const started = performance.now();
    const gzipped = await gzip(body, { level: gzipLevel });
    return { contentType: view.contentType, contentEncoding: "gzip", body: gzipped, gzipMs: performance.now() - started };
  }
  return { contentType: view.contentType, body };
}
