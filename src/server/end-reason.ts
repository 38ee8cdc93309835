/**
 * Why a client's stream ended, in words an operator reads on the status page
 * and in a vanished client's 503 body: "the connection was reset", not
 * Node's `ECONNRESET`; "the client closed its connection without a
 * goodbye", not `Premature close`. Node reports every broken HTTP/2 stream
 * as `Premature close`; the stream's close code tells the cases apart
 * (CANCEL: the connection closed or the client cancelled the stream;
 * INTERNAL_ERROR: the connection failed, typically a TCP reset). Messages
 * that are not Node's or nghttp2's (our own, already in words) pass
 * unchanged (one line, cut).
 *
 * @internal
 */
import { ConnectError } from "@connectrpc/connect";
import { oneLine } from "../shared/one-line.ts";

const closedWithoutGoodbye = "the client closed its connection (or cancelled its stream) without a goodbye";
const reset = "the connection was reset";

/** Node's and nghttp2's words for a broken connection or stream, and ours. */
const known: [RegExp, string][] = [
  [/ECONNRESET|socket hang up|INTERNAL_ERROR/, reset],
  [/EPIPE/, "the connection broke while the server was writing to it"],
  [/ETIMEDOUT/, "the connection timed out"],
  [/EHOSTUNREACH|ENETUNREACH|ENETDOWN/, "the client's network became unreachable"],
  [/error code CANCEL|NGHTTP2_CANCEL/, closedWithoutGoodbye],
  [/REFUSED_STREAM/, "the client's connection refused the stream"],
  [/GOAWAY/, "the client's connection was shut down (GOAWAY)"],
  [/NGHTTP2_|ERR_HTTP2_|error code [A-Z_]+ \(0x/, "the client's connection broke the HTTP/2 protocol"],
];

function words(text: string): string | undefined {
  for (const [pattern, w] of known) if (pattern.test(text)) return w;
  return undefined;
}

/**
 * A stream's end, in words. `e` is what ended it (a ConnectError, a Node
 * error, anything); `closed` what the stream's own signal was aborted with,
 * when it was (Connect's reason carries the HTTP/2 close code).
 */
export function endReason(e: unknown, closed?: unknown): string {
  const err = ConnectError.from(e);
  const code = (err.cause as { code?: unknown } | undefined)?.code;
  const node = `${err.rawMessage} ${typeof code === "string" ? code : ""}`;
  const byClose = closed === undefined ? undefined : words(ConnectError.from(closed).rawMessage);
  if (/Premature close|ERR_STREAM_PREMATURE_CLOSE/.test(node)) return byClose ?? closedWithoutGoodbye;
  return words(node) ?? byClose ?? (oneLine(err.rawMessage, 400) || "the stream ended with an unknown error");
}
