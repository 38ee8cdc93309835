import type * as http from "node:http";
import type * as http2 from "node:http2";
import { Code, type ConnectRouter, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ScrapeService } from "../../gen/promproxy/v1/scrape_pb.ts";
import { logRefusals } from "../auth/stream/log-refusals.ts";
import { chooseAlpn } from "../auth/tls-credentials.ts";
import { createFront } from "./front.ts";
import { frontPaths } from "./front-paths.ts";
import { explainRpcRefusals } from "./listen/rpc-refusals.ts";
import { listenOnePort, type BoundPort, type ListenOptions } from "./listen/listen.ts";
import { createServerMetrics } from "./metrics.ts";
import { resolveServerOptions, type ServerOptions } from "./options.ts";
import type { ClientInfo } from "./client-info.ts";
import { createActivity, type ServerEvents } from "./activity.ts";
import { createCoordinator } from "./coordinator.ts";
import { createPeers, type Peers } from "./peers/peers.ts";
import { withAssignment } from "./peers/assignment.ts";
import { peerStatePath } from "./peers/peer-state.ts";
import { createScrapeHandler } from "./scrape-service.ts";
import { createFastScrape } from "./grpc-fast/handler.ts";
import { createRefusals } from "./status/refusals.ts";
import { createRefusalLogs } from "../shared/refusal-log.ts";
import { serverContextValues } from "./stream-reset.ts";
import { createErrorGroups } from "./status/error-groups.ts";
import { buildServerStatus, type ServerStatus } from "./status/server-status.ts";

