import type { Logger } from "../../shared/logger.ts";
import { createRenderGate } from "./render-gate.ts";
import { formatKey, renderRegistry, type MetricsRegistry, type Rendered } from "./render.ts";
import { createScrapeRate } from "./scrape-rate.ts";
import { ScrapeErrorReason, TargetError, type ScrapeTarget } from "./target.ts";

/** @internal */
export interface RegistryTargetOptions {
  metricsPath: string;
  gzipLevel: number;
  /** Most of a core the renders take (`maxRenderPercent`). */
  renderPercent: number;
  /** Most scrapes served a second (`maxRegistryScrapesPerSecond`). */
  scrapesPerSecond: number;
  log: Logger;
  /** The clock of the scrapes-per-second bucket, in ms. Default `performance.now`. */
  now?: () => number;
}

/**
 * Serves a prom-client registry in-process: no HTTP hop, no port opened.
 * Answers exactly `metricsPath` on any port. Its renders take at most
 * `renderPercent` of a core over time, however often a server orders
 * scrapes (render-gate.ts); at most `scrapesPerSecond` scrapes a second get a
 * body (scrape-rate.ts): past the render budget a recent render serves the
 * scrapes, and without this every order got that render's whole body again
 * (round 18b: 9,114 bodies of 5,000 series in 25 s, 46 MB/s, 26 % of a core).
 *
 * @internal
 */
export function registryTarget(registry: MetricsRegistry, o: RegistryTargetOptions): ScrapeTarget {
  const { metricsPath, gzipLevel, renderPercent, scrapesPerSecond, log } = o;
  const oncePerMinute = () => {
    let saidAt = -Infinity;
    return (message: string) => {
      const now = Date.now();
      if (now - saidAt < 60_000) return;
      saidAt = now;
      log.warn(`${message} (said at most once a minute)`, {});
    };
  };
  const sayRendered = oncePerMinute();
  const onSpent = () => sayRendered(`the registry's renders have taken ${renderPercent} % of a core (maxRenderPercent): scrapes get the latest render, at most 1 s old, or wait`);
  const gate = createRenderGate<Rendered>({ percent: renderPercent, onSpent, offLoopMs: (r) => r.gzipMs ?? 0 });
  const rate = createScrapeRate({ perSecond: scrapesPerSecond, now: o.now });
  const tooMany = `the registry was asked for more than ${scrapesPerSecond} scrapes a second, its maximum (maxRegistryScrapesPerSecond); not served`;
  const sayLimited = oncePerMinute();
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
      if (!rate.take()) {
        sayLimited(`${tooMany}: scrapes past it are answered busy`);
        throw new TargetError(ScrapeErrorReason.BUSY, tooMany);
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
