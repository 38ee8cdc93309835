/**
 * Places for forwarded scrapes, per peer: at most `maxForwardsPerPeer` in
 * flight from this replica to one peer, and one source address (Prometheus';
 * an IPv4 address or an IPv6 /64) at most half of them (rounded down, at
 * least 1). A forward that finds no place is refused at once (the forwarder
 * answers 503, or asks the next holder): it is never queued behind a
 * stranger's scrapes in a connection pool, where it would time out without a
 * word while the peer never saw it (an outside review: one address's 400
 * scrapes of clients whose targets hang held the pool's 256 connections to a
 * peer, and every forwarded scrape to that peer, for every client, timed out).
 * Refusals are logged at most once a minute per kind (the cap, a share).
 *
 * @internal
 */
import type { Logger } from "../../shared/logger.ts";
import { createRefusalLogs } from "../../shared/refusal-log.ts";

/** Why a forward got no place: the metric's outcome and the one-line reason (after `not forwarded: `). */
export interface NoPlace {
  outcome: "too_many" | "too_many_from_address";
  why: string;
}

export interface ForwardPlaces {
  /**
   * A place for a scrape from `source` (a source key, src/shared/source-key.ts) to the peer at `peerUrl` (named
   * `peerName` in messages): the function that gives it back (once; later calls do nothing), or why there is none.
   */
  take(peerUrl: string, peerName: string, source: string): (() => void) | NoPlace;
  /** Forwards in flight to a peer. */
  inFlight(peerUrl: string): number;
  close(): void;
}

/** The most places one source address may hold at one peer: half of `max`, rounded down, at least 1. @internal */
export const sourceShare = (max: number) => Math.max(1, Math.floor(max / 2));

export function createForwardPlaces(o: { maxPerPeer: number; logger: Logger }): ForwardPlaces {
  const byPeer = new Map<string, { total: number; bySource: Map<string, number> }>();
  const share = sourceShare(o.maxPerPeer);
  const log = createRefusalLogs(o.logger);

  return {
    take(peerUrl, peerName, source) {
      let p = byPeer.get(peerUrl);
      const mine = p?.bySource.get(source) ?? 0;
      if ((p?.total ?? 0) >= o.maxPerPeer) {
        const why = `replica ${peerName} has ${p!.total} scrapes from this replica in flight, the most (maxForwardsPerPeer ${o.maxPerPeer})`;
        log.refused("maxForwardsPerPeer", `refusing forwarded scrapes: ${why}`, { peer: peerUrl, max: o.maxPerPeer, source });
        return { outcome: "too_many", why };
      }
      if (mine >= share) {
        const why = `replica ${peerName} has ${mine} scrapes from ${source} in flight through this replica, the most one address may have (half of maxForwardsPerPeer ${o.maxPerPeer})`;
        log.refused("share", `refusing forwarded scrapes: ${why}`, { peer: peerUrl, max: o.maxPerPeer, share, source });
        return { outcome: "too_many_from_address", why };
      }
      if (!p) byPeer.set(peerUrl, (p = { total: 0, bySource: new Map() }));
      const held = p;
      held.total++;
      held.bySource.set(source, mine + 1);
      let given = false;
      return () => {
        if (given) return;
        given = true;
        held.total--;
        const left = (held.bySource.get(source) ?? 1) - 1;
        if (left > 0) held.bySource.set(source, left);
        else held.bySource.delete(source);
        if (held.total === 0 && byPeer.get(peerUrl) === held) byPeer.delete(peerUrl);
      };
    },
    inFlight: (peerUrl) => byPeer.get(peerUrl)?.total ?? 0,
    close: () => log.close(),
  };
}
