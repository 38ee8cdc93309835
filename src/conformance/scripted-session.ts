/**
 * One client stream as the scripted server holds it: the hello it opened
 * with, everything the client sent since (timed), the frames a scenario
 * pushes (well-formed or not), and the protocol rules the client broke.
 *
 * @internal
 */
import type { MessageInitShape, UnknownField } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import type { ClientFrame, Hello, ServerFrame, ServerFrameSchema } from "../../gen/promproxy/v1/scrape_pb.ts";
import { createQueue } from "../shared/queue.ts";
import { createScrapeLedger, type OrderOptions, type ScrapeRecord, type ScrapeTracker } from "./scrape-ledger.ts";

type ServerFrameInit = MessageInitShape<typeof ServerFrameSchema>;

/** A frame the client sent, and when it arrived (ms since the epoch). */
export interface TimedFrame {
  at: number;
  frame: ClientFrame;
}

/** What the welcome says. */
export interface WelcomeOptions {
  /** Limits.max_chunk_bytes; 0 leaves Limits out of the welcome (the client must assume 64 KiB). Default 1 KiB. */
  maxChunkBytes?: number;
  /** Limits.max_in_flight. Default 16. */
  maxInFlight?: number;
  /** The heartbeat interval announced. Default 10 000 ms. */
  heartbeatMs?: number;
  /** Welcome.features. Default none. */
  features?: string[];
  /** Fields no version of the protocol defines, in the welcome and in its limits. Default none. */
  unknownFields?: UnknownField[];
  /** Welcome.replica_id. Default "conformance". */
  replicaId?: string;
  /** Welcome.replica_ids (the replica set). Default none. */
  replicaIds?: string[];
  /** Welcome.replicas_per_client. Default 0. */
  replicasPerClient?: number;
}

export interface ScriptedSession {
  readonly hello: Hello;
  readonly helloAt: number;
  /** When the connection the stream runs on was opened (ms since the epoch): before the hello by a dial's time. */
  readonly connectedAt: number;
  /** The request's `:authority`. */
  readonly authority: string;
  /** The server address the connection came to (127.0.0.1 or ::1). */
  readonly localAddress: string;
  /** Every frame after the hello, in arrival order. */
  readonly received: TimedFrame[];
  /** Rules the client broke on this stream, one line each. */
  readonly violations: string[];
  /** The scrapes ordered on this stream. */
  readonly scrapes: ScrapeRecord[];
  /** Whether the stream is still up. */
  readonly open: boolean;
  /** Resolves when the stream has ended, with how. */
  readonly ended: Promise<string>;
  /** How the stream ended, once it has. */
  readonly endedHow: string | undefined;
  /** When it ended (ms since the epoch), once it has. */
  readonly endedAt: number | undefined;
  /** When the client ended its request side cleanly (END_STREAM), if it did. */
  readonly halfClosedAt: number | undefined;
  welcome(options?: WelcomeOptions): void;
  /** Sends any frame (a message with unknown fields included: set `$unknown`). */
  send(frame: ServerFrame | ServerFrameInit): void;
  order(options: OrderOptions): ScrapeTracker;
  /**
   * Pings (with `unknownFields` in the Ping, when given) and resolves with the
   * round trip in ms once the matching Pong arrives; rejects after `timeoutMs`.
   */
  ping(nonce: bigint, timeoutMs: number, unknownFields?: UnknownField[]): Promise<number>;
  /** Ends the stream: with an error (its code goes to the client) or cleanly. */
  end(error?: ConnectError): void;
  /** Resets the stream (HTTP/2 RST_STREAM, INTERNAL_ERROR): no status, no trailers. */
  reset(): void;
}

/** How a session behaves beyond the frames a scenario sends. */
export interface SessionBehaviour {
  /** When the stream's connection was opened. */
  connectedAt: number;
  /** The request's `:authority`. */
  authority: string;
  /** The server address the connection came to. */
  localAddress: string;
  /** Resets the HTTP/2 stream the session runs on. */
  reset(): void;
  /** After the client's half-close, keep the response side open (a server that never answers a goodbye). Default false. */
  holdAfterHalfClose?: boolean;
}

/** @internal the scripted server's side of a session. */
export interface SessionFeed {
  session: ScriptedSession;
  outbound: AsyncIterable<ServerFrameInit | ServerFrame>;
  receive(frame: ClientFrame): void;
  /** The client ended its request side cleanly. */
  halfClosed(): void;
  /** The stream broke (a reset, a connection gone) or ended. */
  closed(how: string): void;
}

