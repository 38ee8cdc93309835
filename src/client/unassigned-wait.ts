/**
 * The wait of a slot bound to one of several server addresses whose replica
 * does not serve the client (with `replicas_per_client` K < N, a replica
 * refuses the hello of a client it is not assigned: `Unavailable` naming
 * itself; or its own set no longer gave it the client and its stream was
 * closed). Dialling it again changes nothing until the replica set changes,
 * so the slot waits for that instead of retrying on its backoff:
 *
 * - it wakes when `mayRedial(id)` says so (see {@link mayRedial}), checked
 *   on every `changed()` (a set received on any stream, a stream ended): the
 *   refusing replica left the latest set (its id changed: another process may
 *   listen there now), the latest set assigns it to the client, or the client
 *   holds no stream at all (then no set can arrive to wake it: it dials on its
 *   ordinary backoff, and parks only once it holds a stream again);
 * - a wake on a change is spread over `spreadMs` at random, so that the
 *   clients of a fleet that all heard the same set do not redial at once;
 * - whatever happens, it wakes after `capMs` (half of it random), so a client
 *   that never hears a set again still retries now and then.
 *
 * @internal
 */
import { replicaIdKey } from "../shared/replica-header.ts";
import type { ConnectError } from "@connectrpc/connect";
import { notServedHere } from "./search-refusal.ts";

/** The longest a slot waits for a change before it dials its replica again: 5 minutes (half of it random). */
export const unassignedCapMs = 300_000;
/** The spread of the wakes a change of the replica set brings: 1 s. */
export const unassignedSpreadMs = 1_000;

export interface UnassignedWaitOptions {
  /** Whether a slot refused by replica `id` may dial it again now. */
  mayRedial(id: string): boolean;
  /** The longest wait (the last half of it random). Default {@link unassignedCapMs}. */
  capMs?: number;
  /** The spread of wakes on a change. Default {@link unassignedSpreadMs}. */
  spreadMs?: number;
  /** Random numbers in [0, 1) (tests fix them). Default Math.random. */
  random?: () => number;
}

export interface UnassignedWaits {
  /**
   * For a slot refused by replica `id` (undefined: none): false at once when it may dial now; else true once
   * `mayRedial(id)` holds at a `changed()`, after the cap, or when `signal` aborts. Never rejects.
   */
  park(id: string | undefined, signal: AbortSignal): Promise<boolean>;
  /** What `mayRedial` reads may have changed: every parked slot asks it again. */
  changed(): void;
  /** Slots waiting now. */
  readonly waiting: number;
}

/** The replica a refusal says does not serve this client, or undefined for any other outcome. */
export function unassignedBy(error: ConnectError | undefined): string | undefined {
  return notServedHere(error) ? (error!.metadata.get(replicaIdKey) ?? undefined) : undefined;
}

/**
 * Whether a slot refused by replica `id` may dial again: `id` left the latest set (`ids`), the set assigns it to
 * this client (`wanted`), or no set is known or no stream is held (nothing would wake it).
 */
export function mayRedial(id: string, ids: readonly string[] | undefined, wanted: ReadonlySet<string> | undefined, held: number): boolean {
  return held === 0 || ids === undefined || !ids.includes(id) || wanted?.has(id) === true;
}

export function createUnassignedWaits(o: UnassignedWaitOptions): UnassignedWaits {
  const capMs = o.capMs ?? unassignedCapMs;
  const spreadMs = o.spreadMs ?? unassignedSpreadMs;
  const random = o.random ?? Math.random;
  /** Each waiter: its condition, and how to wake it after a delay. */
  const waiters = new Map<() => boolean, (delayMs: number) => void>();
  return {
    park(id, signal) {
      if (id === undefined || signal.aborted || o.mayRedial(id)) return Promise.resolve(false);
      const over = () => o.mayRedial(id);
      return new Promise<boolean>((resolve) => {
        let wake: ReturnType<typeof setTimeout> | undefined;
        const cap = setTimeout(done, capMs * (0.5 + random() / 2));
        function done() {
          clearTimeout(cap);
          clearTimeout(wake);
          waiters.delete(over);
          signal.removeEventListener("abort", done);
          resolve(true);
        }
        signal.addEventListener("abort", done, { once: true });
        waiters.set(over, (delayMs) => {
          waiters.delete(over); // woken once: a later change does not reschedule it
          wake = setTimeout(done, delayMs);
        });
      });
    },
    changed() {
      for (const [over, wake] of [...waiters]) if (over()) wake(spreadMs * random());
    },
    get waiting() {
      return waiters.size;
    },
  };
}
