import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Header } from "../../gen/promproxy/v1/scrape_pb.ts";
import { discoveryOf } from "./discovery.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { ResolvedServerOptions } from "./options.ts";
import type { ScrapeFailure, ScrapeHandle } from "./session.ts";
import type { Sessions } from "./sessions.ts";

type Req = IncomingMessage | Http2ServerRequest;
/** Both response kinds offer what the front uses; it types them as HTTP/1.1 responses. */
type Res = ServerResponse;

/** @internal */
export interface FrontDeps {
  options: ResolvedServerOptions;
  sessions: Sessions;
  metrics: ServerMetrics;
}

/** Request headers passed on to the client with an order. */
const forwardedRequestHeaders = ["accept", "accept-encoding", "user-agent", "x-prometheus-scrape-timeout-seconds"];
/** Response headers relayed from the client's result head. */
const relayedResponseHeaders = new Set(["content-type", "content-encoding", "content-length"]);

/**
 * The HTTP front: turns Prometheus' `proxy_url` requests into scrape orders
 * and serves `/clients` (http_sd), `/metrics` and `/healthz`.
 *
 * @internal
 */
export function createFront(deps: FrontDeps) {
  const { options, sessions, metrics } = deps;
  let inFlight = 0;

  function reply(res: Res, status: number, message: string, headers: Record<string, string | string[]> = {}) {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // A result head may have set headers that do not describe this error body.
    for (const h of relayedResponseHeaders) res.removeHeader(h);
    const body = `promproxy: ${message}\n`;
    res.writeHead(status, {
      "content-type": "text/plain; charset=utf-8",
      "content-length": Buffer.byteLength(body),
      "cache-control": "no-store",
      ...headers,
    });
    res.end(body);
  }

  async function local(req: Req, res: Res, path: string) {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return reply(res, 405, `method ${req.method} not allowed on ${path}`, { allow: "GET, HEAD" });
    }
    const q = path.indexOf("?");
    switch (q < 0 ? path : path.slice(0, q)) {
      case "/clients": {
        const body = JSON.stringify(discoveryOf(sessions.all()));
        res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body), "cache-control": "no-store" });
        return req.method === "HEAD" ? res.end() : res.end(body);
      }
      case "/metrics": {
        const body = await options.registry.metrics();
        res.writeHead(200, { "content-type": options.registry.contentType, "content-length": Buffer.byteLength(body) });
        return req.method === "HEAD" ? res.end() : res.end(body);
      }
      case "/healthz":
        res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
        return req.method === "HEAD" ? res.end() : res.end("ok\n");
      default:
        return reply(
          res,
          404,
          `no route ${JSON.stringify(path.slice(0, 200))}: scrape clients through this server as an HTTP proxy (proxy_url); it serves /clients, /metrics and /healthz`,
        );
    }
  }

  function proxy(req: Req, res: Res, uri: string) {
    const started = performance.now();
    const done = (outcome: string) => {
      metrics.scrapes.inc({ outcome });
      metrics.duration.observe({ outcome }, (performance.now() - started) / 1000);
    };
    const fail = (status: number, outcome: string, message: string, headers?: Record<string, string>) => {
      done(outcome);
      reply(res, status, message, headers);
    };

    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      return fail(400, "bad_request", `not a valid absolute URI: ${JSON.stringify(uri.slice(0, 200))}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return fail(400, "bad_request", `unsupported scheme ${JSON.stringify(url.protocol)}: proxy requests must be http:// URIs`);
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return fail(405, "bad_request", `method ${req.method} not allowed: only GET and HEAD are proxied`, { allow: "GET, HEAD" });
    }
    const name = url.hostname.endsWith(".") ? url.hostname.slice(0, -1) : url.hostname;
    const session = sessions.get(name);
    if (!session) return fail(404, "unknown_client", `no client "${name.slice(0, 253)}" connected`);

    let scheme = "http";
    let search = url.search;
    const s = url.searchParams.getAll("_scheme");
    if (s.length > 0) {
      if (s.length > 1 || (s[0] !== "http" && s[0] !== "https")) {
        return fail(400, "bad_request", `bad _scheme ${JSON.stringify(s.join(","))}: use http or https`);
      }
      scheme = s[0] as string;
      url.searchParams.delete("_scheme");
      search = url.search;
    }
    const path = url.pathname + search;
    const port = url.port === "" ? 0 : Number(url.port);
    if (!session.serves(port, path)) {
      return fail(404, "not_found", `client "${name}" serves nothing at port ${port || "(none)"} path ${JSON.stringify(url.pathname.slice(0, 200))}`);
    }

    const timeout = scrapeTimeoutMs(req.headers["x-prometheus-scrape-timeout-seconds"], options);
    if (typeof timeout === "string") return fail(400, "bad_request", timeout);

    const headers: Header[] = [];
    for (const h of forwardedRequestHeaders) {
      const v = req.headers[h];
      if (typeof v === "string") headers.push({ $typeName: "promproxy.v1.Header", name: h, value: v });
    }
    const timedOut = () => `scrape of "${name}" timed out after ${+(timeout / 1000).toFixed(3)}s`;
    const head = req.method === "HEAD";
    let bytes = 0;
    let pending = 0;
    let waitingDrain = false;
    let finished = false;
    const grantAt = Math.max(options.maxChunkBytes, options.creditBytes >> 2);
    let handle: ScrapeHandle | undefined;

    const cleanup = () => {
      finished = true;
      clearTimeout(timer);
      inFlight--;
      metrics.inFlight.dec();
      res.off("close", onClose);
    };
    const onDrain = () => {
      waitingDrain = false;
      if (finished || pending === 0) return;
      handle?.grant(pending);
      pending = 0;
    };
    const onClose = () => {
      if (finished) return;
      cleanup();
      handle?.cancel("prometheus went away");
      done("prometheus_gone");
    };

    handle = session.scrape(
      {
        port,
        path,
        scheme,
        headers,
        // Ask the client to finish a little before we give up, so its own error wins the race.
        timeoutMs: Math.max(1, timeout - Math.min(500, timeout * 0.1)),
      },
      {
        onHead(status, hs) {
          if (finished) return;
          res.statusCode = status;
          for (const h of hs) if (relayedResponseHeaders.has(h.name)) res.setHeader(h.name, h.value);
        },
        onChunk(data) {
          if (finished) return;
          bytes += data.byteLength;
          if (bytes > options.maxResponseBytes) {
            cleanup();
            handle?.cancel("response too large");
            return fail(502, "too_large", `scrape of "${name}" exceeds the maximum response size of ${options.maxResponseBytes} bytes`);
          }
          metrics.bytes.inc(data.byteLength);
          const ok = head ? true : res.write(data);
          pending += data.byteLength;
          if (!ok) {
            if (!waitingDrain) {
              waitingDrain = true;
              res.once("drain", onDrain);
            }
          } else if (!waitingDrain && pending >= grantAt) {
            handle?.grant(pending);
            pending = 0;
          }
        },
        onEnd(failure?: ScrapeFailure) {
          if (finished) return;
          cleanup();
          res.off("drain", onDrain);
          if (failure) {
            // The client was asked to give up a little early; its timeout is the deadline row of the error table.
            const message = failure.status === 504 ? `${timedOut()}: ${failure.message}` : failure.message;
            return fail(failure.status, failure.outcome, message);
          }
          done("success");
          res.end();
        },
      },
    );
    if (!handle) {
      return fail(503, "busy", `client "${name}" has ${options.maxScrapesInFlight} scrapes in flight, the maximum`);
    }
    inFlight++;
    metrics.inFlight.inc();
    res.on("close", onClose);
    const timer = setTimeout(() => {
      if (finished) return;
      cleanup();
      handle?.cancel("deadline exceeded");
      fail(504, "timeout", timedOut());
    }, timeout);
  }

  /** Handles one request that is not for the Scrape service. */
  function handle(req: Req, response: ServerResponse | Http2ServerResponse): void {
    const res = response as Res;
    const uri = req.url ?? "/";
    // Prometheus-side auth (src/auth/prom-auth.ts) for proxied scrapes, /clients and /metrics.
    const gate = options.promAuth?.check(req, uri);
    if (gate) {
      let gone = false;
      res.once("close", () => (gone = true));
      gate.then(
        (denial) => {
          if (gone) return;
          if (!denial) return route(req, res, uri);
          if (!uri.startsWith("/")) metrics.scrapes.inc({ outcome: denial.outcome });
          reply(res, denial.status, denial.message, denial.headers);
        },
        (e: unknown) => {
          options.logger.error("auth check failed", { error: String(e) });
          reply(res, 500, "internal error");
        },
      );
      return;
    }
    route(req, res, uri);
  }

  function route(req: Req, res: Res, uri: string): void {
    if (uri.startsWith("/")) {
      local(req, res, uri).catch((e: unknown) => {
        options.logger.error("request failed", { path: uri.slice(0, 200), error: String(e) });
        reply(res, 500, "internal error");
      });
      return;
    }
    proxy(req, res, uri);
  }

  return {
    handle,
    /** Proxied scrapes in flight. */
    inFlight: () => inFlight,
  };
}

/**
 * The scrape timeout from Prometheus' header, clamped to the maximum; the
 * default without a header. A string is an error message (HTTP 400).
 *
 * @internal
 */
export function scrapeTimeoutMs(
  header: string | string[] | undefined,
  o: Pick<ResolvedServerOptions, "defaultScrapeTimeoutMs" | "maxScrapeTimeoutMs">,
): number | string {
  if (header === undefined) return o.defaultScrapeTimeoutMs;
  const raw = Array.isArray(header) ? header.join(",") : header;
  const t = raw.trim();
  // A decimal number of seconds, as Prometheus writes it (e.g. "10", "9.5", "1e3").
  if (!/^\+?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t) || !(Number(t) > 0)) {
    return `bad X-Prometheus-Scrape-Timeout-Seconds ${JSON.stringify(raw.slice(0, 40))}: want a positive number of seconds`;
  }
  return Math.min(Number(t) * 1000, o.maxScrapeTimeoutMs);
}
