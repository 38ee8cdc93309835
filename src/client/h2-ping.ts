import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { lateTicks } from "../shared/late-tick.ts";

/** How a connection's HTTP/2 PINGs are paced and judged (client options `pingIntervalMs`, `pingTimeoutMs`). @internal */
export interface PingOptions {
  /** A PING goes out once the connection has been quiet this long: nothing read from it, no PING answered. */
  intervalMs: number;
  /** A PING still unanswered after this long (time on ticks that came on time) drops the connection. */
  timeoutMs: number;
  /** Called on each of the timer's ticks (at least every `intervalMs`, or `tickMs`): the session's other cheap checks. */
  onTick?: () => void;
  /** With `onTick`: the quiet wait for the next PING ticks at least this often (default: only when the PING is due). */
  tickMs?: number;
}

/** One session's PINGs. @internal */
export interface SessionPings {
  /** Something was read from the session: it lives, and the next PING waits a whole interval from now. */
  alive(): void;
  /** Stops for good, timers cleared (the session closed, or its connection is let go). Idempotent. */
  stop(): void;
  /** PINGs sent so far (never more than one unanswered). */
  readonly sent: number;
}

/**
 * Keeps an HTTP/2 client session's PINGs, in place of connect-node's (src/client/h2-connection.ts turns those
 * off): a PING once the session has been quiet for `intervalMs`, at most one unanswered at a time, and the
 * session destroyed (an `Unavailable` error that names `pingTimeoutMs`) when a PING has waited `timeoutMs`
 * unanswered.
 *
 * Why not connect-node's (2.2): its timeout fires on the first tick after the host's event loop was blocked
 * (a host's synchronous work, a long GC, a starved CPU) right after a PING went out, before the loop reads the
 * PING's answer waiting in the socket, and destroys a healthy connection: the client redials, the server
 * sees a drop (test/stalled-loop.test.ts). Here the wait is judged on ticks every quarter of `timeoutMs`,
 * and the time up to a tick that came more than a period late counts for nothing, as our other watchdogs
 * judge (src/shared/late-tick.ts): the stall is ours, not the server's. Never two late ticks in a row, so a
 * host late on every tick still drops a server that answers nothing, within about twice `timeoutMs`.
 *
 * No timer outlives the session: each checks that the session still lives before it touches it, `ping()` is
 * never called on a destroyed session (it would throw ERR_HTTP2_INVALID_SESSION into the host; the lesson of
 * connectrpc/connect-es#1795), the session's `"close"` stops everything, and the timers never hold the
 * process open (unref'd: the session's stream does while it is open).
 *
 * @internal
 */
export function pingSession(session: http2.ClientHttp2Session, o: PingOptions, now: () => number = Date.now): SessionPings {
  const periodMs = Math.max(1, o.timeoutMs / 4);
  let lastAlive = now();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let sent = 0;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    clearTimeout(timer); // an interval too
    timer = undefined;
    session.off("close", stop);
  };
  const gone = () => stopped || session.destroyed;
  const wait = (ms: number) => {
    timer = setTimeout(due, o.onTick && o.tickMs ? Math.min(ms, o.tickMs) : ms);
    timer.unref();
  };
  const drop = (message: string) => {
    stop();
    if (!session.destroyed) session.destroy(new ConnectError(message, Code.Unavailable), http2.constants.NGHTTP2_CANCEL);
  };
  function due() {
    timer = undefined;
    if (gone()) return stop();
    o.onTick?.();
    if (gone()) return stop();
    const quiet = now() - lastAlive;
    if (quiet < o.intervalMs) return wait(o.intervalMs - quiet); // something was read meanwhile
    send();
  }
  function send() {
    const late = lateTicks(periodMs, now);
    let last = now();
    let waited = 0;
    let out: boolean;
    try {
      out = session.ping(answered);
    } catch {
      return stop(); // the session died between the check and the call: its "close" ends the rest
    }
    sent++;
    // Refused only past Node's maxOutstandingPings (10), which one PING at a time never reaches.
    if (!out) return drop("HTTP/2 PING refused by the session (too many unanswered)");
    timer = setInterval(() => {
      if (gone()) return stop();
      o.onTick?.();
      if (gone()) return stop();
      const t = now();
      if (!late()) waited += t - last; // a late tick: the host stalled, the answer may wait unread
      last = t;
      if (waited > o.timeoutMs) drop(`the server answered no HTTP/2 PING within ${o.timeoutMs / 1000}s (pingTimeoutMs)`);
    }, periodMs);
    timer.unref();
  }
  function answered(err: Error | null) {
    if (stopped) return;
    clearInterval(timer);
    timer = undefined;
    // ERR_HTTP2_PING_CANCEL: the session is being destroyed, and its "close" stops us.
    if (err) return session.destroyed ? stop() : drop(`HTTP/2 PING failed: ${err.message.slice(0, 200)}`);
    lastAlive = now();
    wait(o.intervalMs);
  }
  session.on("close", stop);
  wait(o.intervalMs);
  return {
    alive: () => void (lastAlive = now()),
    stop,
    get sent() {
      return sent;
    },
  };
}
