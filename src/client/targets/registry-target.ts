import { renderRegistry, type MetricsRegistry } from "./render.ts";
import { ScrapeErrorReason, TargetError, type ScrapeTarget } from "./target.ts";

/**
 * Serves a prom-client registry in-process: no HTTP hop, no port opened.
 * Answers exactly `metricsPath` on any port.
 *
 * @internal
 */
export function registryTarget(registry: MetricsRegistry, metricsPath: string, gzipLevel: number): ScrapeTarget {
  return {
    port: 0,
    path: metricsPath === "/metrics" ? "" : metricsPath,
    labels: {},
    async serve(req, out) {
      const q = req.path.indexOf("?");
      const pathname = q < 0 ? req.path : req.path.slice(0, q);
      if (pathname !== metricsPath) {
        throw new TargetError(ScrapeErrorReason.NOT_FOUND, `this client serves its metrics at ${metricsPath} only, not ${JSON.stringify(pathname.slice(0, 200))}`);
      }
      let r;
      try {
        r = await renderRegistry(registry, req.headers["accept"], req.headers["accept-encoding"], gzipLevel, req.signal);
      } catch (e) {
        throw new TargetError(ScrapeErrorReason.INTERNAL, `collecting metrics failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
      if (req.signal.aborted) return;
      const headers: Record<string, string> = { "content-type": r.contentType, "content-length": String(r.body.length) };
      if (r.contentEncoding) headers["content-encoding"] = r.contentEncoding;
      out.head(200, headers);
      await out.write(r.body);
    },
  };
}
