import { Code, ConnectError } from "@connectrpc/connect";
import { lateTicks } from "../shared/late-tick.ts";
import type { OutQueue } from "./out-queue.ts";

/**
 * The client's watch over a welcomed stream: it ends the stream (through `abort`) when nothing was heard
 * from the server for `heartbeatMisses` heartbeat intervals (at least 1 s), or when the server has read
 * nothing we sent for as long. A tick that comes late because the host's event loop was blocked judges
 * nothing: the server's pings may be waiting unread in the socket (src/shared/late-tick.ts).
 * Returns the timer, for the stream to clear when it ends.
 */
export function watchStream(intervalMs: number, heartbeatMisses: number, out: Pick<OutQueue, "waitingSinceMs" | "size">, lastHeard: () => number, abort: (e: ConnectError) => void): NodeJS.Timeout {
  const silenceMs = Math.max(1000, intervalMs * heartbeatMisses);
  const periodMs = Math.max(250, Math.min(intervalMs, silenceMs / 4));
  const late = lateTicks(periodMs);
  return setInterval(() => {
    if (late()) return;
    const now = Date.now();
    // A server that never reads: our frames (a pong at least) wait for it as long as silence would. Said
    // first: while our answers pile up we stop reading the server too, so it also looks silent.
    const waiting = out.waitingSinceMs;
    if (waiting !== undefined && now - waiting > silenceMs) {
      abort(new ConnectError(`the server has read nothing we sent for ${silenceMs / 1000}s (${out.size} frames waiting)`, Code.ResourceExhausted));
    }
    if (now - lastHeard() > silenceMs) abort(new ConnectError(`nothing heard from the server for ${silenceMs / 1000}s`, Code.Unavailable));
  }, periodMs);
}
