import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { seatOf, sharedWords, type BudgetSeat } from "./h2-budget-share.ts";

/**
 * How many bytes a server may send the client that carry nothing it uses (option `maxServerOverheadBytesPerSecond`,
 * all the client's HTTP/2 sessions together, each judged against its equal share: src/client/h2-budget-share.ts):
 * what a session's socket read, less the DATA its streams handed to JavaScript.
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
 * bytes that carried no data may average the session's share: past it the session is destroyed (GOAWAY ENHANCE_YOUR_CALM)
 * with an error that says what the server did; the stream fails with it, the client reports it and dials again
 * with its backoff (a stream so cut never counts as one that lived: src/client/fleet.ts). An honest server sends
 * frame headers of its DATA, the HEADERS of the stream, a PING per heartbeat, its SETTINGS and the WINDOW_UPDATEs
 * of what we upload: kilobytes a second.
 *
 * @internal
 */

/** The client's default, all its connections together: ~1 % of a core at worst (13-byte WINDOW_UPDATEs); an honest server sends a connection a few hundred bytes a second. */
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

/**
 * Watches `session` for bytes that carry no data past its share of `budget` (a number: all its own), averaged between
 * checks; its seat is left once the session is seen destroyed (the caller leaves it on "close" as well). Never throws.
 */
export function guardOverheadBytes(session: http2.Http2Session, budget: number | BudgetSeat, now: () => number = () => performance.now()): OverheadGuard {
  const seat = seatOf(budget);
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
    if (session.destroyed) return seat.leave();
    if (!force && t - at < 1000) return;
    const r = readSoFar();
    const overhead = r - read - data;
    const seconds = Math.max(1, (t - at) / 1000);
    if (overhead > seat.perSecond() * seconds) {
      const error = new ConnectError(
        `the server sent ${overhead} bytes in ${seconds.toFixed(1)} s that carry no data (frame headers, WINDOW_UPDATE, PRIORITY, padding, unknown frames), more than ${overheadCutWords} (${seat.total} a second) allows${sharedWords(seat)}`,
        Code.ResourceExhausted,
      );
      seat.leave();
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
