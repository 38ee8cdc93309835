/**
 * The wait of a slot whose replica does not serve the client
 * (src/client/unassigned-wait.ts): no wait when it may dial, a wake when the
 * set changes so that it may, none for a change that leaves it unassigned,
 * and a cap whatever happens.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { createUnassignedWaits, mayRedial, unassignedBy } from "../src/client/unassigned-wait.ts";

test("mayRedial: the refusing replica left the set, the set assigns it, no set known, or nothing held", () => {
  const ids = ["a", "b", "c"];
  assert.equal(mayRedial("c", ids, new Set(["a", "b"]), 2), false, "still in the set, not assigned, streams held: wait");
  assert.equal(mayRedial("c", ["a", "b", "d"], new Set(["a", "b"]), 2), true, "its id left the set");
  assert.equal(mayRedial("c", ids, new Set(["a", "c"]), 2), true, "assigned now");
  assert.equal(mayRedial("c", undefined, undefined, 2), true, "no set known");
  assert.equal(mayRedial("c", ids, new Set(["a", "b"]), 0), true, "no stream held: no set can arrive to wake it");
});

test("unassignedBy: only an Unavailable refusal naming its replica", () => {
  const named = new ConnectError("not assigned", Code.Unavailable, { "promproxy-replica-id": "r2" });
  assert.equal(unassignedBy(named), "r2");
  assert.equal(unassignedBy(new ConnectError("down", Code.Unavailable)), undefined, "Unavailable naming none: a plain failure");
  assert.equal(unassignedBy(new ConnectError("taken", Code.AlreadyExists, { "promproxy-replica-id": "r2" })), undefined);
  assert.equal(unassignedBy(undefined), undefined);
});

test("a slot that may dial does not wait; one that may not waits until a change lets it, not for one that does not", async () => {
  let allowed = false;
  const waits = createUnassignedWaits({ mayRedial: () => allowed, capMs: 60_000, spreadMs: 0 });
  const stop = new AbortController();
  assert.equal(await waits.park(undefined, stop.signal), false, "no refusal: no wait");
  allowed = true;
  assert.equal(await waits.park("r2", stop.signal), false, "may dial now: no wait");
  allowed = false;
  let woken = false;
  const parked = waits.park("r2", stop.signal).then((w) => ((woken = true), w));
  assert.equal(waits.waiting, 1);
  waits.changed(); // a set that still leaves it unassigned
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(woken, false, "a change that leaves it unassigned does not wake it");
  allowed = true;
  waits.changed();
  assert.equal(await parked, true);
  assert.equal(waits.waiting, 0);
});

test("the cap wakes a slot that never hears a change: between half of it and all of it", async () => {
  const at = (random: number) => {
    const waits = createUnassignedWaits({ mayRedial: () => false, capMs: 200, spreadMs: 0, random: () => random });
    const t0 = performance.now();
    return waits.park("r2", new AbortController().signal).then(() => performance.now() - t0);
  };
  const [shortest, longest] = await Promise.all([at(0), at(0.999)]);
  assert.ok(shortest >= 95, `half the cap at least (${shortest} ms)`);
  assert.ok(longest >= 195, `the whole cap (${longest} ms)`);
});

test("a stop ends the wait at once; a wake on a change is spread over spreadMs", async () => {
  let allowed = false;
  const waits = createUnassignedWaits({ mayRedial: () => allowed, capMs: 60_000, spreadMs: 150, random: () => 0.999 });
  const stop = new AbortController();
  const parked = waits.park("r2", stop.signal);
  stop.abort();
  assert.equal(await parked, true);
  assert.equal(waits.waiting, 0);
  const t0 = performance.now();
  const spread = waits.park("r3", new AbortController().signal);
  allowed = true;
  waits.changed();
  await spread;
  assert.ok(performance.now() - t0 >= 140, "woken after its share of the spread");
});
