import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * How many bytes a server may send on one HTTP/2 session that carry nothing the client uses (option
 * `maxServerOverheadBytesPerSecond`): what the session's socket read, less the DATA its streams handed to JavaScript.
 * The control budget (src/client/h2-control-budget.ts) counts the frames that wake JavaScript and the frame budget
 * (src/client/frame-budget.ts) paces DATA, but nghttp2 takes WINDOW_UPDATE (on stream 0 or on the Scrape stream),
 * DATA that carries only padding, PRIORITY and frames of unknown types in C++ without waking JavaScript: a server
 * sending them as fast as the socket takes them held the host at 26-31 % of a core (WINDOW_UPDATE, ~40-50 MB/s) or
 * 25 % (padding-only DATA, ~225 MB/s), for as long as it liked, and no log line said so (outside review, round 16a).
 * (PRIORITY and unknown frames nghttp2 itself ends, as a protocol error, after some ten thousand on a connection.)
 *
 * The socket's `bytesRead` counts what node:http2 consumes natively (the handle's count; cleartext bytes over TLS),
 * and `data(n)` is told each DATA chunk pushed into one of the session's streams. `check()` runs on the timer that
 * already runs per session (the PING timer of src/client/h2-ping.ts, which ticks every 2 s for it while the
 * session is quiet) and at most once a second as DATA arrives; no timer of its own. Over the time since the last check (at least a second) the
 * bytes that carried no data may average the limit: past it the session is destroyed (GOAWAY ENHANCE_YOUR_CALM)
 * with an error that says what the server did; the stream fails with it, the client reports it and dials again
 * with its backoff (a stream so cut never counts as one that lived: src/client/fleet.ts). An honest server sends
 * frame headers of its DATA, the HEADERS of the stream, a PING per heartbeat, its SETTINGS and the WINDOW_UPDATEs
 * of what we upload: kilobytes a second.
 *
 * @internal
 */

/** The client's default: ~1 % of a core at worst (13-byte WINDOW_UPDATEs), some hundred times an honest server's. */
export const defaultOverheadBytesPerSecond = 1 << 20;

/** The words that end a session cut by this guard (src/client/fleet.ts reads them: such a stream never lived). */
export const overheadCutWords = "maxServerOverheadBytesPerSecond";

/** One session's guard. @internal */
export interface OverheadGuard {
  /** `bytes` of DATA were handed to one of the session's streams. */
  data(bytes: number): void;
  /** Judges the bytes read since the last check (at least a second ago, unless `force`). Never throws. */
  check(force?: boolean): void;
}

/** Watches `session` for bytes that carry no data past `perSecond`, averaged between checks. Never throws. */
export function guardOverheadBytes(session: http2.Http2Session, perSecond: number, now: () => number = () => performance.now()): OverheadGuard {
  const readSoFar = () => {
    try {
      return Number((session.socket as { bytesRead?: number } | undefined)?.bytesRead) || 0;
    } catch {
      return 0; // the proxy throws once the session is destroyed
    }
  };
  let at = now();
  let read = readSoFar();
  let data = 0;
  const check = (force = false) => {
    const t = now();
    if (session.destroyed || (!force && t - at < 1000)) return;
    const r = readSoFar();
    const overhead = r - read - data;
    const seconds = Math.max(1, (t - at) / 1000);
    if (overhead > perSecond * seconds) {
      const error = new ConnectError(
        `the server sent ${overhead} bytes in ${seconds.toFixed(1)} s that carry no data (frame headers, WINDOW_UPDATE, PRIORITY, padding, unknown frames), more than ${overheadCutWords} (${perSecond} a second) allows`,
        Code.ResourceExhausted,
      );
      session.destroy(error, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      return;
    }
    if (t - at < 1000) return; // a forced check within the second: the window goes on
    at = t;
    read = r;
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
