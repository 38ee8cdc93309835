import type { Dispatcher } from "undici";
import { createBodyGather } from "./body-gather.ts";
import { bodylessHead, rawHeadBytes, statusLineOverflow, trailersOverflow } from "./exporter-head.ts";
import { meterSlot, type MeterRef } from "./exporter-meter.ts";
import { exporterMaxInterimResponses, InterimFloodError, nonBodyBudget } from "./exporter-non-body.ts";
import { exporterMaxHeaderSize, loadUndici } from "./exporter-pool.ts";

/** Where an exporter's answer goes as it arrives. @internal */
export interface ExchangeSink {
  /**
   * The response head (1xx heads are skipped). `headers` holds the first
   * value of Content-Type, Content-Encoding and Content-Length when present.
   * Throwing refuses the answer: its connection is closed and the exchange
   * rejects with what was thrown.
   */
  head(status: number, headers: Record<string, string>): void;
  /**
   * A body chunk (a view of the bytes read from the socket, or a copy of
   * several that came while the last write was pending). Chunks come one at a
   * time, in order: the next only once the promise the last one returned has
   * settled. Throwing or rejecting ends the exchange with that error.
   */
  data(chunk: Buffer): Promise<void> | void;
  /**
   * The most body bytes one chunk should carry (the session's chunk size):
   * what arrives while a write is pending is gathered up to this (at most
   * {@link maxGatherBytes}) before the connection is paused. Default {@link maxGatherBytes}.
   */
  readonly chunkBytes?: number;
}

/**
 * The most body bytes gathered while a write is pending, whatever the
 * session's chunk size: Node's socket reads are no larger, so an exporter's
 * connection is read at most one socket read ahead of what is being written.
 */
export const maxGatherBytes = 64 * 1024;

/** The headers relayed from an exporter's answer. */
const relayed = ["content-type", "content-encoding", "content-length"] as const;

/** The request an exchange sends. @internal */
export interface ExchangeRequest {
  /** Path and query. */
  path: string;
  /** The request's headers, `host` among them. */
  headers: Record<string, string>;
  /**
   * The TLS server name (SNI, and the name the certificate is verified for)
   * on an https pool. undici takes it from the `host` header unless given
   * here, over the pool's own `connect.servername`.
   */
  servername?: string;
}

/** What became of an exchange that failed: whether its request was sent on a connection that had answered before. */
export interface ExchangeFailure {
  /** A free kept-alive connection was there when the request was dispatched (it most likely went on it). */
  keptFree: boolean;
}

/**
 * The exchange whose request is being dispatched, for {@link onQueued}: the
 * dispatcher calls the hook during `dispatch` when the request has to wait
 * for its connection. One hook for all requests, not a closure per request:
 * with a closure over the exchange in the dispatch options, scavenges kept
 * far more alive and took three times as long (10 KB scrapes: 0.050 against
 * 0.035 ms of CPU per scrape, measured in-process).
 */
let dispatching: ((cancel: (reason: Error) => void) => void) | undefined;
/** undici's queued-request hook (see `Undici.queuedAbort`); called outside a dispatch (a Pool's own queue), it is left unused. */
function onQueued(cancel: (reason: Error) => void): void {
  dispatching?.(cancel);
  dispatching = undefined;
}

/**
 * One `GET` of `request.path` on `pool`, fed to `sink` chunk by chunk: the bytes go
 * from the socket to the sink without a stream in between. A chunk goes to the
 * sink as it comes when no write is pending; what comes while one is pending
 * is gathered (up to `sink.chunkBytes`) and goes as one chunk once it settles,
 * the exporter's connection paused while a write is pending and that much is
 * gathered. So an exporter answering in 1-byte HTTP chunks costs a chunk per
 * socket read or so, not a chunk, a pause and a resume per byte. Resolves when the answer
 * has ended and the last chunk's write has settled; rejects with undici's
 * error (socket, parser, header overflow), the sink's, or `signal`'s reason
 * when it aborts (while the request waits for its connection, that attempt is
 * given up; once started, its connection is closed). It never settles while
 * a write is pending: a failure waits for that write to settle, so nothing
 * of this exchange is written after it. `failure.keptFree` tells the
 * caller's retry rule whether a kept-alive connection was free at dispatch.
 * `lateMs` sets undici's own header and body timers, which the caller keeps
 * later than its own. What it reads besides the body is bounded (see
 * exporter-non-body.ts): more than {@link exporterMaxInterimResponses} interim
 * (1xx) responses, or too much framing on a metered pool's connection, fail it
 * with an InterimFloodError or a FramingFloodError, its connection closed.
 *
 * undici may go on handing over chunks after a pause (it does when the
 * exporter closes the connection: it parses what is left before the end),
 * and may report the end while a write is pending: bytes that come during a
 * write wait in order behind it, and the end waits for the last of them.
 *
 * @internal
 */
