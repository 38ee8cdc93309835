/**
 * Replicas that know each other (`peers`): the list and its resolution, the
 * signed peer requests, the state each replica serves and polls from the
 * others, the fleet's merged `/clients`, readiness with peers, and the
 * forwarding of a scrape to a replica that holds the client. The front calls
 * {@link Peers.authenticate} first for every request and {@link Peers.forward}
 * when it does not hold a client; the rest lives in this folder.
 *
 * @internal
 */
import * as http from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import * as https from "node:https";
import { Counter, Gauge } from "prom-client";
import type { Activity } from "../activity.ts";
import type { Coordinator, ScrapeRequest } from "../coordinator.ts";
import type { PiecedBody } from "../listen/pieced-body.ts";
import type { ResolvedServerOptions } from "../options.ts";
import { writeSlices } from "../listen/answer-slices.ts";
import { reply } from "../relay.ts";
import { createPeerAuth, forwardedHeader, peerAnswerHeader, peerAuthHeader, type PeerCaller, type PeerRefusal } from "./peer-auth.ts";
import { createPeerDiscovery } from "./peer-discovery.ts";
import { createForwardPlaces } from "./forward-places.ts";
import { createForwarder } from "./peer-forward.ts";
import { createPeerList } from "./peer-list.ts";
import { createPoller, type Peer } from "./peer-poller.ts";
import { createStateSource, isPeerStatePath, peerStatePath } from "./peer-state.ts";
import { createReplicaSetFeed, type ReplicaSetFeed } from "./replica-set.ts";

type Req = http.IncomingMessage | Http2ServerRequest;

export interface Peers {
  /**
   * A request's peer credentials: undefined for an ordinary request (no peer
   * header, not the state path); the caller for a valid peer request; a
   * refusal for a request that claims to be one (or asks for the state) without
   * a valid signature.
   */
  authenticate(req: Req, uri: string): PeerCaller | PeerRefusal | undefined;
  /** Answers a verified peer's state request (its nonce: the answer is signed over it). */
  serveState(req: Req, res: http.ServerResponse | Http2ServerResponse, nonce: string): void;
  /** The header that signs this replica's answer to a forwarded scrape with `nonce` (set before any answer is written). */
  signForwardAnswer(nonce: string): string;
  /** The Prometheus address a forwarded scrape with `nonce` came from, when its forwardedForHeader is signed. */
  forwardedFor(nonce: string, header: unknown): string | undefined;
  /** Forwards a scrape this replica cannot serve itself; false when no peer lists the client. */
  forward(req: Req, res: http.ServerResponse, r: ScrapeRequest, uri: string): boolean;
  /** The fleet's `/clients`, as pieces (never joined). */
  discovery(): { body: PiecedBody; bytes: number };
  /** Whether it has heard from every peer it knows of (one readiness condition). */
  readonly synced: boolean;
  /** Why it is not synced yet, for `/readyz`. */
  waiting(): string;
  /** The peers as polled, for the status page. */
  readonly peers: readonly Peer[];
  /** The replica set announced to clients (welcome, ReplicaSet frames). */
  readonly replicaSet: ReplicaSetFeed;
  close(): void;
}

