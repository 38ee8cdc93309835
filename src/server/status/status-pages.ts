/**
 * The front's own pages that cost more than a lookup: the status page `/`,
 * `/status.json` and the server's `/metrics`. Each body is built at most once
 * per {@link pagesMaxAgeMs} and served from memory in between, so that the
 * work they cost the server is bounded by the clock, not by how often they
 * are requested: a tab left open, a dashboard polling every 100 ms or four
 * scripts in a loop cost what one request a second costs (plus writing the
 * bytes). `/clients` is kept as its clients' encoded pieces, never joined
 * (src/server/discovery.ts); it is not built here.
 *
 * The page and the JSON come from one snapshot, so they always agree; the
 * snapshot carries its time (`now`), and ages on the page are reckoned from
 * it. A render of `/metrics` that fails is not kept.
 *
 * @internal
 */
import type { StatusJson } from "./status-json.ts";
import { statusPage } from "./status-page.ts";

/** How long a built body is served before the next request builds it again: 1 s. */
export const pagesMaxAgeMs = 1_000;

/** @internal */
export interface StatusPages {
  /** The status page's HTML. */
  page(): Buffer;
  /** `/status.json`. */
  json(): Buffer;
  /** The registry's exposition. */
  metrics(): Promise<Buffer>;
  /** How many times each was built so far (snapshots feed both the page and the JSON). */
  readonly builds: { snapshots: number; pages: number; jsons: number; metrics: number };
}

export function createStatusPages(o: {
  snapshot: () => StatusJson;
  registry: { metrics(): Promise<string> };
  maxAgeMs?: number;
  /** The clock (ms), for tests. */
  now?: () => number;
}): StatusPages {
  const maxAgeMs = o.maxAgeMs ?? pagesMaxAgeMs;
  const now = o.now ?? (() => performance.now());
  const builds = { snapshots: 0, pages: 0, jsons: 0, metrics: 0 };
  let current: { at: number; status: StatusJson; page?: Buffer; json?: Buffer } | undefined;
  let metrics: { at: number; body: Promise<Buffer> } | undefined;

  const fresh = () => {
    const t = now();
    if (!current || t - current.at >= maxAgeMs) {
      current = { at: t, status: o.snapshot() };
      builds.snapshots++;
    }
    return current;
  };

  return {
    page() {
      const c = fresh();
      if (!c.page) {
        c.page = Buffer.from(statusPage(c.status));
        builds.pages++;
      }
      return c.page;
    },
    json() {
      const c = fresh();
      if (!c.json) {
        c.json = Buffer.from(JSON.stringify(c.status));
        builds.jsons++;
      }
      return c.json;
    },
    metrics() {
      const t = now();
      if (!metrics || t - metrics.at >= maxAgeMs) {
        const body = o.registry.metrics().then((text) => Buffer.from(text));
        const entry = { at: t, body };
        metrics = entry;
        builds.metrics++;
        body.catch(() => {
          if (metrics === entry) metrics = undefined;
        });
      }
      return metrics.body;
    },
    builds,
  };
}
