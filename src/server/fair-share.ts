import type { Session } from "./session.ts";

/**
 * Fair shares of a full server between identities (stream auth: each token or
 * certificate is one; without auth every client is the one anonymous
 * identity, and nothing here applies). When the server is full (`maxClients`,
 * or `/clients` at `maxDiscoveryBytes`) and no vanished record can make room,
 * a newcomer whose identity holds fewer live clients than another identity
 * less one takes the place of that identity's newest live client: one token
 * that connects thousands of names can no longer lock every other team out
 * (an outside review: 692 live clients of one token kept another token's
 * first client out for good). Identities converge to equal shares; a single
 * identity is never evicted for its own newcomers.
 *
 * Returns the session to close for `identity`'s newcomer, or undefined.
 *
 * @internal
 */
export function fairShareVictim(sessions: Iterable<Session>, liveBy: ReadonlyMap<string, number>, identity = ""): Session | undefined {
  const own = liveBy.get(identity) ?? 0;
  let top: string | undefined;
  let most = own + 1; // a share larger than the newcomer's would be once admitted
  for (const [k, n] of liveBy) {
    if (n > most) {
      top = k;
      most = n;
    }
  }
  if (top === undefined) return undefined;
  let newest: Session | undefined;
  for (const s of sessions) {
    if ((s.info.identity ?? "") === top && (!newest || s.info.connectedAt >= newest.info.connectedAt)) newest = s;
  }
  return newest;
}
