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
  const line = oneLine(message, 512);
  return line === "" ? noMessageWords : line;
}
