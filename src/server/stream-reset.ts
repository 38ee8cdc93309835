import type * as http2 from "node:http2";
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

/** The context values of every Connect call: the peer, and how to tell a reset stream from a goodbye. @internal */
export function serverContextValues(req: { readonly socket: unknown; readonly stream?: unknown }): ContextValues {
  const values = peerContextValues(req);
  const stream = req.stream as http2.ServerHttp2Stream | undefined;
  if (stream && typeof stream === "object" && "rstCode" in stream) values.set(streamResetKey, () => wasReset(stream));
  return values;
}

function wasReset(stream: http2.ServerHttp2Stream): Promise<boolean> {
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
