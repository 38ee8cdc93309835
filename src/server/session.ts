import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  ScrapeErrorReason,
  type ClientFrame,
  type ServerFrameSchema,
} from "../../gen/promproxy/v1/scrape_pb.ts";
import { pathMatches } from "../shared/paths.ts";
import { oneLine } from "../shared/one-line.ts";
import { createQueue, type Queue } from "../shared/queue.ts";
import type { ClientInfo } from "./client-info.ts";
import { checkHead, type CheckedHead } from "./result-head.ts";
import type { OrderRequest, ScrapeFailure, ScrapeHandle, ScrapeOutcome, ScrapeSink } from "./scrape-types.ts";

/** A server frame as the Scrape handler yields it. @internal */
export type ServerFrameInit = MessageInitShape<typeof ServerFrameSchema>;

interface Active {
  sink: ScrapeSink;
  head?: CheckedHead;
  /** Bytes the client may still send. */
  allowance: number;
  /** Body bytes received. */
  received: number;
  /** A HEAD order: the result has a head and no body; its Content-Length describes what a GET would send. */
  headOnly: boolean;
}

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
  readonly inFlight: number;
  /** Milliseconds timestamp of the last frame received. */
  readonly lastHeard: number;
  /**
   * Pings the client and resolves true as soon as any frame arrives, false
   * when none arrives within `ms` (or the session is closed): is anyone still
   * at the other end of this stream?
   */
  probe(ms: number): Promise<boolean>;
  serves(port: number, path: string): boolean;
  /** Sends an order; undefined when the client is at its in-flight limit. */
  scrape(order: OrderRequest, sink: ScrapeSink): ScrapeHandle | undefined;
  /** Handles one frame from the client; throws a ConnectError on a protocol violation. */
  receive(frame: ClientFrame): void;
  /** Ends the stream (with an error when given) and fails every scrape in flight. */
  close(error?: ConnectError): void;
}

const outcomeOfReason: Record<number, ScrapeOutcome> = {
  [ScrapeErrorReason.UNREACHABLE]: "target_unreachable",
  [ScrapeErrorReason.TIMEOUT]: "timeout",
  [ScrapeErrorReason.TOO_LARGE]: "too_large",
  [ScrapeErrorReason.NOT_FOUND]: "not_found",
  [ScrapeErrorReason.BUSY]: "busy",
  [ScrapeErrorReason.INTERNAL]: "client_error",
  [ScrapeErrorReason.CANCELLED]: "cancelled",
};

/** Forgotten cancelled scrapes kept to accept their late frames. */
const maxCancelledKept = 128;

