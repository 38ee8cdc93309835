/**
 * The options of the registry a client serves in-process (documented on `ClientOptions`, which extends these), and
 * their check: `resolveRegistryOptions` fills in each default or throws a TypeError naming the option.
 */
import { positiveNumber, whole } from "./option-checks.ts";
import type { MetricsRegistry } from "./targets/render.ts";

/** The registry's options of {@link ClientOptions}. */
export interface RegistryOptions {
  /**
   * The prom-client registry to serve (on any port, at `metricsPath`).
   * An `AggregatorRegistry` in a cluster's primary serves every worker's
   * metrics (`clusterMetrics()`; workers call `clusterWorker()`).
   * Default: prom-client's global `register`, unless `targets` are given (then no registry).
   */
  registry?: MetricsRegistry;
  /** Path the registry is served at. Default "/metrics". */
  metricsPath?: string;
  /**
   * Most of one core the registry's renders take over time, in percent (1 - 100). A scrape that comes while a
   * render of its format runs shares it; past the budget a scrape gets the latest render of its format (at most
   * 1 s old) or waits (1 s at most): fresh renders while they take under the budget (not 200 ms a second).
   * 100: every scrape renders. Default 10.
   */
  maxRenderPercent?: number;
  /**
   * Most scrapes of the registry served a second, whoever orders them, all servers together: a token bucket holding
   * one second's worth (at least two), so a burst of this many passes at once. Past it a scrape is answered busy
   * (HTTP 503) with neither a render nor a body: `maxRenderPercent` bounds the renders, this the bodies sent (a
   * server ordering as fast as it can got a recent render's whole body for every order, 46 MB/s for 5,000 series).
   * Prometheus scrapes once per interval, each HA replica once. A positive number up to 1 000 000 (0.5: one scrape
   * every 2 s). Default 10, as a forwarded target's `maxScrapesPerSecond`.
   */
  maxRegistryScrapesPerSecond?: number;
  /** gzip level (1-9) for results when Prometheus accepts gzip; 0 disables gzip. Default 1 (fastest). */
  gzipLevel?: number;
}

/** The registry's options checked, with their defaults. @internal */
export function resolveRegistryOptions(o: RegistryOptions) {
  return {
    registry: o.registry,
    metricsPath: o.metricsPath ?? "/metrics",
    maxRenderPercent: whole(o.maxRenderPercent, "maxRenderPercent", 10, 1, 100),
    maxRegistryScrapesPerSecond: positiveNumber(o.maxRegistryScrapesPerSecond, "maxRegistryScrapesPerSecond", 10, 1_000_000),
    gzipLevel: whole(o.gzipLevel, "gzipLevel", 1, 0, 9),
  };
}
