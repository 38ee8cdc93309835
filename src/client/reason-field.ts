import { oneLine } from "../shared/one-line.ts";

/**
 * What is said for a server's status that came without a message: none was
 * sent, or one with a raw control character in it, which HTTP/2 drops
 * (nghttp2 refuses such a header field) before any client sees it.
 *
 * @internal
 */
export const noMessageWords = "(no message: the server sent none, or one with raw control characters, which HTTP/2 drops)";

/** What oneLine keeps and a viewer may still take for a line break or a reordering. */
const lineBreakers = /[\u0080-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * A server's message as the `reason` field of a log line: one line of at most
 * 512 characters (PROTOCOL.md: control characters, C1 ones, the Unicode line
 * separators and bidirectional controls as spaces; the logger quotes and
 * escapes the field), and words for none rather than "".
 *
 * @internal
 */
export function reasonField(message: string): string {
  const line = oneLine(message.replace(lineBreakers, " "), 512);
  return line === "" ? noMessageWords : line;
}
