/**
 * When each peer is polled next, and who goes first when more are due than
 * there are free poll slots.
 *
 * A peer is due `pollIntervalMs` after its last poll started; this replica's
 * own address is polled once, to learn that it is ours. Among the due peers,
 * the longest-waiting go first.
 *
 * @internal
 */

/** What the schedule reads of a peer. */
export interface Scheduled {
  /** When its last poll started (Date.now()), 0 never. */
  polledAt: number;
  /** This replica itself. */
  self: boolean;
  polling: boolean;
}

export interface ScheduleOptions {
  pollIntervalMs: number;
}

/** When `p` is to be polled next (Date.now() time); 0 for a peer never polled, Infinity for this replica. */
export function nextPollAt(p: Scheduled, o: ScheduleOptions): number {
  if (p.polledAt === 0) return 0;
  if (p.self) return Infinity;
  return p.polledAt + o.pollIntervalMs;
}

/** The peers due at `now`, not being polled, in the order they are to be polled. */
export function duePeers<P extends Scheduled>(peers: Iterable<P>, now: number, o: ScheduleOptions): P[] {
  const due: { p: P; at: number }[] = [];
  for (const p of peers) {
    if (p.polling) continue;
    const at = nextPollAt(p, o);
    if (at <= now) due.push({ p, at });
  }
  due.sort((a, b) => a.at - b.at);
  return due.map((d) => d.p);
}

/** When the next peer not being polled falls due (Date.now() time); Infinity when none. */
export function nextDueAt(peers: Iterable<Scheduled>, o: ScheduleOptions): number {
  let next = Infinity;
  for (const p of peers) if (!p.polling) next = Math.min(next, nextPollAt(p, o));
  return next;
}
