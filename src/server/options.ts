import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { Interceptor } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { createPromGate, type PromAuthOptions, type PromGate } from "../auth/prometheus/prom-auth.ts";
import { createConsoleLogger, toLogger, type AnyLogger, type Logger } from "../shared/logger.ts";
import { checkOptionKeys } from "../shared/option-keys.ts";
import { discoveryDefaults } from "./discovery.ts";
import { helloDefaults } from "./hello.ts";
import { checkOptionNumbers } from "./option-numbers.ts";
import { parsePeers } from "./peers/peer-list.ts";

/** Options of {@link createServer}. Every field is optional; defaults are given per field. */
export interface ServerOptions {
  /** Scrape timeout when Prometheus sends no `X-Prometheus-Scrape-Timeout-Seconds` header (curl, vmagent). Default 15 000 ms. */
  defaultScrapeTimeoutMs?: number;
  /** Upper bound for any scrape timeout; larger requested timeouts are clamped to it. Default 300 000 ms (5 min). */
  maxScrapeTimeoutMs?: number;
  /** Most clients connected at once; more hellos are refused with `ResourceExhausted`. Default 10 000. */
  maxClients?: number;
  /** Most scrapes in flight per client; more wait for a place (`maxScrapesWaiting`). Default 16. */
  maxScrapesInFlight?: number;
  /** Most scrapes per client waiting for a place, in order of arrival, each at most half its timeout, then HTTP 503; more get 503 at once; 0: no wait. Default 64. */
  maxScrapesWaiting?: number;
  /** A place held by an answer its Prometheus took nothing of for this long yields to another address's scrape that finds none (src/server/stalled-places.ts). Default 5 000 ms. */
  stalledAnswerMs?: number;
  /** Largest scrape body in bytes; a larger one fails with HTTP 502. Default 256 MiB. */
  maxResponseBytes?: number;
  /** Largest body chunk a client may send in one frame, in bytes (512 B - 1 MiB: clients refuse a smaller limit). Default 256 KiB. */
  maxChunkBytes?: number;
  /**
   * Body bytes a client may send for one scrape before the server has passed
   * them on to Prometheus (per-scrape credit). Bounds the server's memory per
   * scrape when Prometheus reads slowly (less, at least 64 KiB, past listen option maxUnreadAnswerBytes' room). Default 2 MiB.
   */
  creditBytes?: number;
  /** Most labels a client may announce (hello and each target). Default 32. */
  maxLabels?: number;
  /** Longest label value a client may announce, in UTF-8 bytes. Default 1024. */
  maxLabelValueLength?: number;
  /** Most targets a client may announce. Default 64. */
  maxTargets?: number;
  /**
   * Most UTF-8 bytes a hello may announce in all: the name, every label name
   * and value (the client's and its targets'), every target path. Default 64 KiB.
   */
  maxHelloBytes?: number;
  /**
   * Most UTF-8 bytes one client's entries may take in `/clients` (its labels
   * repeat for every target it announces); a larger hello is refused with
   * `InvalidArgument`. Default 256 KiB.
   */
  maxClientDiscoveryBytes?: number;
  /**
   * Most UTF-8 bytes of the whole `/clients` document; a client that would
   * grow it further is refused with `ResourceExhausted` (and retries). The
   * document is rendered once per change, never per request. Default 64 MiB.
   */
  maxDiscoveryBytes?: number;
  /**
   * Most client streams open at once that have not sent their hello yet;
   * more are refused with `ResourceExhausted` at once. Default 1 000.
   */
  maxPendingHellos?: number;
  /**
   * Longest retry hint (`promproxy-retry-after-ms`, PROTOCOL.md) on a stream refused past `maxPendingHellos`:
   * hints are spread at the pace the server welcomes clients, up to this. 0: no hints. Default 10 000 ms.
   */
  maxRetryAfterMs?: number;
  /**
   * On {@link PromproxyServer.close}: how long scrapes are still served (each
   * answer with `Connection: close`, so that Prometheus re-dials, through a
   * load balancer to another replica) while `/readyz` already answers 503,
   * before new scrapes are refused with 503. Set it to a little more than your
   * load balancer needs to notice readiness. Default 0 (the CLI's
   * `--drain-delay` defaults to 5 s).
   */
  drainDelayMs?: number;
  /**
   * How long a client that vanished (its stream broke or went quiet, rather
   * than ending cleanly with `stop()`) stays in `/clients`, with
   * `__meta_promproxy_connected="false"`; scraping it answers 503 at once, so
   * that `up == 0` fires. 0 drops it at once. Vanished clients give way to live
   * ones when `maxClients` or `maxDiscoveryBytes` is reached, each identity's
   * only to its own or to smaller identities (see `maxVanishedPerIdentity`).
   * Default 600 000 (10 min).
   */
  vanishedRetentionMs?: number;
  /**
   * Vanished clients kept per identity (the identity a stream's credential
   * maps to; one anonymous identity without stream auth): at the limit, that
   * identity's oldest vanished client is forgotten for its newest. Whatever
   * the limit, one identity's churn never erases another's vanished clients:
   * when the server is full (`maxClients`, live and vanished together, or
   * `maxDiscoveryBytes`), a new client takes the place of its own identity's
   * oldest vanished client, else of the oldest vanished client of the
   * identity holding the most clients, and only if that one holds more
   * clients (live and vanished) than the newcomer's; otherwise it is refused
   * with `ResourceExhausted`. Default: `maxClients`.
   */
  maxVanishedPerIdentity?: number;
  /**
   * Readiness warm-up (`/readyz`): a replica that has just started does not
   * yet hold every client. It is not ready for `warmupMs` after it was
   * created; then it is ready once no new client has joined for
   * `warmupSettleMs`, or at the latest `warmupMaxMs` after it was created.
   * Once ready it stays ready until it drains. Default 0 (ready at once; the
   * CLI's `--warmup` defaults to 5 s, and to {@link replicaWarmupMs} with
   * `--replica-count`). With several replicas, make it longer than the
   * clients' longest wait between two searches (10 s): a replacement that
   * nobody has found yet would otherwise turn ready holding no client.
   */
  warmupMs?: number;
  /** See {@link warmupMs}. Default 2 000 ms when `warmupMs` is set, else 0. */
  warmupSettleMs?: number;
  /** See {@link warmupMs}. Default 6 × `warmupMs`. */
  warmupMaxMs?: number;
  /**
   * This replica's id, announced in every welcome so that a client behind
   * one load-balancer address can tell replicas apart. Default: the host name
   * and a random suffix, new for every server object.
   */
  replicaId?: string;
  /**
   * How many replicas serve the clients' address, announced in the welcome
   * (clients keep dialling until they hold a stream to that many distinct
   * replicas). Default 0: unknown (clients still find every replica whose id
   * they meet).
   */
  replicaCount?: number;
  /**
   * With `peers`: how many replicas of the set each client holds, chosen by
   * rendezvous hashing of its name (PROTOCOL.md, "Replica set"); a replica
   * refuses a client it is not assigned, and serves its scrapes by forwarding.
   * Announced in the welcome. Default 0: every replica holds every client.
   */
  replicasPerClient?: number;
  /**
   * The other replicas, so that any ready replica serves any client: a scrape
   * for a client held by a peer but not here is forwarded to it (one hop), and
   * `/clients` lists the clients of every replica. URLs (`http://10.0.0.1:8080`,
   * or `HOST:PORT`), as a list or comma-separated; a URL whose host is a name
   * (a headless Service) stands for every address it resolves to, resolved
   * again every `peerResolveIntervalMs`. This replica may be on the list.
   * Needs `peerSecret`. Default none: replicas share nothing.
   */
  peers?: string | string[];
  /**
   * The secret every replica signs its peer requests with (HMAC-SHA256; at
   * least 16 characters), or `{ file }`: a file of secrets, one a line, re-read
   * when it changes (the first signs, every one verifies: rotation without a
   * refused request). Default none (required with `peers`).
   */
  peerSecret?: string | { file: string };
  /** How often each peer's state is polled (304 while unchanged). Default 1 000 ms. */
  peerPollIntervalMs?: number;
  /** How long a peer may take to answer a state poll (its head; a large body as long again plus 1 ms per 4 KB); a peer not heard from for 3 polls and this long is gone. Default 2 000 ms. */
  peerTimeoutMs?: number;
  /** How often peer names are resolved again. Default 5 000 ms. */
  peerResolveIntervalMs?: number;
  /** How far a peer request's timestamp may be from this replica's clock (replays are refused within it). Default 10 000 ms. */
  peerClockSkewMs?: number;
  /** Largest peer state accepted, in bytes; a larger one marks the peer failing. Default `maxDiscoveryBytes` + 64 KiB. */
  maxPeerStateBytes?: number;
  /** Most peers polled (addresses, sorted; the rest ignored and logged). Default 64. */
  maxPeers?: number;
  /** Most peer requests remembered within the clock-skew window (replay protection); more are refused with 503. Default 100 000. */
  maxPeerNonces?: number;
  /**
   * Most scrapes forwarded to one peer in flight at once, and one source address (IPv4, IPv6 /64) at most half of
   * them: a scrape past either is answered 503 at once (or asked of another holder), never queued. Default 256.
   */
  maxForwardsPerPeer?: number;
  /** How long a new stream may take to send its hello. Default 10 000 ms. */
  helloTimeoutMs?: number;
  /**
   * When a hello names a client that is still connected, the server pings the
   * holder for this long: if it answers, the newcomer is refused with
   * `AlreadyExists`; if not (its path died silently), the old stream is closed
   * and the newcomer takes the name. Default 2 000 ms.
   */
  takeoverProbeMs?: number;
  /** Interval of app-level pings on every stream. Default 10 000 ms. */
  heartbeatIntervalMs?: number;
  /** A stream that has sent nothing (no pong, no result) for this long is closed. Default 3 × heartbeatIntervalMs. */
  heartbeatTimeoutMs?: number;
  /** Registry for the server's own metrics (served at `GET /metrics`). Default: a fresh `Registry`, never prom-client's global one. */
  registry?: Registry;
  /**
   * Serve the `Scrape` stream's gRPC protocol (HTTP/2, `application/grpc` or
   * `application/grpc+proto`, no message compression) on the server's own fast
   * path instead of through Connect's generic pipeline: the same interceptors
   * run on the same `StreamRequest`, the same limits apply; a fraction of the
   * CPU per frame and of the memory per idle client. Connect keeps everything
   * else (the Connect protocol, gRPC-Web, JSON, compressed streams) and every
   * stream when false. Default true.
   */
  fastPath?: boolean;
  /** Connect interceptors for the `Scrape` stream (authentication and the like, e.g. `bearerAuth`, `mtlsAuth`). Default none. */
  interceptors?: Interceptor[];
  /**
   * Prometheus-side auth for proxied scrapes, `/clients` and `/metrics`
   * (basic auth, bearer tokens or your own check; see `PromAuthOptions`).
   * Default none: anyone who reaches the port may scrape through it.
   */
  promAuth?: PromAuthOptions;
  /**
   * Where the server logs: a {@link Logger} (`(message, fields)`), or a pino or
   * bunyan logger (`(fields, message)`, told apart by its `child()`; it gets a
   * child with `component: "promproxy"`). Default: warnings and errors to stderr.
   */
  logger?: AnyLogger;
}

