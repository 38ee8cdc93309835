/**
 * A server's GOAWAY as the reason a welcomed stream ended. Node.js says what
 * the GOAWAY did to the stream, not what the server meant: a GOAWAY NO_ERROR
 * (a server shutting down, a balancer draining its connections) ends the
 * stream as "Stream closed with error code NGHTTP2_REFUSED_STREAM" when it
 * names no stream taken, or as a connection closed before the status (CANCEL
 * on the Connect transport) when the connection closes after it; another code
 * as "Session closed with error code 11". The first GOAWAY a connection's
 * session receives is kept, and such an end is said as that GOAWAY: its code
 * by name, its debug data (a peer's text) bounded and escaped. A status the
 * server sent (a promproxy server's "the server is shutting down") keeps its
 * words; the error's code is kept, so retries go on as before.
 *
 * @internal
 */
import type * as http2 from "node:http2";
import { ConnectError } from "@connectrpc/connect";
import { escapedLine } from "../shared/escaped-line.ts";
import { h2CodeName } from "./grpc-fast/grpc-status.ts";

/** Bytes of a GOAWAY's debug data read at most, and characters of it said at most (escapes counted). */
const maxDebugBytes = 512;
const maxDebugChars = 100;

/** The words of the first GOAWAY each connection (its session manager) received. */
const received = new WeakMap<object, string>();

/** Keeps the first GOAWAY `session` receives as `connection`'s. */
export function noteGoaway(connection: object, session: http2.Http2Session): void {
  session.once("goaway", (code: number, _lastStreamId: number, data?: Buffer) => {
    if (!received.has(connection)) received.set(connection, goawayWords(code, data));
  });
}

/** A GOAWAY in words: NO_ERROR as a server shutting down or draining, another code as an error, by name. */
export function goawayWords(code: number, data?: Uint8Array): string {
  const text = data && data.byteLength > 0 ? Buffer.from(data.buffer, data.byteOffset, Math.min(data.byteLength, maxDebugBytes)).toString("utf8") : "";
  const debug = text === "" ? "" : `, debug data "${escapedLine(text, maxDebugChars)}"`;
  if (code === 0) return `the server closed the connection (GOAWAY NO_ERROR${debug}): it is shutting down or draining`;
  return `the server closed the connection with an error (GOAWAY ${h2CodeName(code)}${debug})`;
}

/** Node.js's and our transports' words for a stream its connection ended (not a status from the server). */
const endedWithConnection = /^(Stream closed with error code|Session closed with error code|http\/2 stream closed with error code|the connection closed before the server sent|Premature close)/;

/** The error as `connection`'s GOAWAY when one came and the stream ended with the connection; else the error itself. */
export function inGoawayWords(error: ConnectError, connection: object): ConnectError {
  const words = received.get(connection);
  if (words === undefined || !endedWithConnection.test(error.rawMessage)) return error;
  const e = new ConnectError(words, error.code, error.metadata, undefined, error);
  e.details = error.details;
  return e;
}
