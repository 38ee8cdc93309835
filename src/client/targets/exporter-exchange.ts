import type { Dispatcher } from "undici";

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
   * A body chunk (a view of the bytes read from the socket, not a copy). A
   * returned promise holds the exporter back (the connection is not read)
   * until it settles; throwing or rejecting ends the exchange with that error.
   */
  data(chunk: Buffer): Promise<void> | void;
}

/** The headers relayed from an exporter's answer. */
const relayed = new Set(["content-type", "content-encoding", "content-length"]);

/**
 * One `GET path` on `pool`, fed to `sink` chunk by chunk with the parser
 * paused while a chunk is being written: the exporter's bytes go from the
 * socket to the sink without a stream in between. Resolves when the answer
 * has ended, rejects with undici's error (socket, parser, header overflow),
 * the sink's, or `signal`'s reason when it aborts (at once, even while the
 * request waits for a connection). `lateMs` sets undici's own header and body
 * timers, which the caller keeps later than its own.
 *
 * @internal
 */
export function exporterExchange(
  pool: Dispatcher,
  path: string,
  headers: Record<string, string>,
  signal: AbortSignal,
  lateMs: number,
  sink: ExchangeSink,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    let abort: ((err: Error) => void) | undefined;
    let resume: (() => void) | undefined;
    const settle = (err?: unknown) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener("abort", onAbort);
      if (err === undefined) resolve();
      else reject(err);
    };
    const fail = (err: unknown) => {
      settle(err);
      abort?.(err instanceof Error ? err : new Error(String(err)));
    };
    const onAbort = () => fail(signal.reason);
    const written = () => {
      if (!settled) resume?.();
    };
    const handler: Dispatcher.DispatchHandler = {
      onConnect(abort_) {
        abort = abort_;
        if (settled) abort_(new Error("the exchange ended before its request went out"));
      },
      onHeaders(status, raw, resume_) {
        if (status < 200) return true;
        resume = resume_;
        const got: Record<string, string> = {};
        for (let i = 0; i + 1 < raw.length; i += 2) {
          const name = raw[i]!.toString("latin1").toLowerCase();
          if (relayed.has(name) && got[name] === undefined) got[name] = raw[i + 1]!.toString("latin1");
        }
        sink.head(status, got);
        return true;
      },
      onData(chunk) {
        // undici may hand over an empty chunk as the connection ends: pausing on it would only bring it back.
        if (chunk.byteLength === 0) return true;
        const waiting = sink.data(chunk);
        if (!waiting) return true;
        waiting.then(written, fail);
        return false;
      },
      onComplete() {
        settle();
      },
      onError(err) {
        settle(err);
      },
    };
    if (signal.aborted) return void reject(signal.reason);
    signal.addEventListener("abort", onAbort);
    pool.dispatch({ method: "GET", path, headers, headersTimeout: lateMs, bodyTimeout: lateMs }, handler);
  });
}
