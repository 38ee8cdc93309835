/**
 * Content negotiation for the exposition formats prom-client writes.
 *
 * Hand-written rather than npm `negotiator` (measured in bench/negotiate.ts):
 * negotiator matches a media range only when every parameter of it equals an
 * offer's, so Prometheus 3's `escaping=...` (any value) and the `version`s
 * would all have to be offered, and then it costs 10-25x more per scrape (50-90
 * µs against 1.5-4 µs for Prometheus' headers, next to about 100 µs for
 * rendering a small registry). Parameters other than `q` are ignored here:
 * prom-client writes one version of each format, and its names are valid
 * under every escaping scheme.
 *
 * @internal
 */

interface MediaRange {
  type: string;
  q: number;
}

function parseAccept(header: string): MediaRange[] {
  const out: MediaRange[] = [];
  for (const part of header.split(",")) {
    const [type = "", ...params] = part.split(";").map((s) => s.trim().toLowerCase());
    if (!type) continue;
    let q = 1;
    for (const p of params) {
      if (p.startsWith("q=")) {
        const v = Number(p.slice(2));
        q = Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0;
      }
    }
    out.push({ type, q });
  }
  return out;
}

/** Whether OpenMetrics is preferred over the text format 0.0.4 by an `Accept` header. */
export function prefersOpenMetrics(accept: string | undefined): boolean {
  if (!accept) return false;
  let om = 0;
  let text = 0;
  for (const r of parseAccept(accept)) {
    if (r.type === "application/openmetrics-text") om = Math.max(om, r.q);
    else if (r.type === "text/plain" || r.type === "text/*" || r.type === "*/*") text = Math.max(text, r.q);
  }
  return om > 0 && om > text;
}

/** Whether an `Accept-Encoding` header allows gzip. */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false;
  let gzip: number | undefined;
  let star: number | undefined;
  for (const r of parseAccept(acceptEncoding)) {
    if (r.type === "gzip" || r.type === "x-gzip") gzip = r.q;
    else if (r.type === "*") star = r.q;
  }
  return (gzip ?? star ?? 0) > 0;
}
