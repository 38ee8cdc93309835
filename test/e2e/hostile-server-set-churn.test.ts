/**
 * A server that changes its announced replica set every 10 ms (outside review, round 18b): each stream it welcomes
 * is ended by the client's bucket of set changes (a burst of a few, then one a second: src/client/connection.ts)
 * and the client dialled again about once a second, the wait never growing (the host at 5.7-6.6 % of a core). A set
 * that changes faster than the client can follow is a fault of the server's: the redials it causes go through the
 * client-wide backoff of src/client/fault-backoff.ts, growing with such ends in a row, and the client says why at
 * most once a minute. Counted: the client's dials over 30 s (before: 52-64, in threes, the gaps not growing; after:
 * 7, 0.4 s growing to 10 s) and their spacing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { waitFor } from "../helpers.ts";
import { cleanupsAfterAll, pause, startHost } from "./fixtures/hostile-server/harness.ts";
import { startHostileServer, welcome } from "./fixtures/hostile-server/server.ts";

const cleanups = cleanupsAfterAll();
/** The client's default backoff (the host fixture's is shorter). */
const backoff = { initialMs: 500, maxMs: 30_000 };

test("a server whose replica set changes every 10 ms: the client's redials back off, growing, and it says why once", async (t) => {
  const dials: number[] = [];
  let n = 0;
  const set = () => ["r0", `x${++n}`, `y${n}`];
  const server = await startHostileServer(async (s) => {
    dials.push(performance.now());
    const w = welcome().frame as { case: "welcome"; value: Record<string, unknown> };
    await s.send({ frame: { case: "welcome", value: { ...w.value, replicaId: "r0", replicaIds: set(), replicasPerClient: 0, features: ["replica-set"] } } });
    while (!s.closed) {
      await s.send({ frame: { case: "replicaSet", value: { replicaIds: set(), replicasPerClient: 0 } } });
      await pause(10);
    }
  });
  cleanups.push(() => server.close());
  const host = startHost(server.url, { client: { backoff } });
  cleanups.push(() => host.stop());
  await waitFor("a first dial", () => dials.length >= 1, 20_000);
  const span = 30_000;
  await pause(span);
  const gaps = dials.slice(1).map((d, i) => d - dials[i]!);
  const said = host.logs().filter((l) => l.includes("replica set changes faster than the client can follow"));
  t.diagnostic(`${dials.length} dials in ${span / 1000} s; gaps (ms): ${gaps.map((g) => g.toFixed(0)).join(", ")}; said ${said.length} times`);
  t.diagnostic(said[0]?.slice(0, 300) ?? "not said");
  // 500 ms doubling (half of each step random): 7-9 dials in 30 s. Each redial after the last.
  assert.ok(dials.length <= 12, `${dials.length} dials in ${span / 1000} s`);
  // Growing: no gap much shorter than the one before (the jitter), and the last one seconds long.
  for (const [i, g] of gaps.entries()) if (i > 0) assert.ok(g >= 0.5 * gaps[i - 1]!, `gaps not growing: ${gaps.map((x) => x.toFixed(0)).join(", ")}`);
  assert.ok(gaps.at(-1)! >= 4_000, `the last gap ${gaps.at(-1)?.toFixed(0)} ms`);
  assert.equal(said.length, 1, `said ${said.length} times in ${span / 1000} s`);
  assert.match(said[0]!, /\(a server fault\): its next dials wait a backoff growing with such ends in a row, client-wide \(\d+ in a row, the next in [\d.]+ s; option backoff\)/);
  assert.equal(host.script.stderr(), "");
});
