/**
 * How much of the host's time the registry's renders may take (option `maxRenderPercent`), whoever orders them.
 *
 * - A scrape that comes while a render of its format (OpenMetrics or text, gzip or not) is running shares it.
 * - Renders are paid from a bucket of render time that fills at `percent` of the clock (10 %: 100 ms a second)
 *   and holds at most one second's worth. A render may start while the bucket is not empty; what it cost (the
 *   event loop's busy time while it ran, so a collector awaiting I/O is not charged for the wait, plus its work
 *   off the loop: a gzip on the thread pool) is taken out afterwards. While renders run, their cost is not taken
 *   out yet: another format's render starts beside them only if the bucket also holds what they are expected to
 *   cost (each as much as the last render that ended; before any ended, nothing starts beside one), and waits for
 *   one to end otherwise. A server ordering the four formats in one write got four renders at once on a full
 *   bucket: a 2 MB registry blocked the host's loop ~3.2 s instead of ~0.75 s (review 17a).
 * - With the bucket empty, a scrape gets the latest render of its format if that began at most `maxAgeMs` ago,
 *   or waits until the bucket is out of debt (a tenth of a second for a 10 ms render at 10 %), `maxWaitMs` at
 *   most. The charge is the event loop's busy time, which in a busy host includes the host's own work while a
 *   render awaited I/O; the cap keeps such a render from parking scrapes for long. A render that then starts with
 *   the bucket still in debt is forced: one per `maxWaitMs` for the whole gate, whatever its format (a scrape of
 *   another format waits for the next turn, the four formats' turns coming within 4 x `maxWaitMs`). Past the
 *   budget, then, the registry renders about once a second at most (a recent render of each format serves the
 *   rest): a flood costs at most the budget, plus one render a second for registries whose render alone exceeds
 *   it, in whatever formats it is asked (before, one a second per format: a server rotating the four took three
 *   times the CPU of one asking for one; round 16a). A registry whose
 *   renders take less than the budget of the scrape interval (10 ms of every 100 ms at 10 %) is rendered fresh
 *   for every scrape; one that takes more (a 200 ms render every second) gets some scrapes a render up to 1 s old.
 *
 * A render is kept for reuse only while the bucket is empty, and dropped `maxAgeMs` later: a host that is
 * scraped normally holds no copy of its metrics between scrapes.
 *
 * @internal
 */
import { performance } from "node:perf_hooks";

export interface RenderGateOptions<T> {
  /** Most of one core the renders take over time, in percent (1-100); 100: every scrape renders. */
  percent: number;
  /** The oldest render handed to a scrape while the bucket is empty. Default 1 000 ms. */
  maxAgeMs?: number;
  /**
   * The longest a scrape waits for the bucket, with no recent render to take, before it renders anyway; and the
   * least time between two such renders in debt, all formats together (so a scrape may wait for the other
   * formats' turns: 4 x this at most). Default 1 000 ms.
   */
  maxWaitMs?: number;
  /** The clock, in ms. Default `performance.now`. */
  now?: () => number;
  /** A wait of `ms` (the clock's ms) that does not hold the process open. Default an unref'd `setTimeout`. */
  sleep?: (ms: number) => Promise<void>;
  /** The event loop's busy time so far, in ms. Default from `performance.eventLoopUtilization()`. */
  busyMs?: () => number;
  /** Called for each scrape that gets a recent render or waits because the budget is spent. */
  onSpent?: () => void;
  /** A render's cost off the event loop, in ms (a gzip on the thread pool), charged besides its busy time. */
  offLoopMs?: (value: T) => number;
}

export interface RenderGate<T> {
  /** The result of `work` for `key`: its own, a shared one, or (with the budget spent) a recent one. */
  render(key: string, work: () => Promise<T>): Promise<T>;
}

interface Slot<T> {
  pending?: Promise<T>;
  last?: { value: T; at: number; drop: NodeJS.Timeout };
}

