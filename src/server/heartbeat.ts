import { Code, ConnectError } from "@connectrpc/connect";
import { lateTicks } from "../shared/late-tick.ts";
import type { Logger } from "../shared/logger.ts";
import type { Session } from "./session.ts";

/** Frames waiting for a client to read before its stream counts as stuck (orders and credit are bounded far below). */
export const maxQueuedFrames = 1024;

/**
 * Heartbeats: one timer pings every stream every `intervalMs` and ends the
 * ones that went quiet for `timeoutMs` (no pong), or that take nothing of
 * what waits for them (frames pile up past {@link maxQueuedFrames}, or wait
 * `timeoutMs`): as dead as a silent one. Judged only on ticks that came on
 * time (src/shared/late-tick.ts): after a stall of this process, the pongs
 * may still wait unread. `dead` closes and delists a stream with its reason.
 * Returns the timer.
 *
 * @internal
 */
export function startHeartbeat(o: { intervalMs: number; timeoutMs: number; logger: Logger }, sessions: () => Iterable<Session>, dead: (s: Session, reason: string) => void): NodeJS.Timeout {
  const late = lateTicks(o.intervalMs);
  const timer = setInterval(() => {
    const now = Date.now();
    const judge = !late();
    for (const s of [...sessions()]) {
      const waited = now - (s.outbound.waitingSince ?? now);
      const silent = now - s.lastHeard > o.timeoutMs;
      if (judge && (silent || s.outbound.size > maxQueuedFrames || waited > o.timeoutMs)) {
        const unread = s.outbound.size > maxQueuedFrames ? "" : ` for ${+(waited / 1000).toFixed(1)}s`;
        const reason = silent ? `the stream went silent: nothing heard from the client for ${o.timeoutMs / 1000}s (no pong)` : `the client stopped reading its stream (${s.outbound.size} frames unread${unread})`;
        o.logger.warn("closing a client's stream", { client: s.info.name, session: s.info.sessionId, reason });
        s.close(new ConnectError(reason, Code.DeadlineExceeded));
        dead(s, reason);
      } else if (s.outbound.size === 0) {
        s.outbound.push({ frame: { case: "ping", value: { nonce: BigInt(now) } } }); // frames waiting: a ping adds nothing
      }
    }
  }, o.intervalMs);
  timer.unref();
  return timer;
}
