import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Activity } from "./activity.ts";
import type { Coordinator } from "./coordinator.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { ResolvedServerOptions } from "./options.ts";
import { frontPathsText, isFrontPath, type FrontPath } from "./front-paths.ts";
import { answerInSlices } from "./listen/answer-slices.ts";
import type { AnswerBody } from "./listen/pieced-body.ts";
import { pacedDocument } from "./paced-document.ts";
import { readProxyRequest } from "./proxy-request.ts";
import { relayScrape, reply } from "./relay.ts";
import { buildServerStatus, type ServerStatus } from "./status/server-status.ts";
import { statusJson } from "./status/status-json.ts";
import { statusPageHeaders } from "./status/status-page.ts";
import { createStatusPages } from "./status/status-pages.ts";
import type { Peers } from "./peers/peers.ts";
import type { RefusalLogs } from "../shared/refusal-log.ts";
import { isPeerStatePath } from "./peers/peer-state.ts";
import { forwardedForHeader, notHeldHeader, peerAnswerHeader, type PeerCaller } from "./peers/peer-auth.ts";

type Req = IncomingMessage | Http2ServerRequest;

/** Why `/readyz` says no, by phase. */
const notReady = {
  serving: "warming up: clients are still finding this replica",
  draining: "the server is shutting down",
  refusing: "the server is shutting down",
  closed: "the server is closed",
} as const;
/** Both response kinds offer what the front uses; it types them as HTTP/1.1 responses. */
type Res = ServerResponse;

/** @internal */
export interface FrontDeps {
  options: ResolvedServerOptions;
  coordinator: Coordinator;
  metrics: ServerMetrics;
  activity: Activity;
  /** When the server started, for the status page. Default: when the front was created. */
  startedAt?: Date;
  /** The status snapshot the page shows. Default: one without refusals. */
  status?: () => ServerStatus;
  /** The other replicas (src/server/peers/): forwarding, the fleet's `/clients`. Default none. */
  peers?: Peers;
  /** What `/readyz` says. Default: the coordinator's readiness. */
  ready?: () => boolean;
  /** Where answers cut after their first bytes left are logged (src/server/relay.ts, `cutLog`). Default: not logged. */
  cutLog?: RefusalLogs;
}

/**
 * The HTTP front, a thin adapter: Prometheus-side auth, then `proxy_url`
 * requests become scrapes (src/server/relay.ts) and local paths are served:
 * `/clients` (http_sd), `/metrics`, `/healthz` (liveness), `/readyz`
 * (readiness: 503 once the server drains), and the status page `/` with its
 * `/status.json` (src/server/status/status-page.ts).
 *
 * @internal
 */
