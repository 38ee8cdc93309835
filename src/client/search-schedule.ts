/**
 * When a client behind one load-balancer address looks for replicas: search
 * rounds (every searcher dials at once, so that a round of `replicaCount`
 * connections through a round-robin balancer reaches every replica) and, without
 * a count, probes for replicas not met yet. Both start fast (100 ms doubling,
 * half of each delay random) and start fast again as soon as the replicas held
 * change (one found, one lost).
 *
 * While a replica is missing (`urgent`: fewer held than the announced count, or
 * without a count a replica held and lost less than `lostSearchMs` ago) rounds
 * are never more than `missingRoundMs` (10 s) apart, for as long as that lasts:
 * a replacement that listens after a long outage is found within 10 s, and the
 * replica's warm-up covers that window. Otherwise (every replica held, or
 * nothing known to be missing) rounds slow down after 8 empty ones, to the probe
 * interval doubling up to 32 times it, because every connection that lands on
 * a replica already held costs that replica a refused stream and a ping.
 *
 * @internal
 */
import { createBackoff, type BackoffOptions } from "./backoff.ts";

/** Fast rounds before searching slows down to the probe interval. */
const fastRounds = 8;
/** The slowest: the probe interval times this. */
const slowest = 32;
/** While a replica is missing: the longest wait between two search rounds (half of it random). */
export const missingRoundMs = 10_000;
/**
 * Without a replica count: how long a replica held and then lost is searched
 * for at `missingRoundMs`. A restarted replica comes back under a new id, so
 * the old one is never found again; after this the search slows down as usual.
 */
export const lostSearchMs = 10 * 60_000;

/** The delays between search rounds. @internal */
export interface RoundDelays {
  /** The wait before the next round; `urgent` while a replica is missing. Each call counts one more empty round. */
  next(urgent: boolean): number;
  /** The replicas held changed: fast again. */
  reset(): void;
  /** `ms`, capped at `missingRoundMs` (jittered) when `urgent`. */
  cap(ms: number, urgent: boolean): number;
}

export function createRoundDelays(o: { backoff: Required<BackoffOptions>; intervalMs: number }, random: () => number = Math.random): RoundDelays {
  const rounds = createBackoff(o.backoff, random);
  const jitter = o.backoff.jitter;
  let emptyRounds = 0;
  const cap = (ms: number, urgent: boolean) => (urgent ? Math.min(ms, missingRoundMs * (1 - jitter * random())) : ms);
  return {
    next(urgent) {
      const fast = rounds.next();
      const slow = emptyRounds - fastRounds;
      emptyRounds++;
      return cap(slow < 0 ? fast : Math.min(o.intervalMs * 2 ** slow, o.intervalMs * slowest), urgent);
    },
    reset() {
      rounds.reset();
      emptyRounds = 0;
    },
    cap,
  };
}

export interface SearchSchedule {
  /** Resolves at the next search round (at once when `signal` aborts). */
  nextRound(signal: AbortSignal): Promise<void>;
  /** A wait of `ms` (a reconnect backoff while searching), capped as rounds are while a replica is missing. */
  cap(ms: number): number;
  /**
   * The replicas held changed: search and probe fast again. `paced`: a server's announcement (a replica set),
   * which restarts the fast rounds at most once per `missingRoundMs`, and never delays a round already due.
   */
  changed(paced?: boolean): void;
  /**
   * A replica held is no longer held (`id` "" or undefined: one without an id): remembered, and `changed()` when
   * its stream was `stable` (lived `stableStreamMs`). One that ended sooner is searched for at the pace the rounds
   * have: a replica that welcomes and resets at once must not restart the fast rounds every time.
   */
  lost(id: string | undefined, stable?: boolean): void;
  /**
   * A replica held for the first time: `changed()`, unless a replica was lost before its stream was stable less
   * than `missingRoundMs` ago (replicas that welcome and reset, under fresh ids or not, do not keep the rounds fast).
   */
  foundNew(): void;
  /** A replica is held (again): no longer lost. */
  found(id: string): void;
  /** Forgets every lost replica but those of `ids` (the replica set): a ghost left the set, it is not searched for. */
  keepOnly(ids: ReadonlySet<string>): void;
  /** Whether a replica was lost less than `lostSearchMs` ago. */
  recentlyLost(): boolean;
  /** Calls `probe` now and then (the interval doubling while nothing changes) until `stopped` aborts. */
  probeEvery(probe: () => void, stopped: AbortSignal): void;
}

/** `urgent`: whether a replica is missing now (asked at every round); `maxLost`: most lost replicas remembered. */
export function createSearchSchedule(o: { backoff: Required<BackoffOptions>; intervalMs: number; urgent: () => boolean; maxLost: number }): SearchSchedule {
  const delays = createRoundDelays(o);
  const lost = createLostReplicas(o.maxLost);
  /** The next round, shared by every searcher waiting for it. */
  type Round = { promise: Promise<void>; fire: () => void; timer?: NodeJS.Timeout; dueAt?: number };
  let round: Round | undefined;
  let probeDelay = o.intervalMs;
  let rearm: (() => void) | undefined;
  let pacedAt = -Infinity;
  /** When a replica was last lost before its stream was stable. */
  let unstableAt = -Infinity;
  const arm = (r: Round) => {
    const ms = delays.next(o.urgent());
    if (r.dueAt !== undefined && r.dueAt <= Date.now() + ms) return; // already due sooner: a flood of changes never holds it back
    clearTimeout(r.timer);
    r.dueAt = Date.now() + ms;
    r.timer = setTimeout(r.fire, ms);
    r.timer.unref();
  };

  function changed(paced = false) {
    if (paced && Date.now() - pacedAt < missingRoundMs) return;
    if (paced) pacedAt = Date.now();
    delays.reset();
    if (round) arm(round); // a round set long ago, while nothing was missing, comes fast now
    probeDelay = o.intervalMs;
    rearm?.();
  }

  return {
    nextRound(signal) {
      if (!round) {
        let resolve = () => {};
        const r: Round = { promise: new Promise<void>((res) => (resolve = res)), fire: () => {} };
        r.fire = () => {
          if (round === r) round = undefined;
          resolve();
        };
        arm(r);
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
    cap: (ms) => delays.cap(ms, o.urgent()),
    changed,
    lost(id, stable = true) {
      if (id) lost.lost(id);
      if (stable) changed();
      else unstableAt = Date.now();
    },
    foundNew() {
      if (Date.now() - unstableAt < missingRoundMs) return; // replicas flapping (welcome, then reset): no restart
      changed();
    },
    found: (id) => lost.found(id),
    keepOnly: (ids) => lost.keepOnly(ids),
    recentlyLost: () => lost.recent(),
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

/** Replicas held and then lost, each remembered for `lostSearchMs`; at most `max` (the oldest forgotten first). */
export function createLostReplicas(max: number, now: () => number = Date.now) {
  const lost = new Map<string, number>();
  return {
    lost(id: string) {
      lost.delete(id);
      lost.set(id, now());
      for (const old of lost.keys()) if (lost.size > max) lost.delete(old);
    },
    found(id: string) {
      lost.delete(id);
    },
    keepOnly(ids: ReadonlySet<string>) {
      for (const id of lost.keys()) if (!ids.has(id)) lost.delete(id);
    },
    /** Whether one was lost less than `lostSearchMs` ago. */
    recent(): boolean {
      for (const [id, at] of lost) if (now() - at >= lostSearchMs) lost.delete(id);
      return lost.size > 0;
    },
  };
}
