/** The driver's scrape: what Prometheus sends, timed from request to the last body byte. */
import { createHash } from "node:crypto";
import * as http from "node:http";

/** What Prometheus 2.x sends (it prefers OpenMetrics). */
export const PROM_ACCEPT = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

export interface ScrapeResult {
  ms: number;
  bytes: number;
  status: number;
  hash?: string;
}

/** One keep-alive connection, like one Prometheus target. */
export function agent(): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: 1, keepAliveMsecs: 1000 });
}

/** One GET, timed from request to the last body byte. */
export function scrape(ag: http.Agent, port: number, requestPath: string, host: string, opts: { hash?: boolean; encoding?: string } = {}): Promise<ScrapeResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const h = opts.hash ? createHash("sha256") : undefined;
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path: requestPath,
        agent: ag,
        headers: {
          host,
          accept: PROM_ACCEPT,
          "accept-encoding": opts.encoding ?? "identity",
          "user-agent": "Prometheus/2.53.0",
          "x-prometheus-scrape-timeout-seconds": "30",
        },
      },
      (res) => {
        let bytes = 0;
        res.on("data", (c: Buffer) => {
          bytes += c.length;
          h?.update(c);
        });
        res.on("end", () => {
          const ms = performance.now() - t0;
          const want = res.headers["content-length"];
          if (res.statusCode === 200 && want !== undefined && Number(want) !== bytes) {
            return reject(new Error(`short body: ${bytes} of ${want} bytes from ${host}${requestPath}`));
          }
          resolve({ ms, bytes, status: res.statusCode ?? 0, hash: h?.digest("hex") });
        });
        res.on("error", reject);
      },
    );
    req.setTimeout(60_000, () => req.destroy(new Error(`timeout scraping ${requestPath}`)));
    req.on("error", reject);
    req.end();
  });
}
