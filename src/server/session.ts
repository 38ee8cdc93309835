import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  ScrapeErrorReason,
  type ClientFrame,
  type Header,
  type ServerFrameSchema,
} from "../../gen/promproxy/v1/scrape_pb.ts";
import { pathMatches } from "../shared/paths.ts";
import { createQueue, type Queue } from "../shared/queue.ts";

/** A server frame as the Scrape handler yields it. @internal */
export type ServerFrameInit = MessageInitShape<typeof ServerFrameSchema>;

/** Why a scrape failed, as the front turns it into an HTTP answer. @internal */
export interface ScrapeFailure {
  /** HTTP status to answer with when no head was written yet. */
  status: number;
  /** Metrics label. */
  outcome: string;
  /** One line, without the "promproxy: " prefix. */
  message: string;
}

/** What the front wants done with a scrape's result, in order. @internal */
export interface ScrapeSink {
  onHead(status: number, headers: Header[]): void;
  /** A body chunk. The sink returns the bytes to the client with {@link ScrapeHandle.grant} once it has passed them on. */
  onChunk(data: Uint8Array): void;
  /** The end: success without an argument. Called exactly once, also when the session dies. */
  onEnd(failure?: ScrapeFailure): void;
}

/** The front's grip on a scrape in flight. @internal */
export interface ScrapeHandle {
  readonly id: bigint;
  /** Lets the client send `bytes` more body bytes. */
  grant(bytes: number): void;
  /** Tells the client to stop; the sink hears nothing more. */
  cancel(reason: string): void;
}

/** What a scrape order says, before the session gives it an id. @internal */
export interface OrderRequest {
  port: number;
  path: string;
  scheme: string;
  headers: Header[];
  timeoutMs: number;
}

/** What a connected client announced, and where it came from. */
export interface ClientInfo {
  /** The client's name, lower case. */
  name: string;
  /** Labels the client announced. */
  labels: Record<string, string>;
  /** Targets the client serves (port 0: any port). */
  targets: { port: number; path: string; labels: Record<string, string> }[];
  /** Session id given in the welcome. */
  sessionId: string;
  /** Client software version as announced. */
  version: string;
  /** When the stream was accepted. */
  connectedAt: Date;
  /** Scrapes in flight right now. */
  scrapesInFlight: number;
  /** The authenticated identity holding the name, when an auth interceptor set one. */
  identity?: string;
}

interface Active {
  sink: ScrapeSink;
  headSeen: boolean;
  /** Bytes the client may still send. */
  allowance: number;
}

/** @internal */
export interface SessionLimits {
  maxScrapesInFlight: number;
  maxChunkBytes: number;
  creditBytes: number;
}

/** One connected client as the server sees it. @internal */
export interface Session {
  readonly info: ClientInfo;
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

const statusForReason: Record<number, [number, string]> = {
  [ScrapeErrorReason.UNREACHABLE]: [502, "target_unreachable"],
  [ScrapeErrorReason.TIMEOUT]: [504, "timeout"],
  [ScrapeErrorReason.TOO_LARGE]: [502, "too_large"],
  [ScrapeErrorReason.NOT_FOUND]: [404, "not_found"],
  [ScrapeErrorReason.BUSY]: [503, "busy"],
  [ScrapeErrorReason.INTERNAL]: [502, "client_error"],
  [ScrapeErrorReason.CANCELLED]: [502, "cancelled"],
};

/** Forgotten cancelled scrapes kept to accept their late frames. */
const maxCancelledKept = 1024;


export function createSession(
  info: Omit<ClientInfo, "scrapesInFlight">,
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

  const session: Session = {
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
      const a: Active = { sink, headSeen: false, allowance: limits.creditBytes };
      active.set(id, a);
      outbound.push({
        frame: {
          case: "order",
          value: {
            scrapeId: id,
            port: order.port,
            path: order.path,
            scheme: order.scheme,
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
          if (!a.headSeen) throw violation(`scrape ${id}: chunk before head`);
          if (n > a.allowance) throw violation(`scrape ${id}: chunk beyond the granted credit`, Code.ResourceExhausted);
          a.allowance -= n;
          if (n > 0) a.sink.onChunk(f.value.data);
          return;
        }
        case "head": {
          const id = f.value.scrapeId;
          const a = active.get(id);
          if (!a) return late(id, "head", 0);
          if (a.headSeen) throw violation(`scrape ${id}: second head`);
          const status = f.value.status;
          if (status < 100 || status > 599) throw violation(`scrape ${id}: head with invalid HTTP status ${status}`);
          a.headSeen = true;
          a.sink.onHead(status, f.value.headers);
          return;
        }
        case "end": {
          const id = f.value.scrapeId;
          const a = active.get(id);
          if (!a) return late(id, "end", 0);
          const err = f.value.error;
          if (!err) {
            if (!a.headSeen) throw violation(`scrape ${id}: end without head or error`);
            return finish(id, a);
          }
          const [status, outcome] = statusForReason[err.reason] ?? [502, "client_error"];
          const message = oneLine(err.message) || "the scrape failed";
          return finish(id, a, { status, outcome, message: `client "${clientInfo.name}": ${message}` });
        }
        case "pong":
          return;
        case "hello":
          throw violation("second hello on the stream");
        default:
          throw violation("empty or unknown frame");
      }
    },

    close(error) {
      if (closed) return;
      closed = true;
      for (const p of probes) p(false);
      outbound.close(error);
      const failure: ScrapeFailure = {
        status: 502,
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

/** Keeps a client-supplied message to one printable line of bounded length. @internal */
export function oneLine(s: string, max = 512): string {
  // eslint-disable-next-line no-control-regex
  const line = s.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
  return line.length > max ? line.slice(0, max) + "…" : line;
}
