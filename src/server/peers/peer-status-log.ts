/**
 * What the poller says of a peer's health: "peer state not fetched" (warn) when its polls start failing, "peer
 * answers again" (info) when it answers after that. A peer that flaps (a signed answer, then an unsigned one,
 * every second) is said at most once per `quietMs` each way, not twice a poll; the failures left unsaid meanwhile
 * are counted in the next warning (`unsaidFailures`), and their recoveries go to debug.
 *
 * @internal
 */
import type { Logger } from "../../shared/logger.ts";

export interface PeerStatusLog {
  /** `peer`'s polls started failing (it answered, or was never polled, before this one). */
  failed(peer: object, url: string, error: string): void;
  /** `peer` answered after failing. */
  answersAgain(peer: object, url: string): void;
}

export function createPeerStatusLog(logger: Logger, quietMs = 60_000): PeerStatusLog {
  const seen = new WeakMap<object, { warnedAt: number; againAt: number; unsaid: number; quiet: boolean }>();
  const of = (peer: object) => {
    let s = seen.get(peer);
    if (!s) seen.set(peer, (s = { warnedAt: -Infinity, againAt: -Infinity, unsaid: 0, quiet: false }));
    return s;
  };
  return {
    failed(peer, url, error) {
      const s = of(peer);
      const now = Date.now();
      // A failure left unsaid: its recovery is not said either.
      s.quiet = now - s.warnedAt < quietMs;
      if (s.quiet) return void s.unsaid++;
      logger.warn("peer state not fetched", { peer: url, error, ...(s.unsaid > 0 ? { unsaidFailures: s.unsaid } : {}) });
      s.warnedAt = now;
      s.unsaid = 0;
    },
    answersAgain(peer, url) {
      const s = of(peer);
      const now = Date.now();
      const quiet = s.quiet || now - s.againAt < quietMs;
      s.quiet = false;
      if (quiet) return logger.debug("peer answers again", { peer: url });
      logger.info("peer answers again", { peer: url });
      s.againAt = now;
    },
  };
}
