import { constants, type ServerHttp2Stream } from "node:http2";
import { createContextKey, type ContextValues } from "@connectrpc/connect";
import { peerContextValues } from "../auth/stream/peer.ts";

/**
 * How long the Scrape handler waits, once a client's request side ended, to
 * tell a goodbye from a reset. A reset stream (RST_STREAM) or a lost connection
 * also ends the request body, and Node closes the stream a few ticks later; a
 * goodbye (END_STREAM) leaves the stream open until the server ends its side.
 */
const graceMs = 100;

/**
 * Resolves true when a client stream whose request side has just ended was in
 * fact reset or lost (it closes before the server ended its side), false for a
 * goodbye (still open after a short grace). Undefined outside HTTP/2.
 *
 * @internal
 */
export const streamResetKey = createContextKey<(() => Promise<boolean>) | undefined>(undefined, { description: "promproxy stream reset" });

/**
 * Resets (RST_STREAM CANCEL) an HTTP/2 stream that holds data its peer has
 * not taken: a Scrape stream closed for good while its client reads nothing,
 * whose last frames and status would wait behind unread data for as long as
 * the client stays (Connect's write never completes). A stream with nothing
 * waiting is left to end with its status. Undefined outside HTTP/2.
 *
 * @internal
 */
export const stuckStreamResetKey = createContextKey<(() => void) | undefined>(undefined, { description: "promproxy stuck stream reset" });

/** The context values of every Connect call: the peer, how to tell a reset stream from a goodbye, how to reset a stuck one. @internal */
export function serverContextValues(req: { readonly socket: unknown; readonly stream?: unknown }): ContextValues {
  const values = peerContextValues(req);
  const stream = req.stream as ServerHttp2Stream | undefined;
  if (stream && typeof stream === "object" && "rstCode" in stream) {
    values.set(streamResetKey, () => wasReset(stream));
    values.set(stuckStreamResetKey, () => {
      if (!stream.closed && !stream.destroyed && (stream.writableNeedDrain || (stream.bufferSize ?? 0) > 0)) stream.close(constants.NGHTTP2_CANCEL);
    });
  }
  return values;
}

function wasReset(stream: ServerHttp2Stream): Promise<boolean> {
  // The server has not ended its side yet, so a stream that closes now was not closed by both ends.
  if (stream.destroyed || stream.closed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onClose = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      stream.off("close", onClose);
      resolve(false);
    }, graceMs);
    stream.once("close", onClose);
  });
}
