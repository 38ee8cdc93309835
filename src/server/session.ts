import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ClientFrame, ServerFrameSchema } from "../../gen/promproxy/v1/scrape_pb.ts";
import { oneLine } from "../shared/one-line.ts";
import { pathMatches } from "../shared/paths.ts";
import { createQueue, type Queue } from "../shared/queue.ts";
import type { ClientInfo } from "./client-info.ts";
import { createGivenUp, type GivenUp } from "./given-up.ts";
import { createResultFrames, type Active } from "./result-frames.ts";
import type { OrderRequest, ScrapeFailure, ScrapeHandle, ScrapeSink } from "./scrape-types.ts";
import { withGetters } from "../shared/with-getters.ts";

/** A server frame as the Scrape handler yields it. @internal */
export type ServerFrameInit = MessageInitShape<typeof ServerFrameSchema>;

/** @internal */
export interface SessionLimits {
  maxScrapesInFlight: number;
  maxResponseBytes: number;
  maxChunkBytes: number;
  creditBytes: number;
}

/** One connected client as the server sees it. @internal */
export interface Session {
  readonly info: ClientInfo;
  /** The optional protocol features both sides use on this stream (the welcome announces them). */
  readonly features: string[];
  readonly outbound: Queue<ServerFrameInit>;
  /** Its places: the server's maxScrapesInFlight, or the client's own limit when it said a smaller one. */
  readonly maxInFlight: number;
  readonly inFlight: number;
  /** Scrapes given up on whose places are still held (the client has not shown it read their cancels). */
  readonly givenUp: number;
  /** Milliseconds timestamp of the last frame received. */
  readonly lastHeard: number;
  /**
   * Pings the client and resolves true as soon as any frame arrives, false
   * when none arrives within `ms` (or the session is closed): is anyone still
   * at the other end of this stream? Probes that overlap share one ping, and
   * a probe answered less than {@link probeAnswerKeptMs} ago answers the next
   * ones at once: a flood of hellos for a held name costs its holder a ping
   * a second at most, never a queue of them.
   */
  probe(ms: number): Promise<boolean>;
  serves(port: number, path: string): boolean;
  /** Sends an order; undefined when the client is at its in-flight limit. */
  scrape(order: OrderRequest, sink: ScrapeSink): ScrapeHandle | undefined;
  /** Handles one frame from the client; throws a ConnectError on a protocol violation. */
  receive(frame: ClientFrame): void;
  /** Whether a chunk of `n` bytes for scrape `id` would be taken whole now (ResultFrames.takes). */
  takesChunk(id: bigint, n: number): boolean;
  /** Ends the stream (with an error when given) and fails every scrape in flight. */
  close(error?: ConnectError): void;
  /** Calls `cb` (one at a time: a later one replaces it) when the session is closed with an error. */
  whenFailed(cb: (error: ConnectError) => void): void;
}

/** How long a probe's answer stands for the probes after it. @internal */
export const probeAnswerKeptMs = 1_000;
/** The longest a scrape given up on holds its place, for a client that neither ends it nor answers pings. @internal */
export const givenUpHoldMs = 10_000;

