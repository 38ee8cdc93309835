/**
 * Tells a watchdog whether its process stalled: a tick that comes more than a period late means this
 * process's event loop was blocked (a host's synchronous work, a long GC, a starved CPU), and what the peer
 * sent meanwhile still waits unread in the socket. Timers run before the loop reads its sockets, so a
 * verdict of silence taken on such a tick would blame the peer for our own pause. The late tick is let
 * pass, once: the next tick, after the sockets were read, judges. Never twice in a row, so a process late
 * on every tick still ends a peer that is really silent, a period later than it would have.
 */
export function lateTicks(periodMs: number, now: () => number = Date.now): () => boolean {
  let last = now();
  let passed = false;
  return () => {
    const t = now();
    const late = t - last > 2 * periodMs && !passed;
    last = t;
    passed = late;
    return late;
  };
}