/** A promproxy server: holds client streams and proxies Prometheus' scrapes to them. */
export interface PromproxyServer {
  /**
   * The request handler, for mounting in your own `node:http2` server (use
   * `http2.createSecureServer({ allowHTTP1: true, ALPNCallback: preferHttp1Alpn })`
   * so that Prometheus uses HTTP/1.1 on the same port) or `node:http` server
   * (front only: client streams need HTTP/2).
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
   * Stops the server as a drain: at once `/readyz` answers 503 (`/healthz`
   * stays 200) and new client streams are refused (`Unavailable`); for
   * `drainDelayMs` (default: the `drainDelayMs` option) scrapes are still
   * served, each answer with `Connection: close`; then new scrapes get 503
   * `promproxy: server is shutting down` at once, while those in flight may
   * finish for up to `graceMs` (default 10 000). As soon as none is in flight,
   * connected clients are told to go (`Unavailable`: they reconnect, to
   * another replica) and every connection is closed. Resolves once all is
   * closed; calling it again returns the same promise. It closes only what
   * {@link listen} opened: when you mounted the server in your own servers,
   * close those (and their HTTP/2 sessions) after it.
   */
  close(options?: { graceMs?: number; drainDelayMs?: number }): Promise<void>;
  /** False from the moment the server starts to drain (what `/readyz` says). */
  readonly ready: boolean;
  /** The clients connected right now. */
  clients(): ClientInfo[];
  /** A snapshot for people: clients, vanished clients, last scrapes, recent errors, limits (what `/` shows). */
  status(): ServerStatus;
  /** Listens to the server's events (see {@link ServerEvents}); a listener that throws is logged, never fatal. */
  on<K extends keyof ServerEvents>(event: K, listener: (...args: ServerEvents[K]) => void): PromproxyServer;
  /** Stops listening. */
  off<K extends keyof ServerEvents>(event: K, listener: (...args: ServerEvents[K]) => void): PromproxyServer;
  /**
   * The `Scrape` service alone, as options for any Connect adapter: spread
   * them into `connectNodeAdapter`, `expressConnectMiddleware`
   * (`@connectrpc/connect-express`) or `fastifyConnectPlugin`
   * (`@connectrpc/connect-fastify`). The stream needs HTTP/2.
   */
  readonly connectOptions: {
    routes: (router: ConnectRouter) => void;
    interceptors: Interceptor[];
    /** Takes any request with the connection's `socket` (Node's, Express', Fastify's `req.raw`). */
    contextValues: (req: { readonly socket: unknown }) => ContextValues;
    readMaxBytes: number;
  };
  /**
   * The Prometheus-facing front alone (proxy requests, `/clients`,
   * `/metrics`, `/healthz`, `/readyz`, the status page): a request handler
   * for `node:http` or `node:http2` (compat) that answers every request (404
   * for paths it does not serve). In Express or Connect-style stacks use
   * {@link frontMiddleware} instead.
   */
  readonly frontHandler: (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => void;
  /**
   * The front as middleware `(req, res, next)`: proxy requests (absolute URIs,
   * as Prometheus sends them through `proxy_url`) and the front's own paths
   * under `prefix` (default "": `/clients`, `/metrics`, `/healthz`, `/readyz`,
   * `/status.json`, and `/` when `prefix` is set) go to the front; anything
   * else calls `next()`. Put it first: routers match proxy requests by their
   * path alone, so an app's own `/metrics` route would answer Prometheus'
   * scrapes of clients.
   */
  frontMiddleware(options?: { prefix?: string }): (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
    next: () => void,
  ) => void;
}

/**
 * An `ALPNCallback` for `tls.createServer` / `http2.createSecureServer` that
 * prefers HTTP/1.1 when a peer offers both: Prometheus (Go) offers h2 and then
 * refuses `http://` scrapes through an HTTP/2 proxy. Use it when you mount the
 * server in your own TLS server: `http2.createSecureServer({ allowHTTP1: true,
 * ALPNCallback: preferHttp1Alpn, ... }, server.handler)`.
 */
export const preferHttp1Alpn = ({ protocols }: { protocols: readonly string[] }): string | undefined => chooseAlpn(protocols, true);

const servicePrefix = `/${ScrapeService.typeName}/`;

/** Creates a promproxy server. See {@link ServerOptions} for every option and its default. */
export function createServer(options: ServerOptions = {}): PromproxyServer {
  const o = resolveServerOptions(options);
  const metrics = createServerMetrics(o.registry);
  const errors = createErrorGroups(); // failed scrapes, grouped for the status page
  const activity = createActivity(o.logger, 2 * o.maxClients, errors);
  const coordinator = createCoordinator(o, metrics, activity);
  // With peers: ready once it can serve every client, held or forwarded (every peer's state fetched), or warmed up.
  const peers: Peers | undefined = o.peers.length > 0 ? createPeers(o, coordinator, activity, () => ready()) : undefined;
  const ready = (): boolean => (peers ? coordinator.phase === "serving" && (peers.synced || coordinator.ready) : coordinator.ready);
  metrics.readiness(ready);
  // With replicasPerClient: a replica refuses a client it is not assigned (src/server/peers/assignment.ts).
  const joining = peers && o.replicasPerClient > 0 ? withAssignment(coordinator, o, () => peers.replicaSet.current()) : coordinator;
  const refusals = createRefusals({ logger: o.logger, holder: (name) => coordinator.holder(name), searched: o.replicaCount !== 1 });
  activity.events.on("clientRefused", (r) => refusals.record(r));
  const ports: BoundPort[] = [];
  let closing: Promise<void> | undefined;

  const startedAt = new Date();
  const refusalLogs = createRefusalLogs(o.logger, 60_000, "info");
  const scrape = createScrapeHandler({ options: o, coordinator: joining, metrics, activity, replicaSet: peers?.replicaSet, refusalLogs });
  const connectOptions: PromproxyServer["connectOptions"] = {
    routes: (router) => router.service(ScrapeService, { scrape }),
    // The peer (address, TLS client certificate) for auth interceptors such as mtlsAuth.
    contextValues: serverContextValues,
    interceptors: [
      logRefusals(o.logger, (code, reason, peer) => {
        metrics.sessions.inc({ result: Code[code] ?? "unknown" });
        activity.emit("clientRefused", { code: Code[code] ?? "Unknown", reason, peer });
      }),
      ...o.interceptors,
    ],
    // A chunk or a hello, whichever may be larger, plus the frame around it; a result head's headers fit in the margin.
    readMaxBytes: Math.max(o.maxChunkBytes, o.maxHelloBytes) + 64 * 1024,
  };
  const connect = connectNodeAdapter(connectOptions);
  // The Scrape stream's gRPC protocol on a path of our own (src/server/grpc-fast/); Connect serves the rest.
  const fast = o.fastPath
    ? createFastScrape({ options: o, coordinator: joining, replicaSet: peers?.replicaSet, metrics, activity, refusalLogs, interceptors: connectOptions.interceptors, contextValues: connectOptions.contextValues, readMaxBytes: connectOptions.readMaxBytes, scrape })
    : undefined;
  const status = (): ServerStatus => ({ ...buildServerStatus(o, coordinator, activity, startedAt, refusals, errors), ready: ready() });
  // Answers cut after their first bytes left (a client's result failed late): said once a minute per client at most.
  const cutLog = createRefusalLogs(o.logger, 60_000, "warn", 256, "cut");
  const front = createFront({ options: o, coordinator, metrics, activity, startedAt, status, peers, ready, cutLog });

  const handler: PromproxyServer["handler"] = (req, res) => {
    if (req.url?.startsWith(servicePrefix)) {
      // Mounted in a user's http2 server, streams arrive through the compat API: the fast path takes the raw stream.
      if (fast && "stream" in req && fast(req.stream, req.headers)) return;
      explainRpcRefusals(req, res, `${servicePrefix}Scrape`); // Connect's 404/405/415/505 have no body of their own
      connect(req, res);
    } else {
      front.handle(req, res);
    }
  };

  async function close({ graceMs = 10_000, drainDelayMs = o.drainDelayMs }: { graceMs?: number; drainDelayMs?: number } = {}) {
    const started = Date.now();
    const drained = coordinator.shutdown({ drainDelayMs, graceMs });
    // Kept-alive connections that carry no request now would bring the next one only after the drain delay, to be
    // refused: end them, so that Prometheus dials again, through its load balancer to a ready replica. Those in use
    // end after their answer (Connection: close).
    for (const p of ports) p.closeIdleConnections();
    await drained;
    const left = Math.max(100, started + drainDelayMs + graceMs - Date.now());
    await Promise.all(ports.splice(0).map((p) => p.close(left)));
    refusals.close();
    refusalLogs.close();
    cutLog.close();
    peers?.close();
  }

  return {
    handler,
    async listen(lo = {}) {
      const bound = await listenOnePort(lo, {
        h1Handler: handler,
        h2Handler: handler,
        h2StreamHandler: fast,
        takesBody: (path) => path.startsWith(servicePrefix), // the RPCs; nothing else reads a body
        logger: o.logger,
        maxClients: o.maxClients,
        onRefused: (limit) => metrics.connectionsRefused.inc({ limit }),
      });
      ports.push(bound);
      o.logger.info("listening", { host: lo.host ?? "127.0.0.1", port: bound.port, tls: lo.tls ? true : undefined });
      return { port: bound.port };
    },
    close(co) {
      closing ??= close(co);
      return closing;
    },
    get ready() {
      return ready();
    },
    clients: () => coordinator.clients(),
    status,
    on(event, listener) {
      activity.events.on(event, listener as never);
      return this;
    },
    off(event, listener) {
      activity.events.off(event, listener as never);
      return this;
    },
    connectOptions,
    frontHandler: (req, res) => front.handle(req, res),
    frontMiddleware({ prefix = "" } = {}) {
      // The front's own paths; its "/" (the status page) only under a prefix: without one, "/" is the application's.
      const own = new Set<string>([...frontPaths.filter((p) => p !== "/"), ...(peers ? [peerStatePath] : []), ...(prefix ? ["/", ""] : [])]);
      return (req, res, next) => {
        const url = req.url ?? "/";
        if (!url.startsWith("/")) return front.handle(req, res);
        if (!url.startsWith(`${prefix}/`) && url !== prefix && !url.startsWith(`${prefix}?`)) return next();
        const rest = url.slice(prefix.length);
        const q = rest.indexOf("?");
        if (!own.has(q < 0 ? rest : rest.slice(0, q))) return next();
        req.url = rest.startsWith("/") ? rest : `/${rest}`;
        front.handle(req, res);
      };
    },
  };
}
