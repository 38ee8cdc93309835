/**
 * A budget of the client's shared by all of its HTTP/2 connections (options `maxServerControlFramesPerSecond`,
 * src/client/h2-control-budget.ts, and `maxServerOverheadBytesPerSecond`, src/client/h2-overhead-budget.ts): each
 * connection's guard gets an equal share, the total divided by the connections live now, asked at every judgement
 * (it changes as connections come and go), as the frame budget shares `maxServerFramesPerSecond` among streams
 * (src/client/frame-budget.ts). One client is one `createClient` (or one forwarder).
 *
 * Given to each connection whole, these budgets multiplied with the connections a server makes the client hold: a
 * server behind one URL that announced 64 replica ids and welcomed each new connection as another replica had the
 * client hold 64 connections (`maxReplicas`), each allowed the full budget, and sent each 950 KB/s of
 * WINDOW_UPDATE, never cut: the host at 44-48 % of a core against 7-11 % for an honest one, 1.67 GB taken in
 * 40 s (outside review, round 18b). Shared, what a server gets the client to take is bounded in total, however
 * many connections it makes it open; an honest server sends each a small fraction of its share.
 *
 * @internal
 */

/** One connection's seat at a shared budget, from its guard's start until `leave()`. @internal */
export interface BudgetSeat {
  /** The client's budget, all of its connections together (the option's value). */
  readonly total: number;
  /** This connection's share a second now: the total over the connections live now. */
  perSecond(): number;
  /** The connections sharing the budget now (this one among them, until it left). */
  sharers(): number;
  /** The connection is gone: its share goes to the others. Idempotent. */
  leave(): void;
}

/** A client's budget, shared by its connections. @internal */
export interface BudgetShare {
  readonly total: number;
  /** A connection's seat, counted until it leaves. */
  join(): BudgetSeat;
}

export function createBudgetShare(total: number): BudgetShare {
  let live = 0;
  return {
    total,
    join() {
      live++;
      let left = false;
      return {
        total,
        perSecond: () => total / Math.max(1, live),
        sharers: () => Math.max(1, live),
        leave() {
          if (left) return;
          left = true;
          live--;
        },
      };
    },
  };
}

/** A budget for one connection alone (a caller that shares none: the whole `total` is its own). @internal */
export const seatOf = (budget: number | BudgetSeat): BudgetSeat => (typeof budget === "number" ? createBudgetShare(budget).join() : budget);

/** What a cut says past the option's words when the budget was shared: the share and by how many. @internal */
export function sharedWords(seat: BudgetSeat): string {
  const n = seat.sharers();
  return n > 1 ? `, all the client's connections together (${n} now, ${Math.floor(seat.perSecond())} a second each)` : "";
}

/** A client's two HTTP/2 budgets, each shared by all of its connections. @internal */
export interface H2Budgets {
  /** maxServerControlFramesPerSecond */
  control: BudgetShare;
  /** maxServerOverheadBytesPerSecond */
  overhead: BudgetShare;
}

export function h2Budgets(o: { maxServerControlFramesPerSecond: number; maxServerOverheadBytesPerSecond: number }): H2Budgets {
  return { control: createBudgetShare(o.maxServerControlFramesPerSecond), overhead: createBudgetShare(o.maxServerOverheadBytesPerSecond) };
}
