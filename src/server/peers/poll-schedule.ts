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
 * due peers, those that answered last time quickly go first, then slow
 * ones, then failing ones, the longest-waiting first within each; failing
 * peers take at most half the slots, and failing and slow ones together all
 * but one while some peer answers quickly (the poller's part,
 * {@link heldBack}): addresses that stall or crawl cannot keep a healthy peer
 * waiting.
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
  /** Its last answer took long (the poller's `slowMs`). */
  slow?: boolean;
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

/** Whether `p` is held back from the poller's last slot: failing, or slow while `quickOnes` (some peer answers quickly). */
export function heldBack(p: Scheduled, quickOnes: boolean): boolean {
  return p.failures > 0 || (p.slow === true && quickOnes);
}

/** Whether a peer other than this replica answered its last poll quickly (slow ones are held back only then). */
export function quickOnes(peers: Iterable<Scheduled>): boolean {
  for (const p of peers) if (!p.self && p.failures === 0 && p.lastOkAt > 0 && !p.slow) return true;
  return false;
}

/** 0 answered quickly, 1 answered slowly, 2 failing. */
const rank = (p: Scheduled) => (p.failures > 0 ? 2 : p.slow ? 1 : 0);

/** The peers due at `now`, not being polled, in the order they are to be polled. */
export function duePeers<P extends Scheduled>(peers: Iterable<P>, now: number, o: ScheduleOptions): P[] {
  const due: { p: P; at: number }[] = [];
  for (const p of peers) {
    if (p.polling) continue;
    const at = nextPollAt(p, o);
    if (at <= now) due.push({ p, at });
  }
  // Answered quickly last time first, then slowly, then failing; the longest-waiting first within each.
  due.sort((a, b) => rank(a.p) - rank(b.p) || a.at - b.at);
  return due.map((d) => d.p);
}

/** When the next peer not being polled and not `skip`ped falls due (Date.now() time); Infinity when none. */
export function nextDueAt<P extends Scheduled>(peers: Iterable<P>, o: ScheduleOptions, skip?: (p: P) => boolean): number {
  let next = Infinity;
  for (const p of peers) if (!p.polling && !skip?.(p)) next = Math.min(next, nextPollAt(p, o));
  return next;
}
