import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { watchOverheadBytes, type OverheadGuard } from "../shared/h2-overhead-budget.ts";

/**
 * How many bytes a server may send on one HTTP/2 session that carry nothing the client uses (option
 * `maxServerOverheadBytesPerSecond`; the budget itself: src/shared/h2-overhead-budget.ts). The control budget
 * (src/client/h2-control-budget.ts) counts the frames that wake JavaScript and the frame budget
 * (src/client/frame-budget.ts) paces DATA, but nghttp2 takes WINDOW_UPDATE, padding-only DATA, PRIORITY and unknown
 * frames in C++: a server sending them as fast as the socket takes them held the host at 26-31 % of a core
 * (WINDOW_UPDATE, ~40-50 MB/s) or 25 % (padding-only DATA, ~225 MB/s), and no log line said so (outside review,
 * round 16a). (PRIORITY and unknown frames nghttp2 itself ends, as a protocol error, after some ten thousand.)
 *
 * `check()` runs on the PING timer of src/client/h2-ping.ts (every 2 s for it while the session is quiet) and at
 * most once a second as DATA arrives. Past the limit the session is destroyed (GOAWAY ENHANCE_YOUR_CALM) with an
 * error that says what the server did; the stream fails with it, the client reports it and dials again with its
 * backoff (a stream so cut never counts as one that lived: src/client/fleet.ts).
 *
 * @internal
 */

export { defaultOverheadBytesPerSecond, type OverheadGuard } from "../shared/h2-overhead-budget.ts";

/** The words that end a session cut by this guard (src/client/fleet.ts reads them: such a stream never lived). */
export const overheadCutWords = "maxServerOverheadBytesPerSecond";

/** Watches `session` for bytes that carry no data past `perSecond`, averaged between checks. Never throws. */
export function guardOverheadBytes(session: http2.Http2Session, perSecond: number, now?: () => number): OverheadGuard {
  const cut = (overhead: number, seconds: number) =>
    new ConnectError(
      `the server sent ${overhead} bytes in ${seconds.toFixed(1)} s that carry no data (frame headers, WINDOW_UPDATE, PRIORITY, padding, unknown frames), more than ${overheadCutWords} (${perSecond} a second) allows`,
      Code.ResourceExhausted,
    );
  return watchOverheadBytes(session, perSecond, cut, now);
}