export function createSession(
  info: Omit<ClientInfo, "scrapesInFlight">,
  features: string[],
  limits: SessionLimits,
  /** Called when a place held by a scrape given up on is freed (the client showed it read the cancel). */
  onRoom?: () => void,
  /** The server's count of late frames dropped (ResultFramesOptions.lateTally), added to by this session. */
  lateTally?: { dropped: number },
): Session {
  const outbound = createQueue<ServerFrameInit>();
  const active = new Map<bigint, Active>();
  let nextId = 1n;
  let lastHeard = Date.now();
  let closed = false;
  let failed: ((error: ConnectError) => void) | undefined;
  /** Probes waiting for a sign of life. */
  const probes = new Set<(alive: boolean) => void>();
  /** When a probe was last answered (see probeAnswerKeptMs). */
  let probeAnsweredAt = -Infinity;
  /** Scrapes given up on after their order went out, holding their places until the client read the cancel (given-up.ts). */
  let givenUp: GivenUp | undefined;
  const held = () => givenUp?.held(Date.now()) ?? 0;
  const barrier = (nonce: bigint | undefined) => nonce !== undefined && outbound.push({ frame: { case: "ping", value: { nonce } } });

  // A fast object (src/shared/with-getters.ts): one per connected client. Spreads of it set scrapesInFlight themselves.
  const clientInfo: ClientInfo = withGetters({ ...info }, { scrapesInFlight: () => active.size });

  const results = createResultFrames({
    name: clientInfo.name,
    maxChunkBytes: limits.maxChunkBytes,
    maxResponseBytes: limits.maxResponseBytes,
    singleResult: features.includes("single-result"),
    active,
    nextId: () => nextId,
    cancel: (scrapeId, reason) => outbound.push({ frame: { case: "cancel", value: { scrapeId, reason } } }),
    lateTally,
  });

  const head = features.includes("head");
  const creditBytes = BigInt(limits.creditBytes);
  /** The last order's timeout, as a Duration: Prometheus asks with the same timeout every time. */
  let lastTimeout: { ms: number; duration: ReturnType<typeof durationOf> } | undefined;
  const methods: Omit<Session, "inFlight" | "givenUp" | "lastHeard"> = {
    features,
    info: clientInfo,
    outbound,
    maxInFlight: limits.maxScrapesInFlight,

    probe(ms) {
      if (closed) return Promise.resolve(false);
      if (Date.now() - probeAnsweredAt < probeAnswerKeptMs) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const settle = (alive: boolean) => {
          clearTimeout(timer);
          probes.delete(settle);
          resolve(alive);
        };
        const timer = setTimeout(() => settle(false), ms);
        // One ping in flight answers every probe waiting: the first frame heard settles them all.
        if (probes.size === 0) outbound.push({ frame: { case: "ping", value: { nonce: BigInt(Date.now()) } } });
        probes.add(settle);
      });
    },

    serves(port, path) {
      for (const t of clientInfo.targets) {
        if ((t.port === 0 || t.port === port) && pathMatches(t.path, path)) return true;
      }
      return false;
    },

    scrape(order, sink) {
      if (closed || active.size + held() >= limits.maxScrapesInFlight) return undefined;
      const id = nextId++;
      const method = order.method === "HEAD" && head ? "HEAD" : "";
      const a: Active = { sink, allowance: order.creditBytes ?? limits.creditBytes, received: 0, headOnly: method === "HEAD" };
      active.set(id, a);
      const orderedAt = Date.now();
      const orderFrame: ServerFrameInit = {
        frame: {
          case: "order",
          value: {
            scrapeId: id,
            port: order.port,
            path: order.path,
            scheme: order.scheme,
            method,
            headers: order.headers,
            timeout: lastTimeout?.ms === order.timeoutMs ? lastTimeout.duration : (lastTimeout = { ms: order.timeoutMs, duration: durationOf(order.timeoutMs) }).duration,
            creditBytes: order.creditBytes === undefined ? creditBytes : BigInt(order.creditBytes),
          },
        },
      };
      outbound.push(orderFrame);
      return {
        id,
        grant(bytes) {
          const cur = active.get(id);
          if (cur !== a || bytes <= 0) return;
          a.allowance += bytes;
          outbound.push({ frame: { case: "credit", value: { scrapeId: id, bytes: BigInt(bytes) } } });
        },
        cancel(reason) {
          if (active.get(id) !== a) return;
          active.delete(id);
          // An order still waiting to be sent is taken back: the client never hears of the scrape. Scrapes
          // abandoned faster than the client reads cost it nothing then, and never pile up orders and cancels.
          if (outbound.withdraw(orderFrame)) return;
          results.forget(id, a.allowance);
          outbound.push({ frame: { case: "cancel", value: { scrapeId: id, reason } } });
          // Its place is held until the client read the cancel; a client that shows nothing lets it go at the
          // order's own deadline, and never later than givenUpHoldMs.
          const now = Date.now();
          barrier((givenUp ??= createGivenUp()).add(id, Math.min(orderedAt + order.timeoutMs, now + givenUpHoldMs), now));
        },
      };
    },

    takesChunk(id, n) {
      return !closed && results.takes(id, n);
    },

    receive(frame) {
      lastHeard = Date.now();
      if (probes.size > 0) {
        probeAnsweredAt = lastHeard;
        for (const p of probes) p(true);
      }
      const f = frame.frame;
      if (givenUp && (f.case === "end" || f.case === "result") && givenUp.ended(f.value.scrapeId)) onRoom?.();
      if (givenUp && f.case === "pong") {
        const before = givenUp.held(lastHeard);
        barrier(givenUp.pong(f.value.nonce, lastHeard));
        if (givenUp.held(lastHeard) < before) onRoom?.();
      }
      if (results.receive(f)) return;
      switch (f.case) {
        case "pong":
          return;
        case "hello":
          throw new ConnectError("second hello on the stream", Code.InvalidArgument);
        default:
          return; // a frame kind from a newer client (or none): ignored, so that clients can evolve (PROTOCOL.md)
      }
    },

    close(error) {
      if (closed) return;
      closed = true;
      for (const p of probes) p(false);
      outbound.close(error);
      // Why, when the stream was ended for a reason (not reading it, replaced, shutting down, its own error).
      const why = error ? `: ${oneLine(error.rawMessage, 200)}` : "";
      const failure: ScrapeFailure = { outcome: "disconnected", message: `client "${clientInfo.name}" disconnected${why}` };
      for (const [id, a] of [...active]) results.finish(id, a, failure);
      results.clear();
      if (error) failed?.(error);
    },

    whenFailed(cb) {
      failed = cb;
    },
  };
  return withGetters(methods, { inFlight: () => active.size, givenUp: held, lastHeard: () => lastHeard });
}

function durationOf(ms: number) {
  const seconds = Math.floor(ms / 1000);
  return { seconds: BigInt(seconds), nanos: Math.round((ms - seconds * 1000) * 1e6) };
}
