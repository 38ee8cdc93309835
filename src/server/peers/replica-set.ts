/**
 * The replica set this replica announces to its clients: its own id and the
 * ids of the peers that answered lately and are ready or still starting (not
 * ready yet, never seen ready: a replica warming up is to get its clients; one
 * that turned unready, draining, has left), sorted, at most `maxIds` (this
 * replica always among them). Unknown (empty) until every
 * peer has answered once: a partial set would send clients to the wrong
 * replicas. Sent in every welcome, and in a ReplicaSet frame to the streams
 * that negotiated the feature "replica-set" when it changes: checked every
 * `intervalMs` (a second), so a flapping peer costs each stream at most one
 * frame a second, the latest set winning.
 *
 * @internal
 */
import { headerSafe } from "../../shared/replica-header.ts";
import type { Session } from "../session.ts";
import type { Peer } from "./peer-poller.ts";

export interface ReplicaSetFeed {
  /** The current set, sorted; empty while unknown. */
  current(): string[];
  /** A stream whose welcome named "replica-set": it gets a frame whenever the set changes, until it closes. */
  subscribe(session: Session): void;
  close(): void;
}

export interface ReplicaSetOptions {
  replicaId: string;
  /** Replicas each client holds (Welcome.replicas_per_client); 0: all. */
  perClient: number;
  /** Peers answered lately (not this replica). */
  fresh(): Peer[];
  /** Whether every peer has answered once. */
  synced(): boolean;
  /** Most ids in the set (clients refuse more than their maxReplicas, 64 by default). */
  maxIds: number;
  intervalMs: number;
}

export function createReplicaSetFeed(o: ReplicaSetOptions): ReplicaSetFeed {
  const streams = new Set<Session>();
  let sent = "";
  /** Peer ids seen ready, the oldest forgotten past 1,024 (ids come and go with restarts). */
  const seenReady = new Set<string>();

  function current(): string[] {
    if (!o.synced()) return [];
    const others = new Set<string>();
    for (const p of o.fresh()) {
      const id = p.state?.id;
      if (!id || id === o.replicaId || id.length > 128 || !headerSafe(id)) continue;
      if (p.state?.ready && !seenReady.has(id)) {
        seenReady.add(id);
        for (const old of seenReady) if (seenReady.size > 1024) seenReady.delete(old);
      }
      if (p.state?.ready || !seenReady.has(id)) others.add(id);
    }
    return [o.replicaId, ...[...others].sort().slice(0, o.maxIds - 1)].sort();
  }

  const timer = setInterval(() => {
    const ids = current();
    const key = ids.join("\n");
    const changed = key !== sent && ids.length > 0;
    if (changed) sent = key;
    for (const s of streams) {
      if (s.outbound.closed) streams.delete(s);
      else if (changed) s.outbound.push({ frame: { case: "replicaSet", value: { replicaIds: ids, replicasPerClient: o.perClient } } });
    }
  }, o.intervalMs);
  timer.unref();

  return {
    current,
    subscribe(session) {
      if (session.features.includes("replica-set")) streams.add(session);
    },
    close() {
      clearInterval(timer);
      streams.clear();
    },
  };
}
