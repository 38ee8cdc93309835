/**
 * When a client behind one load-balancer address looks for replicas: search
 * rounds (every searcher dials at once, so that a round of `replicaCount`
 * connections through a round-robin balancer reaches every replica) and, without
 * a count, probes for replicas not met yet. Both start fast and slow down while
 * they find nothing new, because every connection that lands on a replica the
 * client already holds costs that replica a refused stream and a ping; both
 * start fast again as soon as the replicas held change (one found, one lost).
 *
 * @internal
 */
import { createBackoff, type BackoffOptions } from "./backoff.ts";

/** Fast rounds before searching slows down to the probe interval. */
const fastRounds = 8;
/** The slowest: the probe interval times this. */
const slowest = 32;

export interface DiscoverySchedule {
  /** Resolves at the next search round (at once when `signal` aborts). */
  nextRound(signal: AbortSignal): Promise<void>;
  /** The replicas held changed: search and probe fast again. */
  changed(): void;
  /** Calls `probe` now and then (the interval doubling while nothing changes) until `stopped` aborts. */
  probeEvery(probe: () => void, stopped: AbortSignal): void;
}

export function createDiscoverySchedule(o: { backoff: BackoffOptions; intervalMs: number }): DiscoverySchedule {
  const rounds = createBackoff(o.backoff);
  let emptyRounds = 0;
  let round: { promise: Promise<void> } | undefined;
  let probeDelay = o.intervalMs;
  let rearm: (() => void) | undefined;

  const roundDelay = () => {
    const fast = rounds.next();
    const slow = emptyRounds - fastRounds;
    emptyRounds++;
    return slow < 0 ? fast : Math.min(o.intervalMs * 2 ** slow, o.intervalMs * slowest);
  };

  return {
    nextRound(signal) {
      if (!round) {
        const r = {
          promise: new Promise<void>((resolve) =>
            setTimeout(() => {
              if (round === r) round = undefined;
              resolve();
            }, roundDelay()).unref(),
          ),
        };
        round = r;
      }
      const current = round.promise;
      return new Promise<void>((resolve) => {
        if (signal.aborted) return resolve();
        const done = () => {
          signal.removeEventListener("abort", done);
          resolve();
        };
        signal.addEventListener("abort", done, { once: true });
        void current.then(done);
      });
    },
    changed() {
      rounds.reset();
      emptyRounds = 0;
      probeDelay = o.intervalMs;
      rearm?.();
    },
    probeEvery(probe, stopped) {
      let timer: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(timer);
        if (stopped.aborted) return;
        timer = setTimeout(() => {
          probe();
          probeDelay = Math.min(probeDelay * 2, o.intervalMs * slowest);
          arm();
        }, probeDelay);
        timer.unref();
      };
      rearm = arm;
      stopped.addEventListener("abort", () => clearTimeout(timer), { once: true });
      arm();
    },
  };
}
