/**
 * A typed marker on the error an HTTP/2 session is cut with by one of its budget guards, so that whoever reads the
 * error (the client's fleet: src/client/fault-backoff.ts; the server's listener: src/server/listen/listen.ts) tells
 * the cut and its budget apart by the marker, not by finding an option's name in the message. The words of the
 * message stay what they were (log lines and tests read them); rewording them can no longer change what the code does.
 *
 * The marker is a symbol-keyed property of the error itself, and it is found through `cause` too: an error that
 * wraps the guard's (`ConnectError.from` of a stream's error, connect-es wrapping a session's, our own
 * explanations that keep the original as their cause) still reads as the cut.
 *
 * @internal
 */

/** The budgets whose guards cut a session: each named by its option. */
export type Budget =
  | "maxServerOverheadBytesPerSecond" // client: src/client/h2-overhead-budget.ts
  | "maxServerControlFramesPerSecond" // client: src/client/h2-control-budget.ts
  | "maxClientOverheadBytesPerSecond" // server: src/server/listen/h2-session-guards.ts
  | "maxRefusedStreamsPerConnection"; // server: src/server/listen/h2-session-guards.ts

const budgetKey = Symbol("promproxy.budgetCut");
/** How deep `budgetCutOf` follows `cause` (a wrapper of a wrapper: a few; never a loop). */
const maxCauses = 8;

/** Marks `error` as the one a session was cut with past `budget`; returns it. */
export function markBudgetCut<E extends Error>(error: E, budget: Budget): E {
  Object.defineProperty(error, budgetKey, { value: budget, enumerable: false });
  return error;
}

/** The budget whose guard cut the session `error` ended (the error itself or one of its causes), or undefined. */
export function budgetCutOf(error: unknown): Budget | undefined {
  let e: unknown = error;
  for (let depth = 0; depth <= maxCauses && e !== null && typeof e === "object"; depth++) {
    const budget = (e as { [budgetKey]?: Budget })[budgetKey];
    if (budget !== undefined) return budget;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