/** @internal */
export type ResolvedServerOptions = Required<Omit<ServerOptions, "interceptors" | "promAuth" | "logger" | "peers" | "peerSecret">> & {
  /** The peers, parsed (src/server/peers/peer-list.ts); empty without `peers`. */
  peers: URL[];
  peerSecret?: string | { file: string };
  interceptors: Interceptor[];
  logger: Logger;
  /** The compiled Prometheus-side auth, when configured. */
  promAuth?: PromGate;
};

const MiB = 1024 * 1024;

/** @internal Fills in defaults and rejects nonsense at construction time. */
export function resolveServerOptions(o: ServerOptions = {}): ResolvedServerOptions {
  const heartbeatIntervalMs = o.heartbeatIntervalMs ?? 10_000;
  const logger = o.logger ? toLogger(o.logger) : createConsoleLogger("warn");
  const r: ResolvedServerOptions = {
    defaultScrapeTimeoutMs: o.defaultScrapeTimeoutMs ?? 15_000,
    maxScrapeTimeoutMs: o.maxScrapeTimeoutMs ?? 300_000,
    maxClients: o.maxClients ?? 10_000,
    maxScrapesInFlight: o.maxScrapesInFlight ?? 16,
    maxScrapesWaiting: o.maxScrapesWaiting ?? 64,
    stalledAnswerMs: o.stalledAnswerMs ?? 5_000,
    maxResponseBytes: o.maxResponseBytes ?? 256 * MiB,
    maxChunkBytes: o.maxChunkBytes ?? 256 * 1024,
    creditBytes: o.creditBytes ?? 2 * MiB,
    maxLabels: o.maxLabels ?? helloDefaults.maxLabels,
    maxLabelValueLength: o.maxLabelValueLength ?? helloDefaults.maxLabelValueLength,
    maxTargets: o.maxTargets ?? helloDefaults.maxTargets,
    maxHelloBytes: o.maxHelloBytes ?? helloDefaults.maxHelloBytes,
    maxClientDiscoveryBytes: o.maxClientDiscoveryBytes ?? helloDefaults.maxClientDiscoveryBytes,
    maxDiscoveryBytes: o.maxDiscoveryBytes ?? discoveryDefaults.maxBytes,
    maxPendingHellos: o.maxPendingHellos ?? 1000,
    maxRetryAfterMs: o.maxRetryAfterMs ?? 10_000,
    drainDelayMs: o.drainDelayMs ?? 0,
    vanishedRetentionMs: o.vanishedRetentionMs ?? 600_000,
    maxVanishedPerIdentity: o.maxVanishedPerIdentity ?? o.maxClients ?? 10_000,
    warmupMs: o.warmupMs ?? 0,
    warmupSettleMs: o.warmupSettleMs ?? (o.warmupMs ? 2_000 : 0),
    warmupMaxMs: o.warmupMaxMs ?? 6 * (o.warmupMs ?? 0),
    replicaId: o.replicaId ?? `${hostname()}-${randomBytes(4).toString("hex")}`,
    replicaCount: o.replicaCount ?? 0,
    replicasPerClient: o.replicasPerClient ?? 0,
    peers: parsePeers(o.peers ?? []),
    peerSecret: o.peerSecret,
    peerPollIntervalMs: o.peerPollIntervalMs ?? 1_000,
    peerTimeoutMs: o.peerTimeoutMs ?? 2_000,
    peerResolveIntervalMs: o.peerResolveIntervalMs ?? 5_000,
    peerClockSkewMs: o.peerClockSkewMs ?? 10_000,
    maxPeerStateBytes: o.maxPeerStateBytes ?? (o.maxDiscoveryBytes ?? discoveryDefaults.maxBytes) + 64 * 1024,
    maxPeers: o.maxPeers ?? 64,
    maxPeerNonces: o.maxPeerNonces ?? 100_000,
    maxForwardsPerPeer: o.maxForwardsPerPeer ?? 256,
    helloTimeoutMs: o.helloTimeoutMs ?? 10_000,
    takeoverProbeMs: o.takeoverProbeMs ?? 2_000,
    heartbeatIntervalMs,
    heartbeatTimeoutMs: o.heartbeatTimeoutMs ?? 3 * heartbeatIntervalMs,
    registry: o.registry ?? new Registry(),
    interceptors: o.interceptors ?? [],
    fastPath: o.fastPath ?? true,
    logger,
    promAuth: o.promAuth ? createPromGate(o.promAuth, logger) : undefined,
  };
  checkOptionNumbers(r, [
    "defaultScrapeTimeoutMs", "maxScrapeTimeoutMs", "maxClients", "maxScrapesInFlight", "stalledAnswerMs", "maxResponseBytes",
    "maxChunkBytes", "creditBytes", "maxTargets", "maxHelloBytes", "maxClientDiscoveryBytes", "maxDiscoveryBytes", "maxPendingHellos", "maxVanishedPerIdentity",
    "peerPollIntervalMs", "peerTimeoutMs", "peerResolveIntervalMs", "peerClockSkewMs", "maxPeerStateBytes", "maxPeers", "maxPeerNonces", "maxForwardsPerPeer", "helloTimeoutMs", "takeoverProbeMs", "heartbeatIntervalMs", "heartbeatTimeoutMs",
  ], ["drainDelayMs", "maxRetryAfterMs", "vanishedRetentionMs", "warmupMs", "warmupSettleMs", "warmupMaxMs", "replicaCount", "replicasPerClient", "maxScrapesWaiting"]);
  if (r.replicasPerClient > 64 || (r.replicasPerClient > 0 && r.peers.length === 0)) throw new RangeError(`promproxy: option replicasPerClient (${r.replicasPerClient}) needs peers (only replicas that know each other know the set) and is at most 64 (the largest set)`);
  if (r.peers.length > 0 && !r.peerSecret) throw new RangeError("promproxy: option peers needs peerSecret (the secret every replica signs its peer requests with)");
  if (r.replicaId === "" || r.replicaId.length > 128) throw new RangeError("promproxy: option replicaId must be 1-128 characters");
  if (!(r.maxLabels >= 0) || !(r.maxLabelValueLength >= 0)) throw new RangeError("promproxy: maxLabels and maxLabelValueLength must be >= 0");
  if (r.maxChunkBytes > MiB) throw new RangeError(`promproxy: option maxChunkBytes must be at most 1 MiB (${MiB}), got ${r.maxChunkBytes}`);
  if (r.maxChunkBytes < 512) throw new RangeError(`promproxy: option maxChunkBytes must be at least 512 (clients refuse a smaller limit), got ${r.maxChunkBytes}`);
  if (r.creditBytes < r.maxChunkBytes) throw new RangeError("promproxy: option creditBytes must be at least maxChunkBytes");
  if (r.defaultScrapeTimeoutMs > r.maxScrapeTimeoutMs) throw new RangeError("promproxy: defaultScrapeTimeoutMs exceeds maxScrapeTimeoutMs");
  if (r.heartbeatTimeoutMs <= r.heartbeatIntervalMs) throw new RangeError("promproxy: heartbeatTimeoutMs must exceed heartbeatIntervalMs");
  checkOptionKeys(o, Object.keys(r)); // every option has a field of the same name in the resolved options
  return r;
}
