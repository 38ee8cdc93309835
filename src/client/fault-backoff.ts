/**
 * The client's backoff after a server's faults, client-wide (src/client/fleet.ts asks it before every dial).
 *
 * A connection cut by a budget guard (`maxServerOverheadBytesPerSecond`, `maxServerControlFramesPerSecond`:
 * src/client/h2-overhead-budget.ts, src/client/h2-control-budget.ts, told by their marker: src/shared/budget-cut.ts)
 * is a fault of the server's, and so is a stream ended for replica sets changing faster than the client follows them
 * (a burst of a few, then one a second: src/client/connection.ts). Each slot's own backoff starts over with each new
 * slot, and a server that names replica ids invents as many as it likes: a server behind one URL naming 8 replicas
 * and flooding each connection just under its share had the client search again at once after every cut, taking 2-3
 * whole budgets on average instead of 1; one that changed its set every 10 ms had it redial about once a second, each
 * new set restarting the search, the wait never growing (5.7-6.6 % of a core; outside review, round 18b).
 *
 * So such a fault counts against the client as a whole, whatever replica id the connection had: while faults follow
 * one another, the client's dials, all its slots together, go one at a time, each after a wait that grows with the
 * faults in a row (`backoff`, the client's reconnect backoff: 500 ms doubling to 30 s by default, half of each step
 * random). The row ends, and the dials are free again, only when a connection has lived `stableStreamMs`
 * (src/client/backoff.ts) without a fault: it ended after that long, or it had lived that long when the next fault
 * came. A set churning is said at most once a minute (a cut says itself: src/client/client.ts). An honest server is
 * never cut, so this never slows a client of one.
 *
 * @internal
 */
import type { ConnectError } from "@connectrpc/connect";
import { stableStreamMs, type BackoffOptions } from "./backoff.ts";
import { budgetCutOf } from "../shared/budget-cut.ts";
import { sleep } from "../shared/sleep.ts";
import type { Logger } from "../shared/logger.ts";
import { sparseLog } from "./fleet-limits.ts";

/** One connection attempt as src/client/connection.ts fills it in: when its stream was welcomed (`performance.now()`). */
export interface Attempt {
  welcomed: boolean;
  welcomedAt?: number;
}

/** What a connection's end was. @internal */
export type Fault = "budget" | "churn" | undefined;

/** Whether `error` ended a connection for a fault of the server's that counts client-wide. @internal */
export function faultOf(error: ConnectError | undefined): Fault {
  const budget = budgetCutOf(error);
  if (budget === "maxServerOverheadBytesPerSecond" || budget === "maxServerControlFramesPerSecond") return "budget"; // the guard's marker
  // Thrown in src/client/connection.ts, which another change is splitting: told by its words until it can mark it.
  return error?.rawMessage.includes("changed replica sets faster than") ? "churn" : undefined;
}

/** @internal */
export interface FaultBackoff {
  /** Resolves when this client may dial (at once unless faults are in a row; at once when `signal` aborts). */
  gate(signal: AbortSignal): Promise<void>;
  /** An attempt starts: watched, so that a fault while it lives long knows it lived. */
  started(attempt: Attempt): void;
  /** The attempt ended with `error`: whether its stream lived `stableStreamMs` without a fault (its slot's backoff starts over). */
  ended(attempt: Attempt, error: ConnectError | undefined): boolean;
  /** Faults in a row now. */
  readonly row: number;
}

/** `backoff`: the client's (option `backoff`); `log`, `name`: where a set churning is said. */
export function createFaultBackoff(c: { backoff: Required<BackoffOptions>; log: Logger; name: string }, now: () => number = () => performance.now(), random: () => number = Math.random): FaultBackoff {
  const o = c.backoff;
  const churning = sparseLog(c.log);
  /** The wait after `row` faults in a row, jittered. */
  const step = () => Math.min(o.maxMs, o.initialMs * o.multiplier ** (row - 1)) * (1 - o.jitter * random());
  const live = new Set<Attempt>();
  let row = 0;
  let notBefore = -Infinity;
  const lived = (a: Attempt, t: number) => (a.welcomedAt === undefined ? 0 : t - a.welcomedAt);
  const reset = () => {
    row = 0;
    notBefore = -Infinity;
  };
  return {
    async gate(signal) {
      // Woken together, the slots take turns: the first one past the wait sets the next one's.
      for (let t = now(); t < notBefore && !signal.aborted; t = now()) await sleep(notBefore - t, signal);
      if (row > 0 && !signal.aborted) notBefore = now() + step();
    },
    started: (a) => void live.add(a),
    ended(a, error) {
      live.delete(a);
      const t = now();
      const kind = faultOf(error), fault = kind !== undefined;
      const stable = !fault && lived(a, t) >= stableStreamMs;
      if (stable) reset();
      if (!fault) return stable;
      // A connection that lived long without a fault, cut now (its share shrank as others came), or another one
      // still living that long: the row before it is over.
      if (lived(a, t) >= stableStreamMs || [...live].some((b) => lived(b, t) >= stableStreamMs)) reset();
      // Every cut is a step, a wave of them too: a server that cuts 8 streams at once waits as long as 8 in a row.
      row++;
      const wait = step();
      notBefore = Math.max(notBefore, t + wait);
      if (kind === "churn") {
        churning(`the server's replica set changes faster than the client can follow (a server fault): its next dials wait a backoff growing with such ends in a row, client-wide (${row} in a row, the next in ${(wait / 1000).toFixed(1)} s; option backoff)`, { name: c.name });
      }
      return false;
    },
    get row() {
      return row;
    },
  };
}
