/**
 * Which replicas a client behind one address is to hold, from what its
 * servers announced:
 *
 * - a replica set (Welcome.replica_ids, or a ReplicaSet frame; the latest
 *   received on any live stream wins): the replicas of the set assigned to
 *   the client (every one, or `replicas_per_client` chosen by rendezvous
 *   hashing of its name, src/shared/rendezvous.ts) are searched for; one
 *   outside them is not (a lost one is forgotten). Which streams are closed
 *   is for each replica's own set to say (`assigns`, fleet.ts).
 * - without a set, a replica count (Welcome.replica_count): that many
 *   distinct replicas, whichever they are.
 * - neither: the fleet searches for the replicas it has met (fleet.ts).
 *
 * @internal
 */
import { assignedReplicas } from "../shared/rendezvous.ts";
import { maxSearchers } from "./fleet-limits.ts";
import type { ReplicaSet } from "./replica-set.ts";

/** Whether `set` gives replica `id` to client `name` (every replica, or one of the K it is assigned). */
export function assigns(name: string, set: ReplicaSet, id: string): boolean {
  return set.ids.includes(id) && assignedReplicas(name, set.ids, set.perClient).includes(id);
}

export interface ReplicaTarget {
  /** The replica count of the latest welcome (capped at `maxReplicas`); 0: unknown. */
  readonly count: number;
  /** The replica ids of the latest set; undefined without a set. */
  readonly ids: readonly string[] | undefined;
  /** The replicas to hold under the latest set; undefined without a set. */
  readonly wanted: ReadonlySet<string> | undefined;
  /** Whether a set or a count says what to hold (else the fleet searches for the replicas it met). */
  readonly known: boolean;
  /** A welcome's count and set, from replica `from`; true when the replicas to hold changed. */
  welcome(count: number, set: ReplicaSet | undefined, from: string): boolean;
  /** A ReplicaSet frame on replica `from`'s stream; true when the replicas to hold changed. */
  follow(set: ReplicaSet, from: string): boolean;
  /**
   * Whether a replica to hold is not held: one that the own set of a replica held gives this client (so one
   * replica's set, a rogue's, cannot hide the others' replicas from the search); the latest set while no replica
   * held has sent one.
   */
  missing(held: ReadonlySet<string>): boolean;
  /** How many connections search at once: while one is missing, a round through a round-robin balancer meets every replica. */
  searchers(held: ReadonlySet<string>): number;
}

export function createReplicaTarget(name: string, maxReplicas: number): ReplicaTarget {
  let count = 0;
  let wanted: Set<string> | undefined;
  let ids: readonly string[] | undefined;
  /** What the latest set of each replica (by id) gives this client, the oldest forgotten past 2 x maxReplicas. */
  const byReplica = new Map<string, readonly string[]>();
  const follow = (set: ReplicaSet, from: string): boolean => {
    const next = new Set(assignedReplicas(name, set.ids, set.perClient));
    byReplica.delete(from);
    byReplica.set(from, [...next]);
    if (byReplica.size > 2 * maxReplicas) byReplica.delete(byReplica.keys().next().value as string);
    ids = set.ids;
    const same = wanted !== undefined && wanted.size === next.size && [...next].every((id) => wanted!.has(id));
    wanted = next;
    return !same;
  };
  return {
    get count() {
      return count;
    },
    get ids() {
      return ids;
    },
    get wanted() {
      return wanted;
    },
    get known() {
      return wanted !== undefined || count > 0;
    },
    welcome(c, set, from) {
      count = Math.min(c, maxReplicas);
      return set ? follow(set, from) : false;
    },
    follow,
    missing(held) {
      if (!wanted) return count > 0 && held.size < count;
      const given = [...held].flatMap((id) => byReplica.get(id) ?? []);
      return (given.length > 0 ? given : [...wanted]).some((id) => !held.has(id));
    },
    searchers(held) {
      if (!this.missing(held)) return 0;
      return Math.min(wanted ? (ids?.length ?? 0) : count, maxSearchers);
    },
  };
}