export function exporterExchange(
  pool: Dispatcher & { readonly stats?: { free: number } },
  request: ExchangeRequest,
  signal: AbortSignal,
  lateMs: number,
  sink: ExchangeSink,
  failure: ExchangeFailure = { keptFree: false },
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    /** The controller of the started request; the queue's cancel while it waits for a connection. */
    let controller: Dispatcher.DispatchController | undefined;
    let cancelQueued: ((reason: Error) => void) | undefined;
    /** A write in flight, the bytes gathered behind it (only while one is), whether undici ended the answer, the first failure. */
    let writing = false;
    const gathered = createBodyGather();
    const gatherLimit = Math.max(1, Math.min(maxGatherBytes, sink.chunkBytes ?? maxGatherBytes));
    let ended = false;
    let failed: { error: unknown } | undefined;
    /** The answer's declared Content-Length (-1: none or not a plain number) and the body bytes so far. */
    let declared = -1;
    let received = 0;
    /** The final response head was handed to the sink; the interim (1xx) heads skipped before it. */
    let headed = false;
    let interim = 0;
    /** What the connection reads besides the body; on a metered pool's connection, more than it allows fails the exchange. */
    const framing = nonBodyBudget((err) => fail(err));

    const settle = () => {
      if (settled || writing) return;
      settled = true;
      framing.detach();
      signal.removeEventListener("abort", onAbort);
      if (failed) reject(failed.error);
      else resolve();
    };
    /** Ends the exchange with `err` (the first failure wins); the request is aborted, its connection closed. */
    const fail = (err: unknown) => {
      if (failed || settled) return;
      failed = { error: err };
      framing.detach();
      gathered.clear();
      const reason = err instanceof Error ? err : new Error(String(err));
      if (controller) controller.abort(reason);
      else cancelQueued?.(reason);
      settle();
    };
    const onAbort = () => fail(signal.reason);
    /** Hands `chunk` to the sink; true when its write is pending. */
    const write = (chunk: Buffer): boolean => {
      let pending: Promise<void> | void;
      try {
        pending = sink.data(chunk);
      } catch (e) {
        fail(e);
        return false;
      }
      if (!pending) return false;
      writing = true;
      pending.then(written, (e: unknown) => {
        writing = false;
        fail(e);
        settle();
      });
      return true;
    };
    const written = () => {
      writing = false;
      if (failed) return settle();
      // What came during the write leaves as one chunk; undici may read on meanwhile, up to the gather limit.
      const next = gathered.take();
      if (next !== undefined) write(next);
      if (failed || (ended && !writing)) return settle();
      // The answer goes on: undici reads the connection again (never after its end, when the connection may carry another request).
      if (!ended) controller?.resume();
    };

    const handler: Dispatcher.DispatchHandler & { [meterSlot]?: MeterRef } = {
      // Set by a metered pool's client at dispatch: the meter of the connection the request goes on.
      [meterSlot]: undefined,
      onRequestStart(c) {
        controller = c;
        cancelQueued = undefined;
        if (failed) return c.abort(failed.error instanceof Error ? failed.error : new Error(String(failed.error)));
        framing.attach(handler[meterSlot]?.meter);
      },
      onResponseStart(c, status, got, statusText) {
        if (failed) return;
        const fields = rawHeadBytes(c.rawHeaders); // one pass, for both checks
        const overflow = statusLineOverflow(statusText, fields.bytes, exporterMaxHeaderSize);
        if (overflow) return fail(overflow);
        framing.head(statusText, fields);
        if (status < 200) {
          if (++interim > exporterMaxInterimResponses) fail(new InterimFloodError());
          return;
        }
        const head: Record<string, string> = {};
        for (const name of relayed) {
          const v = got[name];
          const first = Array.isArray(v) ? v[0] : v;
          if (first !== undefined) head[name] = first;
        }
        const malformed = bodylessHead(status, head, got);
        if (malformed) return fail(malformed);
        const length = head["content-length"];
        if (length !== undefined && /^\d{1,15}$/.test(length)) declared = Number(length);
        try {
          sink.head(status, head);
          headed = true;
        } catch (e) {
          fail(e);
        }
      },
      onResponseData(c, chunk) {
        // undici may hand over an empty chunk as the connection ends: pausing on it would only bring it back.
        if (failed || chunk.byteLength === 0) return;
        received += chunk.byteLength;
        framing.body(chunk.byteLength);
        if (!writing) return void write(chunk);
        // Gathered behind the pending write, read on until a chunk's worth waits. Not paused on the chunk that
        // completes the declared length: the message is whole, and undici must see its end before an exporter that
        // closes the kept connection right after it (paused, it reports the close as an answer cut off).
        gathered.add(chunk);
        if (gathered.bytes >= gatherLimit && received !== declared) c.pause();
      },
      onResponseEnd() {
        ended = true;
        framing.detach();
        settle();
      },
      onResponseError(_c, err) {
        ended = true;
        framing.detach();
        // Trailers past the head limit after a whole body: an end, the bytes still gathered are written.
        if (!failed && trailersOverflow(err, headed)) return settle();
        if (!failed) failed = { error: err };
        gathered.clear();
        settle();
      },
    };
    if (signal.aborted) return void reject(signal.reason);
    signal.addEventListener("abort", onAbort);
    failure.keptFree = (pool.stats?.free ?? 0) > 0;
    const { path, headers, servername } = request;
    const opts: Dispatcher.DispatchOptions & Record<symbol, unknown> = { method: "GET", path, headers, headersTimeout: lateMs, bodyTimeout: lateMs };
    if (servername !== undefined) opts.servername = servername;
    const { queuedAbort } = loadUndici();
    if (queuedAbort) opts[queuedAbort] = onQueued;
    dispatching = (cancel) => (cancelQueued = cancel);
    try {
      pool.dispatch(opts, handler);
    } finally {
      dispatching = undefined;
    }
  });
}