const defaultChunkLimit = 64 * 1024;

export function createScriptedSession(hello: Hello, behaviour: SessionBehaviour): SessionFeed {
  const outbound = createQueue<ServerFrameInit | ServerFrame>();
  const received: TimedFrame[] = [];
  const violations: string[] = [];
  const pings = new Map<bigint, () => void>();
  const nonces = new Set<bigint>();
  let welcomed = false;
  let chunkLimit = defaultChunkLimit;
  let open = true;
  let endedHow: string | undefined;
  let endedAt: number | undefined;
  let halfClosedAt: number | undefined;
  let settled!: (how: string) => void;
  const ended = new Promise<string>((resolve) => (settled = resolve));
  const settle = (how: string) => {
    endedHow = how;
    endedAt = Date.now();
    settled(how);
  };
  let features: string[] = [];
  const ledger = createScrapeLedger((f) => outbound.push(f), violations, () => chunkLimit, () => features);

  const close = (how: string) => {
    if (!open) return;
    open = false;
    outbound.close();
    settle(how);
  };

  const session: ScriptedSession = {
    hello,
    helloAt: Date.now(),
    connectedAt: behaviour.connectedAt,
    authority: behaviour.authority,
    localAddress: behaviour.localAddress,
    received,
    violations,
    scrapes: ledger.records,
    get open() {
      return open;
    },
    ended,
    get endedHow() {
      return endedHow;
    },
    get endedAt() {
      return endedAt;
    },
    get halfClosedAt() {
      return halfClosedAt;
    },
    welcome(o = {}) {
      welcomed = true;
      const maxChunkBytes = o.maxChunkBytes ?? 1024;
      chunkLimit = maxChunkBytes || defaultChunkLimit;
      features = o.features ?? [];
      const hb = o.heartbeatMs ?? 10_000;
      const limits = maxChunkBytes
        ? { maxChunkBytes, maxResponseBytes: 256n << 20n, maxInFlight: o.maxInFlight ?? 16, $unknown: o.unknownFields }
        : undefined;
      outbound.push({
        frame: {
          case: "welcome",
          value: {
            sessionId: `conformance-${Math.random().toString(16).slice(2, 10)}`,
            serverVersion: "promproxy-conformance/1",
            heartbeatInterval: { seconds: BigInt(Math.floor(hb / 1000)), nanos: (hb % 1000) * 1e6 },
            limits,
            features: o.features ?? [],
            replicaId: o.replicaId ?? "conformance",
            replicaIds: o.replicaIds ?? [],
            replicasPerClient: o.replicasPerClient ?? 0,
            $unknown: o.unknownFields,
          },
        },
      });
    },
    send(frame) {
      outbound.push(frame);
    },
    order: (o) => ledger.order(o),
    ping(nonce, timeoutMs, unknownFields) {
      const sent = performance.now();
      return new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => {
          pings.delete(nonce);
          reject(new Error(`no pong for ping ${nonce} within ${timeoutMs / 1000}s`));
        }, timeoutMs);
        pings.set(nonce, () => {
          clearTimeout(timer);
          resolve(performance.now() - sent);
        });
        nonces.add(nonce);
        outbound.push({ frame: { case: "ping", value: { nonce, $unknown: unknownFields } } });
      });
    },
    end(error) {
      if (!open) return;
      open = false;
      outbound.close(error);
      settle(error ? `ended by the server (${error.message})` : "ended by the server");
    },
    reset() {
      if (!open) return;
      open = false;
      behaviour.reset();
      outbound.close();
      settle("reset by the server");
    },
  };

  return {
    session,
    outbound,
    receive(frame) {
      const at = Date.now();
      received.push({ at, frame });
      const f = frame.frame;
      if (!welcomed) violations.push(`sent a ${f.case ?? "frame of an unknown kind"} before the welcome`);
      if (ledger.receive(frame, at)) return;
      if (f.case === "pong") {
        const waiter = pings.get(f.value.nonce);
        if (waiter) {
          pings.delete(f.value.nonce);
          waiter();
        } else if (!nonces.has(f.value.nonce)) {
          violations.push(`a pong with nonce ${f.value.nonce}, which no ping carried`);
        }
      } else if (f.case === "hello") {
        violations.push("a second hello on the stream");
      }
    },
    halfClosed() {
      halfClosedAt ??= Date.now();
      if (!behaviour.holdAfterHalfClose) close("closed by the client");
    },
    closed: close,
  };
}