export function createRenderGate<T>(o: RenderGateOptions<T>): RenderGate<T> {
  const now = o.now ?? (() => performance.now());
  const busyMs = o.busyMs ?? (() => performance.eventLoopUtilization().active);
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref()));
  const maxAgeMs = o.maxAgeMs ?? 1_000;
  const maxWaitMs = o.maxWaitMs ?? 1_000;
  const perMs = o.percent / 100;
  const cap = 1_000 * perMs;
  let tokens = cap;
  let at = now();
  const slots = new Map<string, Slot<T>>();
  /** When the next render in debt may start (one per maxWaitMs, whatever its format). */
  let forcedAfter = Number.NEGATIVE_INFINITY;
  /** Renders running, what the last one that ended cost (undefined: none ended yet), and who waits for one to end. */
  let running = 0;
  let lastCost: number | undefined;
  const waiters: (() => void)[] = [];
  /** The bucket pays for one more render now: not in debt, and holding what the running ones are expected to cost. */
  const affordable = () => tokens >= 0 && (running === 0 || (lastCost !== undefined && tokens >= running * lastCost));
  const refill = () => {
    const t = now();
    tokens = Math.min(cap, tokens + (t - at) * perMs);
    at = t;
  };

  function run(slot: Slot<T>, work: () => Promise<T>): Promise<T> {
    const busyBefore = busyMs();
    const startedAt = now(); // a render's age runs from its start: what it shows is no older than that
    running++;
    const p = Promise.resolve().then(work);
    const settle = (value?: T) => {
      if (slot.pending === p) slot.pending = undefined;
      refill();
      lastCost = Math.max(0, busyMs() - busyBefore) + (value === undefined ? 0 : o.offLoopMs?.(value) ?? 0);
      tokens -= lastCost;
      running--;
      for (const wake of waiters.splice(0)) wake();
      if (value === undefined || tokens >= 0) return;
      // Spent: the next scrapes of this format take this render while it is recent.
      if (slot.last) clearTimeout(slot.last.drop);
      const last = { value, at: startedAt, drop: setTimeout(() => slot.last === last && (slot.last = undefined), Math.max(1, startedAt + maxAgeMs - now())) };
      last.drop.unref();
      slot.last = last;
    };
    p.then(settle, () => settle());
    return p;
  }

  /** Starts `work` for `slot` now, or decides what its scrapes get instead: a recent render, or a wait. */
  function admit(slot: Slot<T>, work: () => Promise<T>): Promise<T> {
    refill();
    if (affordable()) return (slot.pending = run(slot, work));
    if (tokens >= 0) {
      // Renders running, not charged yet, may take what the bucket holds: wait for one to end, then ask again (the
      // scrapes of this format meanwhile share the wait).
      const waiting: Promise<T> = new Promise<void>((wake) => waiters.push(wake)).then(() => {
        if (slot.pending === waiting) slot.pending = undefined;
        return admit(slot, work);
      });
      return (slot.pending = waiting);
    }
    o.onSpent?.();
    const last = slot.last;
    if (last && now() - last.at <= maxAgeMs) return Promise.resolve(last.value);
    // At most maxWaitMs for the budget: a render charged for the host's own work while it awaited I/O must not
    // park scrapes. Then it renders, in debt or not; but in debt, one such forced render per maxWaitMs for the
    // whole gate, all formats together: a server rotating the four formats gets no more renders than one asking
    // for one (round 16a: it had each format render once a second past the budget, three times its CPU).
    const waitMs = Math.min(maxWaitMs, Math.ceil(-tokens / perMs));
    const waiting = sleep(waitMs).then(async () => {
      for (refill(); tokens < 0 && now() < forcedAfter; refill()) await sleep(forcedAfter - now());
      if (tokens < 0) forcedAfter = now() + maxWaitMs;
      return (slot.pending = run(slot, work));
    });
    return (slot.pending = waiting);
  }

  return {
    render(key, work) {
      if (o.percent >= 100) return work();
      let slot = slots.get(key);
      if (!slot) slots.set(key, (slot = {}));
      if (slot.pending) return slot.pending;
      return admit(slot, work);
    },
  };
}
