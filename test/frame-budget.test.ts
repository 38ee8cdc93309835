/**
 * The client's read budget for server frames (maxServerFramesPerSecond): a
 * bucket of one second's frames, refilled with the clock, that says how long
 * to stop reading once a read overdraws it. A fake clock: nothing here waits.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createFrameBudget, createFrameShare, readCost } from "../src/client/frame-budget.ts";

test("a second's worth is read at once; the frame past it waits until the bucket is out of debt", () => {
  let t = 0;
  const b = createFrameBudget(() => 1000, () => t);
  assert.equal(b.spend(999), 0);
  assert.equal(b.spend(1), 0, "exactly the bucket: no wait");
  assert.equal(b.spend(1), 1, "one over at 1000 a second: 1 ms");
  t += 1;
  assert.equal(b.spend(0), 0, "1 ms later the debt is paid");
  assert.equal(b.spend(500), 500, "a chunk of 500 frames overdraws by 500: half a second");
});

test("the bucket refills with the clock and never holds more than a second's worth", () => {
  let t = 0;
  const b = createFrameBudget(() => 100, () => t);
  assert.equal(b.spend(100), 0);
  t += 500;
  assert.equal(b.spend(50), 0, "half a second refills half");
  assert.equal(b.spend(1), 10, "and no more");
  t += 60_000;
  assert.equal(b.spend(100), 0, "a minute idle: a full bucket");
  assert.equal(b.spend(1), 10, "but only one second's worth");
});

test("a sustained flood is read at the budget's rate, whatever the chunk sizes", () => {
  let t = 0;
  const b = createFrameBudget(() => 1000, () => t);
  let read = 0;
  // A server that always has frames waiting: read a chunk, wait as told, read the next.
  while (t < 10_000) {
    const chunk = 1 + (read % 700);
    read += chunk;
    t += Math.max(1, b.spend(chunk));
  }
  assert.ok(read <= 1000 * 10 + 1000 + 700, `read ${read} frames in 10 s at 1000 a second`);
  assert.ok(read >= 1000 * 10 - 700, `read ${read} frames: the budget is used, not wasted`);
});

test("a client's streams share its budget equally: a server opening many streams gets no more frames read in all", () => {
  let t = 0;
  const share = createFrameShare(1000, () => t);
  const streams = Array.from({ length: 10 }, () => share.join());
  // Each stream holds a tenth: 100 frames at once, then 100 a second.
  assert.equal(streams[0]!.spend(100), 0);
  assert.equal(streams[0]!.spend(1), 10, "one over a tenth of 1000 a second: 10 ms");
  let read = 0;
  for (t = 0; t < 10_000; t += 10) for (const s of streams) if (s.spend(0) === 0) (s.spend(1), read++);
  assert.ok(read <= 1000 * 10 + 1000, `${read} frames in 10 s over 10 streams`);
  for (const s of streams.slice(1)) s.leave();
  streams[1]!.leave(); // twice: counted once
  t += 10_000;
  assert.equal(streams[0]!.spend(1000), 0, "alone again: the whole budget");
});

test("what a read costs: a frame each, one more per 64 bytes past 256 a frame", () => {
  assert.equal(readCost(1, 200), 1, "an order of 200 bytes");
  assert.equal(readCost(6, 1024), 6, "six small frames in one read");
  assert.equal(readCost(1, 256 + 64), 2);
  assert.equal(readCost(0, 16 * 1024), 256, "a quarter of a large frame, none completed");
  assert.equal(readCost(1, 64 * 1024), 1 + 1020, "a 64 KiB frame packed with tiny entries: about a second of the default budget");
  assert.equal(readCost(3, 0), 3, "a drip: the pieces it came in");
});
