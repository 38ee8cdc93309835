/**
 * The client's bounds on what a server sends: duration clamps, option checks,
 * and the outgoing queue (one pong pending, chunks only as the transport takes
 * them, an overflow at maxFrames).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createClient } from "../src/client/index.ts";
import { createOutQueue, maxPongs, type ClientFrameInit } from "../src/client/out-queue.ts";
import { clampDuration, heartbeatRangeMs, minChunkBytes, orderTimeoutRangeMs } from "../src/client/server-limits.ts";
import { resolveServerOptions } from "../src/server/options.ts";

test("server durations are clamped to their ranges; unset or zero is 10 s", () => {
  const d = (seconds: bigint, nanos = 0) => ({ seconds, nanos }) as Parameters<typeof clampDuration>[0];
  assert.equal(clampDuration(undefined, heartbeatRangeMs), 10_000);
  assert.equal(clampDuration(d(0n), orderTimeoutRangeMs), 10_000);
  assert.equal(clampDuration(d(1_000_000_000n), heartbeatRangeMs), 600_000);
  assert.equal(clampDuration(d(1_000_000_000n), orderTimeoutRangeMs), 3_600_000);
  assert.equal(clampDuration(d(9_223_372_036_854_775_807n, 999_999_999), orderTimeoutRangeMs), 3_600_000);
  assert.equal(clampDuration(d(-5n), heartbeatRangeMs), 100);
  assert.equal(clampDuration(d(0n, 1), heartbeatRangeMs), 100);
  assert.equal(clampDuration(d(0n, 5_000_000), orderTimeoutRangeMs), 5);
  assert.equal(clampDuration(d(0n, -2_147_483_648), orderTimeoutRangeMs), 1);
  assert.equal(clampDuration(d(30n), heartbeatRangeMs), 30_000);
});

test("the limit options are checked at createClient, at and over their bounds", () => {
  const base = { name: "a", serverUrl: "http://127.0.0.1:1" };
  for (const ok of [{ maxServerFrameBytes: 16_384 }, { maxServerFrameBytes: 64 * 1024 * 1024 }, { maxQueuedFrames: 16 }, { maxQueuedFrames: 1 << 20 }]) {
    assert.doesNotThrow(() => createClient({ ...base, ...ok }));
  }
  assert.throws(() => createClient({ ...base, maxServerFrameBytes: 16_383 }), /maxServerFrameBytes must be a whole number from 16384/);
  assert.throws(() => createClient({ ...base, maxServerFrameBytes: 64 * 1024 * 1024 + 1 }), /maxServerFrameBytes/);
  assert.throws(() => createClient({ ...base, maxQueuedFrames: 15 }), /maxQueuedFrames must be a whole number from 16/);
  assert.throws(() => createClient({ ...base, maxQueuedFrames: 1.5 }), /maxQueuedFrames/);
});

const end = (id: number): ClientFrameInit => ({ frame: { case: "end", value: { scrapeId: BigInt(id) } } });
const chunk = (n: number): ClientFrameInit => ({ frame: { case: "chunk", value: { scrapeId: 1n, data: new Uint8Array(n) } } });

test("pongs are bounded: a thousand pings unanswered leave 8 pongs, the latest, sent first", async () => {
  const q = createOutQueue({ maxFrames: 16, chunkHighWater: 1024, onOverflow: () => assert.fail("no overflow") });
  q.push(end(1));
  for (let n = 1n; n <= 1000n; n++) q.pong(n);
  assert.equal(q.size, maxPongs + 1);
  q.close();
  const got: ClientFrameInit[] = [];
  for await (const f of q) got.push(f);
  assert.deepEqual(got.map((f) => f.frame?.case), [...Array(maxPongs).fill("pong"), "end"]);
  assert.deepEqual(got.slice(0, maxPongs).map((f) => (f.frame?.value as { nonce: bigint }).nonce), [993n, 994n, 995n, 996n, 997n, 998n, 999n, 1000n]);
});

test("frames beyond maxFrames overflow once; chunks wait for room instead", async () => {
  let overflows = 0;
  const q = createOutQueue({ maxFrames: 16, chunkHighWater: 1024, onOverflow: () => overflows++ });
  for (let i = 0; i < 16; i++) q.push(end(i));
  assert.equal(overflows, 0, "at the bound");
  q.push(end(16));
  q.push(end(17));
  assert.equal(overflows, 1, "over it, once");

  const c = createOutQueue({ maxFrames: 16, chunkHighWater: 1024, onOverflow: () => assert.fail("no overflow") });
  let written = 0;
  const writer = (async () => {
    for (let i = 0; i < 100; i++) {
      await c.writeChunk(chunk(512), 512);
      written++;
    }
  })();
  await new Promise((r) => setImmediate(r));
  assert.equal(written, 2, "two chunks fill the high water; the third waits");
  assert.ok(c.waitingSinceMs !== undefined);
  let taken = 0;
  for await (const f of c) {
    assert.equal(f.frame?.case, "chunk");
    assert.ok(c.size <= 2, "never more than the high water queued");
    if (++taken === 100) break;
    await new Promise((r) => setImmediate(r));
  }
  await writer;
  assert.equal(written, 100);
});

test("a body in 1-byte chunks queues a quarter of maxFrames chunk frames at most: the heads and ends of other scrapes never overflow", async () => {
  let overflows = 0;
  const q = createOutQueue({ maxFrames: 16, chunkHighWater: 256 * 1024, onOverflow: () => overflows++ });
  let written = 0;
  // Two scrapes writing 1-byte chunks as fast as they may (an exporter answering one byte per chunk).
  const writers = [1, 2].map(async () => {
    for (let i = 0; i < 200; i++) {
      await q.writeChunk(chunk(1), 1);
      written++;
    }
  });
  await new Promise((r) => setImmediate(r));
  assert.ok(q.size <= 4, `${q.size} chunk frames queued: at most a quarter of maxFrames`);
  // Another scrape's head and end, while the server reads nothing yet.
  for (let i = 0; i < 12; i++) q.push(end(i));
  assert.equal(overflows, 0, "12 ends and the chunks: within maxFrames");
  let taken = 0;
  for await (const f of q) {
    if (f.frame?.case === "chunk") assert.ok(q.size <= 4 + 12, `${q.size} queued`);
    if (++taken === 400 + 12) break;
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(writers);
  assert.equal(written, 400);
  assert.equal(overflows, 0);
});

test("a waiting chunk writer is released, unqueued, when its scrape aborts or the queue closes", async () => {
  const q = createOutQueue({ maxFrames: 16, chunkHighWater: 100, onOverflow: () => {} });
  await q.writeChunk(chunk(100), 100);
  const ac = new AbortController();
  const aborted = q.writeChunk(chunk(100), 100, ac.signal);
  const closed = q.writeChunk(chunk(100), 100);
  ac.abort();
  await aborted;
  q.close();
  await closed;
  assert.equal(q.size, 1, "neither waiting chunk was queued");
});

test("a server never announces a chunk limit under the clients' floor (512 B)", () => {
  assert.equal(minChunkBytes, 512);
  assert.doesNotThrow(() => resolveServerOptions({ maxChunkBytes: 512, creditBytes: 4096 }));
  assert.throws(() => resolveServerOptions({ maxChunkBytes: 511 }), /maxChunkBytes must be at least 512/);
});
