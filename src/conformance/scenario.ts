/**
 * What a conformance scenario is: an id, a title, a time budget, and a run
 * that drives the client under test and says pass, fail or n/a in one line.
 * A scenario fails by throwing (the message is the detail); whatever it
 * started (servers, client processes) is stopped by the runner afterwards.
 *
 * @internal
 */
import type { ClientProcess } from "./client-process.ts";

/**
 * - `pass`: the client follows the rule.
 * - `fail`: it breaks it.
 * - `n/a`: the kit could not exercise the rule with this client (e.g. its body is too small to tell): not a pass;
 *   the kit exits 1 as for a failure.
 * - `not offered`: the rule is about an optional feature the client does not announce (e.g. `head`): neither a
 *   pass nor a failure.
 */
export type Verdict = "pass" | "fail" | "n/a" | "not offered";

/** How a scenario ended: its verdict and one line of detail. */
export interface Outcome {
  verdict: Verdict;
  detail: string;
}

/** What a scenario gets from the runner. */
export interface ScenarioContext {
  /** A client name of its own (a DNS label), substituted for `{name}`. */
  readonly name: string;
  /** How long a client may take to come back after its server went away. */
  readonly reconnectWithinMs: number;
  /** The least body the client is asked to serve (substituted for `{size}`). */
  readonly bodyBytes: number;
  /** Launches the client under test against `serverUrl` (as `name`, default the scenario's); stopped at the end. */
  launch(serverUrl: string, name?: string): ClientProcess;
  /** Runs `cleanup` when the scenario ends (the last registered first). */
  defer(cleanup: () => unknown): void;
}

export interface Scenario {
  /** Short kebab-case id, for `--only`. */
  id: string;
  /** What it checks, for the table. */
  title: string;
  /** Longest run before it fails as hung. */
  timeoutMs: number;
  /** It waits on purpose for seconds (idle stretches, backoff): the runner starts it first. */
  slow?: boolean;
  run(ctx: ScenarioContext): Promise<Outcome>;
}

/** A passed scenario. */
export const pass = (detail: string): Outcome => ({ verdict: "pass", detail });
/** A scenario the kit could not exercise with this client: not a pass. */
export const notApplicable = (detail: string): Outcome => ({ verdict: "n/a", detail });
/** A scenario about an optional feature the client does not offer. */
export const notOffered = (detail: string): Outcome => ({ verdict: "not offered", detail });

/** A failed check: its message is the scenario's detail. */
export class CheckFailed extends Error {
  override name = "CheckFailed";
}

/** Fails the scenario with `message` unless `ok`. */
export function check(ok: unknown, message: string | (() => string)): asserts ok {
  if (!ok) throw new CheckFailed(typeof message === "string" ? message : message());
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `probe` every 50 ms until it returns a value; fails after `timeoutMs`
 * with "timed out after Ns waiting for WHAT" (`what` is read then).
 */
export async function waitUntil<T>(
  what: string | (() => string),
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new CheckFailed(`timed out after ${timeoutMs / 1000}s waiting for ${typeof what === "string" ? what : what()}`);
    await sleep(50);
  }
}
