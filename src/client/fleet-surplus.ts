/**
 * When a free slot of the fleet (src/client/fleet.ts: slots dialling the one
 * address of a load balancer) ends instead of searching on: the search holds
 * at most as many connections as it needs (`ReplicaTarget.searchers`, at most
 * 8), whatever a server makes of the attempts (refused, welcomed under an id
 * held already, welcomed and reset).
 *
 * @internal
 */
import type { Slot } from "./fleet-slot.ts";
import type { ReplicaTarget } from "./replica-target.ts";

/** Consecutive attempts without a welcome after which a slot searching without a replica count gives up. */
export const searchAttempts = 8;

/** What the fleet knows now: its free slots, those searching, the replicas held, the target. */
export interface SurplusContext {
  freeSlots(): Slot[];
  /** Free slots holding nothing, but `except`. */
  searchers(except?: Slot): Slot[];
  heldIds(): Set<string>;
  /** Whether a replica is missing. */
  urgent(): boolean;
  target: ReplicaTarget;
}

export function createSurplus(c: SurplusContext) {
  const others = (slot: Slot) => c.freeSlots().some((s) => s !== slot);
  return {
    /** Whether a free slot whose attempt found nothing new (`refused`: welcomed and closed again) should end. */
    surplus(slot: Slot, misses: number, refused: boolean): boolean {
      if (slot.endpoint || !others(slot)) return false;
      if (refused) return true;
      if (c.target.known) return c.searchers(slot).length >= c.target.searchers(c.heldIds());
      return slot.probe || (misses >= searchAttempts && !c.urgent());
    },
    /**
     * Whether a free slot whose welcomed stream (to replica `id`) ended should end: that replica is held by a newer
     * stream, or enough others search (a server welcoming every searcher under one id must not grow the search by a
     * slot a welcome).
     */
    spare(slot: Slot, id: string | undefined): boolean {
      if (slot.endpoint || !others(slot)) return false;
      if (c.target.known) return c.searchers(slot).length >= c.target.searchers(c.heldIds());
      return id !== undefined && c.heldIds().has(id);
    },
  };
}
