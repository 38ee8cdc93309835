/**
 * When each peer is polled next, and who goes first when more are due than
 * there are free poll slots.
 *
 * A peer that answered its last poll is due `pollIntervalMs` after that poll
 * started, and so is one whose polls fail while it still counts (within
 * `staleMs` of its last answer: whoever takes its address is found soon).
 * After that it is polled with a backoff: `pollIntervalMs`, then twice as
 * long after each further failure, at most `maxBackoffMs`; an answer resets it,
 * and `retryNow` (a replica unknown here polled this one) cuts it short. This replica's own address is polled
 * again every `selfRecheckMs` (whoever answers there may change). Among the
 * due peers, those that answered last time go before failing ones, the
 * longest-waiting first within each; and failing peers take at most half
 * the slots (the poller's part): addresses that stall cannot keep a healthy
 * peer waiting.
 *
 * @internal
 */

/** What the schedule reads of a peer. */
export interface Scheduled {
  /** When its last poll started (Date.now()), 0 never. */
  polledAt: number;
  /** Its polls that failed in a row, 0 after an answer. */
  failures: number;
  /** When it last answered (Date.now()), 0 never. */
  lastOkAt: number;
  /** This replica itself. */
  self: boolean;
  /** To be polled at once, whatever its backoff. */
  retryNow?: boolean;
  polling: boolean;
}

export interface ScheduleOptions {
  pollIntervalMs: number;
  /** The longest wait between two polls of a failing peer. */
  maxBackoffMs: number;
  /** How long a peer counts after its last answer. */
  staleMs: number;
  /** How often this replica's own address is polled again. */
  selfRecheckMs: number;
}

/** When `p` is to be polled next (Date.now() time); 0 for a peer never polled. */
export function nextPollAt(p: Scheduled, o: ScheduleOptions): number {
  if (p.polledAt === 0 || p.retryNow) return 0;
  if (p.self) return p.polledAt + o.selfRecheckMs;
  if (p.failures === 0 || (p.lastOkAt > 0 && p.polledAt - p.lastOkAt < o.staleMs)) return p.polledAt + o.pollIntervalMs;
  return p.polledAt + Math.min(o.maxBackoffMs, o.pollIntervalMs * 2 ** Math.min(p.failures - 1, 30));
}

/** The peers due at `now`, not being polled, in the order they are to be polled. */
export function duePeers<P extends Scheduled>(peers: Iterable<P>, now: number, o: ScheduleOptions): P[] {
  const due: { p: P; at: number }[] = [];
  for (const p of peers) {
    if (p.polling) continue;
    const at = nextPollAt(p, o);
    if (at <= now) due.push({ p, at });
  }
  // Answered last time first, then the longest-waiting.
  due.sort((a, b) => Number(a.p.failures > 0) - Number(b.p.failures > 0) || a.at - b.at);
  return due.map((d) => d.p);
}

/** When the next peer not being polled falls due (Date.now() time), failing ones only if `failing`; Infinity when none. */
export function nextDueAt(peers: Iterable<Scheduled>, o: ScheduleOptions, failing = true): number {
  let next = Infinity;
  for (const p of peers) if (!p.polling && (failing || p.failures === 0)) next = Math.min(next, nextPollAt(p, o));
  return next;
}
