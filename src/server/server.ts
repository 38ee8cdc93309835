import type * as http from "node:http";
import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ScrapeService } from "../../gen/promproxy/v1/scrape_pb.ts";
import { logRefusals } from "../auth/log-refusals.ts";
import { peerContextValues } from "../auth/peer.ts";
import { createFront } from "./front.ts";
import { listenOnePort, type BoundPort, type ListenOptions } from "./listen.ts";
import { createServerMetrics } from "./metrics.ts";
import { resolveServerOptions, type ServerOptions } from "./options.ts";
import { createScrapeHandler } from "./scrape-service.ts";
import type { ClientInfo } from "./session.ts";
import { createSessions } from "./sessions.ts";

/** A promproxy server: holds client streams and proxies Prometheus' scrapes to them. */
export interface PromproxyServer {
  /**
   * The request handler, for mounting in your own `node:http2` server (use
   * `http2.createSecureServer({ allowHTTP1: true })` so that Prometheus can use
   * HTTP/1.1 on the same port) or `node:http` server (front only: client
   * streams need HTTP/2).
   */
  readonly handler: (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => void;
  /**
   * Listens on one TCP port for both HTTP/1.1 (Prometheus, curl) and HTTP/2
   * (client streams), in cleartext or, with `tls`, TLS (ALPN). Resolves with
   * the bound port.
   */
  listen(options?: ListenOptions): Promise<{ port: number }>;
  /**
   * Stops the server: refuses new clients, lets scrapes in flight finish for up
   * to `graceMs` (default 10 000), tells connected clients to go away
   * (`Unavailable`, so they reconnect, possibly to another replica), and closes
   * every connection. Resolves once all is closed.
   */
  close(options?: { graceMs?: number }): Promise<void>;
  /** The clients connected right now. */
  clients(): ClientInfo[];
}

const servicePrefix = `/${ScrapeService.typeName}/`;

/** Creates a promproxy server. See {@link ServerOptions} for every option and its default. */
export function createServer(options: ServerOptions = {}): PromproxyServer {
  const o = resolveServerOptions(options);
  const metrics = createServerMetrics(o.registry);
  const sessions = createSessions(o.maxClients);
  let accepting = true;
  const ports: BoundPort[] = [];

  const scrape = createScrapeHandler({ options: o, sessions, metrics, accepting: () => accepting });
  const connect = connectNodeAdapter({
    routes: (router) => router.service(ScrapeService, { scrape }),
    // The peer (address, TLS client certificate) for auth interceptors such as mtlsAuth.
    contextValues: peerContextValues,
    interceptors: [logRefusals(o.logger, (code) => metrics.sessions.inc({ result: Code[code] ?? "unknown" })), ...o.interceptors],
    // A chunk plus the frame around it; a result head's headers fit in the margin.
    readMaxBytes: o.maxChunkBytes + 64 * 1024,
  });
  const front = createFront({ options: o, sessions, metrics });

  const handler: PromproxyServer["handler"] = (req, res) => {
    if (req.url?.startsWith(servicePrefix)) {
      connect(req, res);
    } else {
      front.handle(req, res);
    }
  };

  // One timer pings every stream and ends the ones that went quiet.
  const heartbeat = setInterval(() => {
    const now = Date.now();
    for (const s of sessions.all()) {
      if (now - s.lastHeard > o.heartbeatTimeoutMs) {
        o.logger.warn("client went quiet, closing its stream", { name: s.info.name, session: s.info.sessionId });
        s.close(new ConnectError(`nothing heard from the client for ${o.heartbeatTimeoutMs / 1000}s`, Code.DeadlineExceeded));
      } else {
        s.outbound.push({ frame: { case: "ping", value: { nonce: BigInt(now) } } });
      }
    }
  }, o.heartbeatIntervalMs);
  heartbeat.unref();

  return {
    handler,
    async listen(lo = {}) {
      const bound = await listenOnePort(lo, {
        h1Handler: handler,
        h2Handler: handler,
        logger: o.logger,
      });
      ports.push(bound);
      o.logger.info("listening", { host: lo.host ?? "127.0.0.1", port: bound.port, tls: lo.tls ? true : undefined });
      return { port: bound.port };
    },
    async close({ graceMs = 10_000 } = {}) {
      accepting = false;
      clearInterval(heartbeat);
      const deadline = Date.now() + graceMs;
      while (front.inFlight() > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      for (const s of [...sessions.all()]) {
        s.close(new ConnectError("the server is shutting down", Code.Unavailable));
      }
      await Promise.all(ports.splice(0).map((p) => p.close(Math.max(100, deadline - Date.now()))));
    },
    clients() {
      return [...sessions.all()].map((s) => ({ ...s.info, labels: { ...s.info.labels }, scrapesInFlight: s.inFlight }));
    },
  };
}
