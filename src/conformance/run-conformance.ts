/**
 * Runs conformance scenarios against a client implementation: each scenario
 * with its own servers and its own client process(es), several at once, each
 * bounded in time; everything a scenario started is stopped after it, however
 * it ended.
 *
 * @internal
 */
import { randomBytes } from "node:crypto";
import { defaultBodyBytes, launchClient, type ClientProcess } from "./client-process.ts";
import { CheckFailed, type Outcome, type Scenario, type ScenarioContext, type Verdict } from "./scenario.ts";
import { allScenarios } from "./scenarios/all.ts";

/** Options of {@link runConformance}. */
export interface ConformanceOptions {
  /**
   * The command that runs the client under test, run by `/bin/sh`; `{server}`
   * becomes the server URL (`http://127.0.0.1:PORT`) and `{name}` the client's
   * name (also in the environment as PROMPROXY_SERVER and PROMPROXY_NAME).
   * Required.
   */
  client: string;
  /** Ids of the scenarios to run. Default: all of them. */
  only?: string[];
  /** Scenarios run at once. Default 4. */
  concurrency?: number;
  /** How long a client may take to come back after its server went away. Default 35 000 ms. */
  reconnectWithinMs?: number;
  /**
   * The least body the client is asked to serve at /metrics, substituted for
   * `{size}` (and in PROMPROXY_BODY_BYTES). Scenarios whose rule shows only
   * on a larger body than the client served report n/a. Default 300 000.
   */
  bodyBytes?: number;
  /** Working directory of client processes. Default: the current one. */
  cwd?: string;
  /** Called as each scenario finishes (in finishing order). Default none. */
  onResult?: (result: ScenarioResult) => void;
}

/** How one scenario went. */
export interface ScenarioResult {
  id: string;
  title: string;
  verdict: Verdict;
  detail: string;
  ms: number;
  /** The last lines of output of the scenario's client process(es), for a failure. */
  clientOutput: string;
}

/** Ids of every scenario, in table order. */
export const scenarioIds: readonly string[] = allScenarios.map((s) => s.id);

/** Whether the kit passes the client: nothing failed, and nothing it should have checked went unchecked (n/a). */
export function passed(results: ScenarioResult[]): boolean {
  return results.every((r) => r.verdict === "pass" || r.verdict === "not offered");
}

/** Runs the scenarios; resolves with their results in table order. Never rejects for a scenario's failure. */
export async function runConformance(o: ConformanceOptions): Promise<ScenarioResult[]> {
  const unknown = (o.only ?? []).filter((id) => !scenarioIds.includes(id));
  if (unknown.length) throw new RangeError(`unknown scenario ${unknown.join(", ")}; known: ${scenarioIds.join(", ")}`);
  const chosen = allScenarios.filter((s) => !o.only?.length || o.only.includes(s.id));
  // The slow ones first, so that they overlap with the rest.
  const queue = [...chosen.filter((s) => s.slow), ...chosen.filter((s) => !s.slow)];
  const results = new Map<string, ScenarioResult>();
  const concurrency = Math.max(1, o.concurrency ?? 4);
  const worker = async () => {
    for (let s = queue.shift(); s; s = queue.shift()) {
      const r = await runOne(s, o);
      results.set(s.id, r);
      o.onResult?.(r);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
  return chosen.map((s) => results.get(s.id) as ScenarioResult);
}

async function runOne(s: Scenario, o: ConformanceOptions): Promise<ScenarioResult> {
  const cleanups: (() => unknown)[] = [];
  const clients: ClientProcess[] = [];
  const name = `conf-${s.id}-${randomBytes(3).toString("hex")}`.slice(0, 63);
  const ctx: ScenarioContext = {
    name,
    reconnectWithinMs: o.reconnectWithinMs ?? 35_000,
    bodyBytes: o.bodyBytes ?? defaultBodyBytes,
    launch(serverUrl, clientName = name) {
      const c = launchClient({ template: o.client, serverUrl, name: clientName, bodyBytes: o.bodyBytes, cwd: o.cwd });
      clients.push(c);
      cleanups.push(() => c.stop());
      return c;
    },
    defer: (cleanup) => void cleanups.push(cleanup),
  };
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ verdict: "fail", detail: `did not finish within ${s.timeoutMs / 1000}s` }), s.timeoutMs);
  });
  const outcome = await Promise.race([
    s.run(ctx).catch((e: unknown): Outcome => ({
      verdict: "fail",
      // A failed check or wait says what went wrong itself; anything else (a bug, a TypeError) names its class.
      detail: e instanceof CheckFailed || (e instanceof Error && e.name === "Error") ? e.message : e instanceof Error ? `${e.name}: ${e.message}` : String(e),
    })),
    hung,
  ]);
  clearTimeout(timer);
  const ms = performance.now() - started;
  // Clients first (in reverse), then servers: a client that outlives its server would just start to reconnect.
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch {
      // a cleanup that fails must not hide the outcome, nor skip the others
    }
  }
  const clientOutput = clients.map((c) => c.output(10)).filter((t) => t !== "").join("\n---\n");
  return { id: s.id, title: s.title, ...outcome, ms, clientOutput };
}
