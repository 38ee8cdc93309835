/**
 * How often one exporter is asked (a forwarded target's option
 * `maxScrapesPerSecond`), whoever orders the scrapes: a token bucket that
 * fills at `perSecond` tokens a second and holds one second's worth (at least
 * two tokens: the two Prometheus of an HA pair scrape at nearly the same
 * moment, every interval), full at the start. Each scrape sent to the exporter takes a
 * token; with none left the scrape is refused before the exporter is asked.
 * So a burst of `perSecond` scrapes passes at once, and over time no more
 * than `perSecond` a second do.
 *
 * @internal
 */
import { performance } from "node:perf_hooks";

export interface ScrapeRateOptions {
  /** Tokens added a second; a positive number (0.5: one scrape every 2 s). */
  perSecond: number;
  /** The clock, in ms. Default `performance.now`. */
  now?: () => number;
}

/** @internal */
export interface ScrapeRate {
  /** Takes a token if there is one; false when the bucket is empty. */
  take(): boolean;
}

/** @internal */
export function createScrapeRate(o: ScrapeRateOptions): ScrapeRate {
  const now = o.now ?? (() => performance.now());
  const capacity = Math.max(2, o.perSecond);
  const perMs = o.perSecond / 1000;
  let tokens = capacity;
  let last = now();
  return {
    take() {
      const t = now();
      // A clock that went backwards adds nothing.
      if (t > last) tokens = Math.min(capacity, tokens + (t - last) * perMs);
      last = Math.max(last, t);
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    },
  };
}