export function createFront({ options, coordinator, metrics, activity, startedAt = new Date(), status, peers, ready = () => coordinator.ready, cutLog }: FrontDeps) {
  const relay = { coordinator, metrics, activity, grantAt: Math.max(options.maxChunkBytes, options.creditBytes >> 2), creditBytes: options.creditBytes, cutLog };
  /** A proxied request refused before any client was asked. */
  const refused = (outcome: string, message: string) => {
    metrics.scrapes.inc({ outcome });
    activity.emit("scrapeFinished", { name: "", outcome, at: new Date(), durationMs: 0, bytes: 0, message });
  };

  const snapshot = status ?? (() => buildServerStatus(options, coordinator, activity, startedAt));
  // Built at most once a second whatever the request rate (src/server/status/status-pages.ts).
  const pages = createStatusPages({ snapshot: () => statusJson(snapshot()), registry: options.registry });
  // `/clients` as its pieces, never joined (src/server/discovery.ts); a new version at most once per 1 ms for
  // every 10 KB of it (src/server/paced-document.ts).
  const clients = pacedDocument(() => (peers ? peers.discovery() : coordinator.discovery()), (d) => d.bytes);

  async function local(req: Req, res: Res, path: string, peer?: PeerCaller) {
    if (peer && peers && isPeerStatePath(path)) return peers.serveState(req, res, peer.nonce);
    if (req.method !== "GET" && req.method !== "HEAD") {
      return reply(res, 405, `method ${req.method} not allowed on ${path.slice(0, 200)}`, { allow: "GET, HEAD" });
    }
    const q = path.indexOf("?");
    const send = (status: number, type: string, body: string | AnswerBody, bytes = typeof body === "string" ? Buffer.byteLength(body) : body.length, headers: Readonly<Record<string, string>> = {}) => {
      const head = { ...headers, "content-type": type, "content-length": bytes, "cache-control": "no-store" };
      if (req.method === "HEAD") return res.writeHead(status, head).end();
      // Over HTTP/2: in slices, under the connection's cap on answers it has not read (src/server/listen/answer-slices.ts).
      answerInSlices(res, status, head, typeof body === "string" ? Buffer.from(body) : body, (why) => reply(res, 503, why));
    };
    const p = q < 0 ? path : path.slice(0, q);
    if (!isFrontPath(p)) {
      return reply(res, 404, `no route ${JSON.stringify(path.slice(0, 200))}: scrape clients through this server as an HTTP proxy (proxy_url); it serves ${frontPathsText}`);
    }
    const serve: Record<FrontPath, () => unknown> = {
      "/clients": () => {
        const { body, bytes } = clients();
        return send(200, "application/json", body, bytes);
      },
      "/metrics": async () => send(200, options.registry.contentType, await pages.metrics()),
      "/": () => send(200, "text/html; charset=utf-8", pages.page(), undefined, statusPageHeaders),
      "/status.json": () => send(200, "application/json", pages.json(), undefined, { "x-content-type-options": "nosniff" }),
      "/healthz": () => send(200, "text/plain; charset=utf-8", "ok\n"),
      "/readyz": () =>
        ready()
          ? send(200, "text/plain; charset=utf-8", "ready\n")
          : send(503, "text/plain; charset=utf-8", `promproxy: not ready: ${peers && coordinator.phase === "serving" ? peers.waiting() : notReady[coordinator.phase]}\n`),
    };
    await serve[p]();
  }

  function proxy(req: Req, res: Res, uri: string, peer?: PeerCaller) {
    const r = readProxyRequest(req, uri, options);
    if ("status" in r) {
      refused("bad_request", r.message);
      return reply(res, r.status, r.message, r.headers);
    }
    // Not held here: a peer that holds it answers (one hop: a forwarded request is answered from local state only).
    const serving = coordinator.phase === "serving" || coordinator.phase === "draining";
    const held = coordinator.holder(r.name) !== undefined;
    if (peer === undefined && peers && serving && !held && peers.forward(req, res, r, uri)) return;
    // A forwarded scrape for a client not held here (any more): the replica that forwarded it asks the next holder.
    if (peer !== undefined && !held) res.setHeader(notHeldHeader, "1");
    // Whatever this replica answers to a forwarded scrape is signed: no one else at its address can pose as it.
    if (peer !== undefined && peers) res.setHeader(peerAnswerHeader, peers.signForwardAnswer(peer.nonce));
    // A forwarded scrape never waits in line for a place here: it would hold one of the peer's connections meanwhile
    // (it may take a stalled answer's place, judged by its Prometheus' address). One that came straight from
    // Prometheus while this replica warms up is told so (503) if its client is unknown.
    const remote = peer !== undefined ? peers?.forwardedFor(peer.nonce, req.headers[forwardedForHeader]) : undefined;
    const asked = peer !== undefined ? { ...r, noWait: true, ...(remote ? { remote } : {}) } : serving && !ready() ? { ...r, warming: true } : r;
    relayScrape(relay, asked, res, req.method === "HEAD");
  }

  function route(req: Req, res: Res, uri: string, peer?: PeerCaller): void {
    if (uri.startsWith("/")) {
      local(req, res, uri, peer).catch((e: unknown) => {
        options.logger.error("request failed", { path: uri.slice(0, 200), error: String(e) });
        reply(res, 500, "internal error");
      });
      return;
    }
    proxy(req, res, uri, peer);
  }

  /** Handles one request that is not for the Scrape service. */
  function handle(req: Req, response: ServerResponse | Http2ServerResponse): void {
    const res = response as Res;
    const uri = req.url ?? "/";
    // Draining: still served, but Prometheus is to re-dial (through a load balancer, to another replica).
    if (coordinator.phase !== "serving" && req.httpVersionMajor === 1) res.setHeader("connection", "close");
    // A peer's request is signed with the peer secret instead; Prometheus-side auth was checked where it entered.
    const peer = peers?.authenticate(req, uri);
    if (peer && "status" in peer) return reply(res, peer.status, peer.message);
    if (peer) return route(req, res, uri, peer);
    // Prometheus-side auth (src/auth/prometheus/prom-auth.ts) for proxied scrapes, /clients (and the status page) and /metrics.
    const gate = options.promAuth?.check(req, uri);
    if (!gate) return route(req, res, uri);
    let gone = false;
    res.once("close", () => (gone = true));
    gate
      .then((denial) => {
        if (gone) return;
        if (!denial) return route(req, res, uri);
        if (!uri.startsWith("/")) refused(denial.outcome, denial.message);
        reply(res, denial.status, denial.message, denial.headers);
      })
      .catch((e: unknown) => {
        options.logger.error("auth check failed", { error: String(e) });
        if (!gone) reply(res, 500, "internal error");
      });
  }

  return { handle };
}
