import * as http2 from "node:http2";
import type * as net from "node:net";

/** @internal */
export interface UnreadAnswers<T> {
  /** Watches one stream (or connection) until it closes. */
  watch(target: T): void;
  /** Watched right now. */
  size(): number;
  /** Stops the timer. */
  stop(): void;
}

/** What is watched: an HTTP/2 stream, or an HTTP/1.1 connection's socket. */
interface Watched {
  readonly destroyed: boolean;
  on(event: "drain", listener: () => void): unknown;
  once(event: "close", listener: () => void): unknown;
}

/**
 * Cuts what holds an answer nobody takes: a stream (or connection) holding
 * unsent bytes (`held`: what Node keeps for it until the peer reads, or its
 * flow-control window lets it out) that has sent none of them for `timeoutMs`
 * is `cut`, which frees them. HTTP/1.1's `pipelinedWaitMs` is the same concept
 * for requests waiting behind an answer nobody reads.
 *
 * Progress is a `'drain'` (a write that had to be queued went out; the front
 * writes large answers in slices, src/server/listen/answer-slices.ts) or fewer
 * bytes held than at the previous look. Everything is looked at every quarter
 * of `timeoutMs`, so a stalled one is cut within 1.25 × `timeoutMs`.
 *
 * @internal
 */
export function watchUnread<T extends Watched>(timeoutMs: number, held: (t: T) => number, cut: (t: T) => void, onCut?: () => void): UnreadAnswers<T> {
  const watched = new Map<T, { held: number; since: number }>();
  let timer: NodeJS.Timeout | undefined;
  const look = () => {
    const now = performance.now();
    for (const [t, w] of watched) {
      const h = t.destroyed ? 0 : held(t);
      if (h === 0 || h < w.held) w.since = now;
      w.held = h;
      if (h > 0 && now - w.since >= timeoutMs) {
        watched.delete(t);
        cut(t);
        onCut?.();
      }
    }
    if (watched.size === 0) {
      clearInterval(timer);
      timer = undefined;
    }
  };
  return {
    watch(t) {
      const w = { held: 0, since: performance.now() };
      watched.set(t, w);
      t.on("drain", () => (w.since = performance.now()));
      t.once("close", () => watched.delete(t));
      if (!timer) {
        timer = setInterval(look, Math.max(10, timeoutMs / 4));
        timer.unref();
      }
    },
    size: () => watched.size,
    stop: () => clearInterval(timer),
  };
}

/** HTTP/2 streams whose answer nobody takes get RST_STREAM CANCEL. @internal */
export const watchUnreadAnswers = (timeoutMs: number, onCut?: () => void): UnreadAnswers<http2.ServerHttp2Stream> =>
  watchUnread<http2.ServerHttp2Stream>(timeoutMs, (s) => s.bufferSize ?? 0, (s) => s.close(http2.constants.NGHTTP2_CANCEL), onCut);

/**
 * HTTP/1.1 connections whose answers nobody reads are closed: Node keeps what
 * the peer has not taken in the socket (`writableLength`), and HTTP/1.1 has
 * nothing but the connection to cut. @internal
 */
export const watchUnreadConnections = (timeoutMs: number, onCut?: () => void): UnreadAnswers<net.Socket> =>
  watchUnread<net.Socket>(timeoutMs, (s) => s.writableLength, (s) => s.destroy(), onCut);
