/**
 * A message from a peer as one line that a terminal or a log shows as it is,
 * for places that print it raw (the CLI's stderr): CR, LF and tab as `\r`,
 * `\n`, `\t`; every other control character (C0, DEL, C1), the Unicode line
 * and paragraph separators and the bidirectional controls as `\uXXXX`; cut
 * to `max` characters (a cut is marked "…", and never splits an escape). A
 * forged log line or a terminal escape in it stays visible and harmless.
 * (src/shared/one-line.ts turns the same characters into spaces instead:
 * for log fields, which a logger escapes itself.)
 *
 * @internal
 */
import { unsafeChars } from "./one-line.ts";

export function escapedLine(s: string, max = 512): string {
  let out = "";
  for (const ch of s) {
    const piece = escapeChar(ch);
    if (out.length + piece.length > max) return out + "…";
    out += piece;
  }
  return out;
}

const named: Record<string, string> = { "\r": "\\r", "\n": "\\n", "\t": "\\t" };

const unsafe = new RegExp(`^[${unsafeChars}]$`);

function escapeChar(ch: string): string {
  if (!unsafe.test(ch)) return ch;
  return named[ch] ?? `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`;
}
