import type { Logger } from "../../shared/logger.ts";
import { createRenderGate } from "./render-gate.ts";
import { formatKey, renderRegistry, type MetricsRegistry, type Rendered } from "./render.ts";
import { ScrapeErrorReason, TargetError, type ScrapeTarget } from "./target.ts";

/**
 * Serves a prom-client registry in-process: no HTTP hop, no port opened.
 * Answers exactly `metricsPath` on any port. Its renders take at most
 * `renderPercent` of a core over time, however often a server orders
 * scrapes (render-gate.ts).
 *
 * @internal
 */
export function registryTarget(registry: MetricsRegistry, metricsPath: string, gzipLevel: number, renderPercent: number, log: Logger): ScrapeTarget {
  let saidAt = -Infinity;
  const onSpent = () => {
    const now = Date.now();
    if (now - saidAt < 60_000) return;
    saidAt = now;
    log.warn(`the registry's renders have taken ${renderPercent} % of a core (maxRenderPercent): scrapes get the latest render, at most 1 s old, or wait (said at most once a minute)`, {});
  };
  const gate = createRenderGate<Rendered>({ percent: renderPercent, onSpent, offLoopMs: (r) => r.gzipMs ?? 0 });
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
        const accept = req.headers["accept"];
        const acceptEncoding = req.headers["accept-encoding"];
        // Shared by the scrapes of one format: no scrape's signal stops the gzip of a render another one awaits.
        r = await gate.render(formatKey(accept, acceptEncoding, gzipLevel), () => renderRegistry(registry, accept, acceptEncoding, gzipLevel));
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
