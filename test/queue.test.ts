import assert from "node:assert/strict";
import { test } from "node:test";
import { createQueue } from "../src/shared/queue.ts";

test("queue delivers pushed items in order, then ends on close", async () => {
  const q = createQueue<number>();
  q.push(1);
  q.push(2);
  setTimeout(() => {
    q.push(3);
    q.close();
  }, 5);
  const got: number[] = [];
  for await (const n of q) got.push(n);
  assert.deepEqual(got, [1, 2, 3]);
  assert.equal(q.push(4), false, "push after close is refused");
});

test("queue delivers pending items before the close error", async () => {
  const q = createQueue<string>();
  q.push("a");
  q.close(new Error("boom"));
  const got: string[] = [];
  await assert.rejects(async () => {
    for await (const s of q) got.push(s);
  }, /boom/);
  assert.deepEqual(got, ["a"]);
});

test("queue compacts its storage under a long run", async () => {
  const q = createQueue<number>();
  let sum = 0;
  const consumer = (async () => {
    for await (const n of q) sum += n;
  })();
  for (let i = 0; i < 10_000; i++) q.push(1);
  q.close();
  await consumer;
  assert.equal(sum, 10_000);
  assert.equal(q.size, 0);
});

test("a batch consumer: shift takes what waits, onReady wakes once at the next push or close, error tells how it closed", () => {
  const q = createQueue<number>();
  let woken = 0;
  q.onReady(() => woken++);
  q.push(1);
  q.push(2);
  assert.equal(woken, 1, "one wake for a burst");
  assert.deepEqual([q.shift(), q.shift(), q.shift()], [1, 2, undefined]);
  assert.equal(q.size, 0);
  q.onReady(() => woken++);
  const err = new Error("stuck");
  q.close(err);
  assert.equal(woken, 2, "a close wakes too");
  assert.equal(q.error, err);
  assert.equal(q.push(3), false);
});

test("withdraw takes back an item still waiting, by identity, and nothing already taken", async () => {
  const q = createQueue<{ n: number }>();
  const items = Array.from({ length: 6 }, (_, n) => ({ n }));
  for (const i of items) q.push(i);
  assert.equal(q.shift(), items[0]);
  assert.equal(q.withdraw(items[0]!), false, "taken already");
  assert.equal(q.withdraw({ n: 3 }), false, "an equal object is not the item");
  assert.equal(q.withdraw(items[3]!), true);
  assert.equal(q.withdraw(items[3]!), false, "once");
  assert.equal(q.withdraw(items[5]!), true);
  assert.equal(q.size, 3);
  q.close();
  const rest: number[] = [];
  for await (const i of q) rest.push(i.n);
  assert.deepEqual(rest, [1, 2, 4]);
  const r = createQueue<number>();
  r.push(1);
  assert.equal(r.withdraw(1), true);
  assert.equal(r.size, 0);
  r.push(2);
  assert.equal(r.shift(), 2, "storage reset after the last item was withdrawn");
});

test("waitingSince: since when items have waited with none taken", () => {
  const q = createQueue<number>();
  assert.equal(q.waitingSince, undefined);
  const before = Date.now();
  q.push(1);
  q.push(2);
  const since = q.waitingSince;
  assert.ok(since !== undefined && since >= before);
  q.shift();
  assert.ok(q.waitingSince! >= since!, "a take restarts the clock for what still waits");
  q.shift();
  assert.equal(q.waitingSince, undefined, "none waits");
  q.push(3);
  assert.equal(q.withdraw(3), true);
  assert.equal(q.waitingSince, undefined, "the last one taken back");
});
