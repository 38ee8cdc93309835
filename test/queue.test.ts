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
