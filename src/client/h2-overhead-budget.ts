import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { watchOverheadBytes, type OverheadGuard } from "../shared/h2-overhead-budget.ts";
import { seatOf, sharedWords, type BudgetSeat } from "./h2-budget-share.ts";
import { markBudgetCut } from "../shared/budget-cut.ts";

/**
 * How many bytes a server may send the client that carry nothing it uses (option `maxServerOverheadBytesPerSecond`,
 * all the client's HTTP/2 sessions together, each judged against its equal share: src/client/h2-budget-share.ts;
 * the budget itself: src/shared/h2-overhead-budget.ts). The control budget (src/client/h2-control-budget.ts) counts
 * the frames that wake JavaScript and the frame budget (src/client/frame-budget.ts) paces DATA, but nghttp2 takes
 * WINDOW_UPDATE, padding-only DATA, PRIORITY and unknown frames in C++: a server sending them as fast as the socket
 * takes them held the host at 26-31 % of a core (WINDOW_UPDATE, ~40-50 MB/s) or 25 % (padding-only DATA, ~225 MB/s),
 * and no log line said so (outside review, round 16a); a server naming 64 replicas got a whole budget per connection
 * before they were shared (round 18b: 44-48 % of a core). (PRIORITY and unknown frames nghttp2 itself ends, as a
 * protocol error, after some ten thousand.)
 *
 * `check()` runs on the PING timer of src/client/h2-ping.ts (every 2 s for it while the session is quiet) and at
 * most once a second as DATA arrives. Past the session's share it is destroyed (GOAWAY ENHANCE_YOUR_CALM) with an
 * error that says what the server did; the stream fails with it, the client reports it, and its next dials wait a
 * backoff that grows with such cuts in a row, client-wide (src/client/fault-backoff.ts).
 *
 * @internal
 */

export { defaultOverheadBytesPerSecond, type OverheadGuard } from "../shared/h2-overhead-budget.ts";

/**
 * Watches `session` for bytes that carry no data past its share of `budget` (a number: all its own), averaged between
 * checks; its seat is left once the session is seen destroyed (the caller leaves it on "close" as well). Never throws.
 */
export function guardOverheadBytes(session: http2.Http2Session, budget: number | BudgetSeat, now?: () => number): OverheadGuard {
  const seat = seatOf(budget);
  const cut = (overhead: number, seconds: number) => {
    const error = new ConnectError(
      `the server sent ${overhead} bytes in ${seconds.toFixed(1)} s that carry no data (frame headers, WINDOW_UPDATE, PRIORITY, padding, unknown frames), more than maxServerOverheadBytesPerSecond (${seat.total} a second) allows${sharedWords(seat)}`,
      Code.ResourceExhausted,
    );
    markBudgetCut(error, "maxServerOverheadBytesPerSecond"); // told apart by this (src/client/fault-backoff.ts), not its words
    seat.leave(); // its share goes back to the others (after the words, which say the share it had)
    return error;
  };
  const guard = watchOverheadBytes(session, () => seat.perSecond(), cut, now);
  return {
    data: guard.data,
    check(force) {
      if (session.destroyed) return seat.leave();
      guard.check(force);
    },
  };
}