export function createSession(
  info: Omit<ClientInfo, "scrapesInFlight">,
  features: string[],
  limits: SessionLimits,
): Session {
  const outbound = createQueue<ServerFrameInit>();
  const active = new Map<bigint, Active>();
  const cancelled = new Map<bigint, number>();
  let nextId = 1n;
  let lastHeard = Date.now();
  let closed = false;
  /** Probes waiting for a sign of life. */
  const probes = new Set<(alive: boolean) => void>();

  const clientInfo: ClientInfo = {
    ...info,
    get scrapesInFlight() {
      return active.size;
    },
  };

  function violation(message: string, code = Code.InvalidArgument): ConnectError {
    return new ConnectError(message, code);
  }

  function finish(id: bigint, a: Active, failure?: ScrapeFailure) {
    active.delete(id);
    a.sink.onEnd(failure);
  }

  /** Fails one scrape for what its client sent, and tells the client to stop it; the stream stays up. */
  function reject(id: bigint, a: Active, outcome: ScrapeOutcome, message: string) {
    active.delete(id);
    forget(id, a.allowance);
    const reason = outcome === "too_large" ? `response too large: ${message}` : `the result was refused: ${message}`;
    outbound.push({ frame: { case: "cancel", value: { scrapeId: id, reason } } });
    a.sink.onEnd({ outcome, message });
  }
  const sent = (what: string) => `client "${clientInfo.name}" sent ${what}`;
  const tooLarge = (extra = "") => `scrape of "${clientInfo.name}" exceeds the maximum response size of ${limits.maxResponseBytes} bytes${extra}`;

  function forget(id: bigint, allowance: number) {
    cancelled.set(id, allowance);
    if (cancelled.size > maxCancelledKept) {
      const oldest = cancelled.keys().next().value as bigint;
      cancelled.delete(oldest);
    }
  }

  /** Frames for scrapes the server gave up on still arrive for a while; accept them within their credit. */
  function late(id: bigint, kind: string, bytes: number) {
    if (id <= 0n || id >= nextId) throw violation(`${kind} for scrape ${id}, which was never ordered`);
    const left = cancelled.get(id);
    if (left === undefined) {
      if (kind === "end") return; // an end for a scrape we forgot: harmless
      throw violation(`${kind} for scrape ${id}, which has ended`);
    }
    if (kind === "end") {
      cancelled.delete(id);
      return;
    }
    if (bytes > left) throw violation(`scrape ${id}: chunk beyond the granted credit`, Code.ResourceExhausted);
    cancelled.set(id, left - bytes);
  }

  const head = features.includes("head");
  const session: Session = {
    features,
    info: clientInfo,
    outbound,
    get inFlight() {
      return active.size;
    },
    get lastHeard() {
      return lastHeard;
    },

    probe(ms) {
      if (closed) return Promise.resolve(false);
      return new Promise<boolean>((resolve) => {
        const settle = (alive: boolean) => {
          clearTimeout(timer);
          probes.delete(settle);
          resolve(alive);
        };
        const timer = setTimeout(() => settle(false), ms);
        probes.add(settle);
        outbound.push({ frame: { case: "ping", value: { nonce: BigInt(Date.now()) } } });
      });
    },

    serves(port, path) {
      for (const t of clientInfo.targets) {
        if ((t.port === 0 || t.port === port) && pathMatches(t.path, path)) return true;
      }
      return false;
    },

    scrape(order, sink) {
      if (closed || active.size >= limits.maxScrapesInFlight) return undefined;
      const id = nextId++;
      const method = order.method === "HEAD" && head ? "HEAD" : "";
      const a: Active = { sink, allowance: limits.creditBytes, received: 0, headOnly: method === "HEAD" };
      active.set(id, a);
      outbound.push({
        frame: {
          case: "order",
          value: {
            scrapeId: id,
            port: order.port,
            path: order.path,
            scheme: order.scheme,
            method,
            headers: order.headers,
            timeout: durationOf(order.timeoutMs),
            creditBytes: BigInt(limits.creditBytes),
          },
        },
      });
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
          forget(id, a.allowance);
          outbound.push({ frame: { case: "cancel", value: { scrapeId: id, reason } } });
        },
      };
    },

    receive(frame) {
      lastHeard = Date.now();
      for (const p of probes) p(true);
      const f = frame.frame;
      switch (f.case) {
        case "chunk": {
          const id = f.value.scrapeId;
          const a = active.get(id);
          const n = f.value.data.byteLength;
          if (n > limits.maxChunkBytes) {
            throw violation(`scrape ${id}: chunk of ${n} bytes exceeds the maximum of ${limits.maxChunkBytes}`, Code.ResourceExhausted);
          }
          if (!a) return late(id, "chunk", n);
          if (!a.head) throw violation(`scrape ${id}: chunk before head`);
          if (n > a.allowance) throw violation(`scrape ${id}: chunk beyond the granted credit`, Code.ResourceExhausted);
          a.allowance -= n;
          a.received += n;
          if (a.headOnly) return reject(id, a, "bad_result", sent("a body for a HEAD request"));
          if (a.received > limits.maxResponseBytes) {
            return reject(id, a, "too_large", tooLarge());
          }
          const declared = a.head.contentLength;
          if (declared !== undefined && a.received > declared) {
            return reject(id, a, "bad_result", sent(`more body bytes than its content-length of ${declared}`));
          }
          if (n > 0) a.sink.onChunk(f.value.data);
          return;
        }
        case "head": {
          const id = f.value.scrapeId;
          const a = active.get(id);
          if (!a) return late(id, "head", 0);
          if (a.head) throw violation(`scrape ${id}: second head`);
          const head = checkHead(f.value.status, f.value.headers);
          if ("error" in head) return reject(id, a, "bad_result", sent(head.error));
          if ((head.contentLength ?? 0) > limits.maxResponseBytes) return reject(id, a, "too_large", tooLarge(` (content-length ${head.contentLength})`));
          a.head = head;
          a.sink.onHead(head);
          return;
        }
        case "end": {
          const id = f.value.scrapeId;
          const a = active.get(id);
          if (!a) return late(id, "end", 0);
          const err = f.value.error;
          if (!err) {
            if (!a.head) throw violation(`scrape ${id}: end without head or error`);
            const declared = a.head.contentLength;
            if (declared !== undefined && a.received !== declared && !a.headOnly) {
              return finish(id, a, { outcome: "bad_result", message: sent(`${a.received} body bytes, but its content-length said ${declared}`) });
            }
            return finish(id, a);
          }
          const message = oneLine(err.message) || "the scrape failed";
          return finish(id, a, { outcome: outcomeOfReason[err.reason] ?? "client_error", message: `client "${clientInfo.name}": ${message}` });
        }
        case "pong":
          return;
        case "hello":
          throw violation("second hello on the stream");
        default:
          return; // a frame kind from a newer client (or none): ignored, so that clients can evolve (PROTOCOL.md)
      }
    },

    close(error) {
      if (closed) return;
      closed = true;
      for (const p of probes) p(false);
      outbound.close(error);
      const failure: ScrapeFailure = {
        outcome: "disconnected",
        message: `client "${clientInfo.name}" disconnected`,
      };
      for (const [id, a] of [...active]) finish(id, a, failure);
      cancelled.clear();
    },
  };
  return session;
}

function durationOf(ms: number) {
  const seconds = Math.floor(ms / 1000);
  return { seconds: BigInt(seconds), nanos: Math.round((ms - seconds * 1000) * 1e6) };
}
