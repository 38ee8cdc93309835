import * as http2 from "node:http2";

/** @internal */
export interface UnreadAnswers {
  /** Watches one stream until it closes. */
  watch(stream: http2.ServerHttp2Stream): void;
  /** Streams watched right now. */
  size(): number;
  /** Stops the timer. */
  stop(): void;
}

/**
 * Resets HTTP/2 streams whose answer nobody takes: a stream that holds
 * unsent bytes (`bufferSize`, what Node keeps for the stream until the
 * peer's flow-control window lets it out) and has sent none of them for
 * `timeoutMs` gets RST_STREAM CANCEL, which frees them. HTTP/1.1's
 * `pipelinedWaitMs` is the same concept for a connection that reads nothing.
 *
 * Progress is a `'drain'` (a write the stream had to queue went out; the front
 * writes large answers in slices, src/server/listen/answer-slices.ts) or fewer
 * bytes held than at the previous look. The streams are looked at every
 * quarter of `timeoutMs`, so a stalled one is reset within 1.25 × `timeoutMs`.
 *
 * @internal
 */
export function watchUnreadAnswers(timeoutMs: number, onReset?: () => void): UnreadAnswers {
  const watched = new Map<http2.ServerHttp2Stream, { held: number; since: number }>();
  let timer: NodeJS.Timeout | undefined;
  const look = () => {
    const now = performance.now();
    for (const [stream, w] of watched) {
      const held = stream.destroyed ? 0 : (stream.bufferSize ?? 0);
      if (held === 0 || held < w.held) w.since = now;
      w.held = held;
      if (held > 0 && now - w.since >= timeoutMs) {
        watched.delete(stream);
        stream.close(http2.constants.NGHTTP2_CANCEL);
        onReset?.();
      }
    }
    if (watched.size === 0) {
      clearInterval(timer);
      timer = undefined;
    }
  };
  return {
    watch(stream) {
      const w = { held: 0, since: performance.now() };
      watched.set(stream, w);
      stream.on("drain", () => (w.since = performance.now()));
      stream.once("close", () => watched.delete(stream));
      if (!timer) {
        timer = setInterval(look, Math.max(10, timeoutMs / 4));
        timer.unref();
      }
    },
    size: () => watched.size,
    stop: () => clearInterval(timer),
  };
}