export function createPeers(o: ResolvedServerOptions, coordinator: Coordinator, activity: Activity, ready: () => boolean): Peers {
  if (!o.peerSecret) throw new RangeError("promproxy: option peers needs peerSecret (the secret every replica signs its peer requests with)");
  const registers = [o.registry];
  const refused = new Counter({
    name: "promproxy_peer_requests_total",
    help: "Requests that claimed to come from a peer (state polls, forwarded scrapes), by kind and result: accepted, or why refused (no_signature, malformed, bad_signature, stale, replayed, too_many, forged_forward).",
    labelNames: ["kind", "result"],
    registers,
  });
  const forwards = new Counter({
    name: "promproxy_forwarded_scrapes_total",
    help: "Scrapes this replica forwarded to a peer holding the client, by outcome: success and error_status (the peer's answer, passed on), unreachable, timeout, cut, prometheus_gone, too_many (maxForwardsPerPeer in flight to the holder) and too_many_from_address (one address's share of them).",
    labelNames: ["outcome"],
    registers,
  });
  const auth = createPeerAuth({ secret: o.peerSecret, replicaId: o.replicaId, clockSkewMs: o.peerClockSkewMs, maxNonces: o.maxPeerNonces, logger: o.logger });
  // Polls and forwarded scrapes on separate connections: a poll must never queue behind slow scrapes (a peer
  // would look gone). Polls come one at a time per peer; scrapes up to maxForwardsPerPeer at once per peer, counted
  // by their places (src/server/peers/forward-places.ts), not by the agent: one without a place is refused at once,
  // never queued in the agent behind a stranger's scrapes.
  const pollAgents = { http: new http.Agent({ keepAlive: true, maxSockets: 1 }), https: new https.Agent({ keepAlive: true, maxSockets: 1 }) };
  const agents = { http: new http.Agent({ keepAlive: true, maxFreeSockets: 16 }), https: new https.Agent({ keepAlive: true, maxFreeSockets: 16 }) };
  const places = createForwardPlaces({ maxPerPeer: o.maxForwardsPerPeer, logger: o.logger });
  const list = createPeerList({ peers: o.peers, maxPeers: o.maxPeers, logger: o.logger });
  const poller = createPoller({
    list,
    auth,
    replicaId: o.replicaId,
    pollIntervalMs: o.peerPollIntervalMs,
    resolveIntervalMs: o.peerResolveIntervalMs,
    timeoutMs: o.peerTimeoutMs,
    staleMs: 3 * o.peerPollIntervalMs + o.peerTimeoutMs,
    maxStateBytes: o.maxPeerStateBytes,
    concurrency: 8,
    agents: pollAgents,
    logger: o.logger,
  });
  new Gauge({
    name: "promproxy_peers",
    help: "Peers this replica knows of (itself not counted), by state: fresh (answered lately) or failing.",
    labelNames: ["state"],
    registers,
    collect() {
      const others = poller.peers.filter((p) => !p.self);
      const fresh = poller.fresh().length;
      this.set({ state: "fresh" }, fresh);
      this.set({ state: "failing" }, others.length - fresh);
    },
  });
  const replicaSet = createReplicaSetFeed({
    replicaId: o.replicaId,
    perClient: o.replicasPerClient,
    fresh: () => poller.fresh(),
    synced: () => poller.synced,
    maxIds: 64,
    intervalMs: 1_000,
  });
  const fleet = createPeerDiscovery({ replicaId: o.replicaId, local: () => coordinator.discovery(), fresh: () => poller.fresh(), maxBytes: o.maxDiscoveryBytes, logger: o.logger });
  const state = createStateSource({ replicaId: o.replicaId, discovery: () => coordinator.discovery(), ready });
  const forwarder = createForwarder({
    auth,
    replicaId: o.replicaId,
    fresh: () => poller.fresh(),
    agents,
    places,
    counter: forwards,
    // On the status page among the failed scrapes, as forward_unreachable, forward_timeout, forward_cut.
    onFailed: (r, outcome, message, durationMs) => activity.emit("scrapeFinished", { name: r.name, port: r.port, outcome, at: new Date(), durationMs, bytes: 0, message }),
  });

  return {
    authenticate(req, uri) {
      const claims = req.headers[peerAuthHeader] !== undefined || req.headers[forwardedHeader] !== undefined;
      const isState = isPeerStatePath(uri);
      if (!claims && !isState) return undefined;
      const kind = isState ? "state" : "forwarded_scrape";
      if (req.headers[peerAuthHeader] === undefined && req.headers[forwardedHeader] !== undefined) {
        refused.inc({ kind, result: "forged_forward" });
        return { status: 403, reason: "forged_forward", message: `peer request refused: ${forwardedHeader} without a peer signature: only replicas forward scrapes` };
      }
      const r = auth.verify(req.method ?? "GET", uri, req.headers, { unaddressed: isState });
      refused.inc({ kind, result: "from" in r ? "accepted" : r.reason });
      // A replica unknown here polls this one: it may be back at an address whose polls fail here (their backoff).
      if (isState && "from" in r) poller.heardFrom(r.from);
      return r;
    },
    serveState(req, response, nonce) {
      const res = response as http.ServerResponse;
      if (req.method !== "GET") return reply(res, 405, `method ${req.method} not allowed on ${peerStatePath}`, { allow: "GET" });
      const version = state.current();
      const { body, bytes, etag } = version;
      if (req.headers["if-none-match"] === etag) {
        res.writeHead(304, { etag, "cache-control": "no-store", [peerAnswerHeader]: auth.signAnswer(nonce, 304, etag, "") });
        return res.end();
      }
      // Pieces (never joined), signed over their hash (taken in steps, once per version), written in slices.
      void state.hash(version).then((sha256) => {
        if (res.headersSent || res.writableEnded || (res as { destroyed?: boolean }).destroyed) return;
        res.writeHead(200, { "content-type": "application/json", "content-length": bytes, etag, "cache-control": "no-store", [peerAnswerHeader]: auth.signAnswer(nonce, 200, etag, { sha256 }) });
        writeSlices(res, body);
      });
    },
    signForwardAnswer: (nonce) => auth.signForwardAnswer(nonce),
    forwardedFor: (nonce, header) => auth.verifyFor(nonce, header),
    forward: (req, res, r, uri) => forwarder.forward(req, res, r, uri),
    discovery: () => fleet.current(),
    get synced() {
      return poller.synced;
    },
    waiting() {
      const others = poller.peers.filter((p) => !p.self);
      const silent = others.filter((p) => p.lastOkAt === 0);
      const why = silent.slice(0, 3).map((p) => `${p.address.url}${p.error ? `: ${p.error}` : ""}`).join("; ");
      return `warming up: clients are still finding this replica, and ${silent.length} of ${others.length} peers have not answered yet${why ? ` (${why})` : ""}`;
    },
    get peers() {
      return poller.peers;
    },
    replicaSet,
    close() {
      poller.close();
      replicaSet.close();
      places.close();
      for (const a of [agents.http, agents.https, pollAgents.http, pollAgents.https]) a.destroy();
    },
  };
}
