/**
 * Scrapes given up on after their order went out (Prometheus hung up): each
 * keeps its place among the client's scrapes in flight until the client shows
 * it has read the cancel. It ends the scrape, or it answers a ping sent after
 * the cancel: one such ping at a time covers every cancel before it (a client
 * reads its stream in order). A place is held until `releaseAt` at the
 * latest, for a client that answers neither.
 *
 * So scrapes abandoned faster than a client reads cannot put more orders on
 * its stream than it has places, and a place is free again one round trip
 * after the client caught up, not after the timeout a stranger asked for.
 *
 * @internal
 */
export interface GivenUp {
  /** Holds `id`'s place until `releaseAt` at the latest; returns the nonce of a ping to send after its cancel, if one is needed. */
  add(id: bigint, releaseAt: number, now: number): bigint | undefined;
  /** The client ended `id` (an end or result frame); whether that freed a place. */
  ended(id: bigint): boolean;
  /** A pong: frees what the ping with this nonce covered; returns the nonce of the next ping needed, if any. */
  pong(nonce: bigint, now: number): bigint | undefined;
  /** Places held now (those past their release time freed first). */
  held(now: number): number;
}

/** Nonces of these pings: apart from the heartbeat's and the takeover probe's (milliseconds since 1970). */
const nonceBase = 1n << 62n;

export function createGivenUp(): GivenUp {
  const until = new Map<bigint, number>();
  let barrier: { nonce: bigint; covers: bigint[]; expires: number } | undefined;
  let count = 0n;
  const ping = (now: number) => {
    let expires = now;
    for (const t of until.values()) expires = Math.max(expires, t);
    barrier = { nonce: nonceBase + ++count, covers: [...until.keys()], expires };
    return barrier.nonce;
  };
  return {
    add(id, releaseAt, now) {
      until.set(id, releaseAt);
      if (barrier && barrier.expires <= now) barrier = undefined; // its pong was lost: the next ping covers all
      return barrier ? undefined : ping(now);
    },
    ended(id) {
      return until.delete(id);
    },
    pong(nonce, now) {
      if (!barrier || nonce !== barrier.nonce) return undefined;
      for (const id of barrier.covers) until.delete(id);
      barrier = undefined;
      return until.size > 0 ? ping(now) : undefined; // cancels sent after the ping answered: one more round
    },
    held(now) {
      for (const [id, t] of until) if (t <= now) until.delete(id);
      return until.size;
    },
  };
}
