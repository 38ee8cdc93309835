import { oneLine } from "../shared/one-line.ts";

/**
 * What is said for a server's status that came without a message: none was
 * sent, or one with a raw control character in it, which HTTP/2 drops
 * (nghttp2 refuses such a header field) before any client sees it.
 *
 * @internal
 */
export const noMessageWords = "(no message: the server sent none, or one with raw control characters, which HTTP/2 drops)";

/**
 * A server's message as the `reason` field of a log line: one line of at most
 * 512 characters (src/shared/one-line.ts; the logger quotes and escapes the
 * field), and words for none rather than "".
 *
 * @internal
 */
export function reasonField(message: string): string {
  const line = oneLine(opensslWords(message), 512);
  return line === "" ? noMessageWords : line;
}

/** OpenSSL's `HEX:error:HEX:LIBRARY:FUNCTION:REASON:FILE:LINE[:DETAIL]`, without the codes and the source file. */
const openssl = /^[0-9A-F]+:error:[0-9A-F]+:[^:\n]*:[^:\n]*:([^:\n]+):[^:\n]*:\d+:?([^\n]*)\n?$/;

/**
 * An OpenSSL error string in words: "TLS error: REASON (DETAIL)", e.g. "TLS error: ssl/tls alert handshake failure
 * (SSL alert number 40)" for a server that ended TLS when the client refused its renegotiation. Anything else as it is.
 */
function opensslWords(message: string): string {
  const m = openssl.exec(message);
  return m ? `TLS error: ${m[1]!.trim()}${m[2]!.trim() ? ` (${m[2]!.trim()})` : ""}` : message;
}
