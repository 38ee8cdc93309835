import * as http2 from "node:http2";

/**
 * How many bytes a peer may send on one HTTP/2 session that carry nothing its streams use: what the session's
 * socket read, less the DATA its streams handed to JavaScript. nghttp2 takes WINDOW_UPDATE (on stream 0 or on a
 * stream), DATA that carries only padding, PRIORITY, frames of unknown types and HEADERS whose streams are refused
 * in C++ without waking JavaScript: a peer sending them as fast as the socket takes them holds a core for as long
 * as it likes, and no log line says so. The client guards its sessions with it (option
 * `maxServerOverheadBytesPerSecond`, src/client/h2-overhead-budget.ts; outside review, round 16a), the server its
 * sessions (option `maxClientOverheadBytesPerSecond`, src/server/listen/h2-session-guards.ts; round 18a: six
 * connections sending WINDOW_UPDATEs held it at 83-100 % of a core).
 *
 * The socket's `bytesRead` counts what node:http2 consumes natively (the handle's count; cleartext bytes over TLS),
 * and `data(n)` is told each DATA chunk pushed into one of the session's streams (node:http2 pushes every chunk as
 * it is read, paused stream or not). `check()` runs on a timer the caller already has, and at most once a second
 * as DATA arrives; no timer of its own. Over the time since the last check (at least a second) the bytes that
 * carried no data may average the limit: past it the session is destroyed (GOAWAY ENHANCE_YOUR_CALM) with the
 * error `cut` makes. An honest peer sends frame headers of its DATA, HEADERS, a PING now and then, its SETTINGS and
 * the WINDOW_UPDATEs of what it is sent: kilobytes a second.
 *
 * @internal
 */

/** The default of both sides: ~1 % of a core at worst (13-byte WINDOW_UPDATEs), some hundred times an honest peer's. */
export const defaultOverheadBytesPerSecond = 1 << 20;
/** The bounds of both sides' option. */
export const minOverheadBytesPerSecond = 1 << 16;
export const maxOverheadBytesPerSecond = 1 << 30;

/** One session's guard. @internal */
export interface OverheadGuard {
  /** `bytes` of DATA were handed to one of the session's streams. */
  data(bytes: number): void;
  /** Judges the bytes read since the last check (at least a second ago, unless `force`). Never throws. */
  check(force?: boolean): void;
}

/** The error a session is destroyed with: `overhead` bytes without data in `seconds`. */
export type OverheadCut = (overhead: number, seconds: number) => Error;

/**
 * Watches `session` for bytes that carry no data past `perSecond` (or what it returns at each check: a share of a
 * budget other sessions hold too), averaged between checks. With `writtenShare`,
 * each byte the session's socket wrote allows that much more (the WINDOW_UPDATEs an honest peer sends for what it
 * is sent grow with it), and so does each byte of DATA it read (the frame headers of what an honest peer sends, and
 * the DATA a native read took that reaches its stream only after the check). Never throws.
 */
export function watchOverheadBytes(
  session: http2.Http2Session,
  perSecond: number | (() => number),
  cut: OverheadCut,
  now: () => number = () => performance.now(),
  writtenShare = 0,
): OverheadGuard {
  const soFar = (k: "bytesRead" | "bytesWritten") => {
    try {
      return Number((session.socket as { bytesRead?: number; bytesWritten?: number } | undefined)?.[k]) || 0;
    } catch {
      return 0; // the proxy throws once the session is destroyed
    }
  };
  let at = now();
  let read = soFar("bytesRead");
  let written = writtenShare ? soFar("bytesWritten") : 0;
  let data = 0;
  const check = (force = false) => {
    const t = now();
    if (session.destroyed || (!force && t - at < 1000)) return;
    const r = soFar("bytesRead");
    const w = writtenShare ? soFar("bytesWritten") : 0;
    const overhead = r - read - data;
    const seconds = Math.max(1, (t - at) / 1000);
    const limit = typeof perSecond === "number" ? perSecond : perSecond();
    // DATA read earns the same share: a native read's DATA not yet handed to a stream at the check counts as overhead
    // for that window (66-72 KB in a second from an honest client sending 2 MB results, against 64 KiB allowed).
    if (overhead > limit * seconds + (w - written + data) * writtenShare) {
      session.destroy(cut(overhead, seconds), http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      return;
    }
    if (t - at < 1000) return; // a forced check within the second: the window goes on
    at = t;
    read = r;
    written = w;
    data = 0;
  };
  return {
    data(bytes) {
      data += bytes;
      check();
    },
    check,
  };
}
