/**
 * A one-frame result (feature "single-result") carries a whole body: the
 * out-queue counts its bytes as a chunk's, and a body that would find the
 * queue full leaves as head, chunk and end through the bounded chunk path.
 * Here scrapes run against a real out-queue nobody drains (a server that
 * reads nothing), then the queue is drained and every answer checked.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { WelcomeSchema, ScrapeOrderSchema } from "../gen/promproxy/v1/scrape_pb.ts";
import { createOutQueue, type ClientFrameInit } from "../src/client/out-queue.ts";
import { startScrape, type ScrapeRun } from "../src/client/scrape-run.ts";
import { createScrapeSlots } from "../src/client/scrape-slots.ts";
import { chunkHighWaterBytes } from "../src/client/server-limits.ts";
import { silentLogger } from "../src/shared/logger.ts";
import { ScrapeErrorReason, TargetError, type ScrapeTarget } from "../src/client/targets/target.ts";

const MiB = 1 << 20;
const tick = () => new Promise((r) => setImmediate(r));

function setUp(o: { bodyBytes: number; places: number; maxChunkBytes?: number }) {
  const out = createOutQueue({ maxFrames: 1024, chunkHighWater: chunkHighWaterBytes, onOverflow: () => assert.fail("no overflow") });
  let renders = 0;
  const target: ScrapeTarget = {
    port: 0,
    path: "/metrics",
    labels: {},
    async serve(_req, w) {
      renders++;
      w.head(200, { "content-type": "text/plain", "content-length": String(o.bodyBytes) });
      await w.write(new Uint8Array(o.bodyBytes).fill(renders & 0xff)); // each its own body
    },
  };
  const scrapes = new Map<bigint, ScrapeRun>();
  const welcome = create(WelcomeSchema, { sessionId: "s", features: ["single-result", "head"], limits: { maxChunkBytes: o.maxChunkBytes ?? MiB } });
  const ctx = { name: "app", targets: [target], slots: createScrapeSlots(o.places, 1), log: silentLogger, welcome, scrapes, out };
  let next = 1n;
  const order = () => startScrape(create(ScrapeOrderSchema, { scrapeId: next++, path: "/metrics", creditBytes: 16n * BigInt(MiB), timeout: { seconds: 60n } }), ctx);
  /** Takes every queued frame: what a server that reads would get. */
  const drain = () => {
    const frames: ClientFrameInit[] = [];
    for (let f = out.take(); f; f = out.take()) frames.push(f);
    return frames;
  };
  return { out, order, drain, renders: () => renders, scrapes };
}

test("with the queue empty, a body of up to a chunk still leaves as one result frame, its bytes counted until taken", async () => {
  const { out, order, drain } = setUp({ bodyBytes: 900 * 1024, places: 8 });
  order();
  await tick();
  assert.equal(out.size, 1);
  assert.equal(out.bytes, 900 * 1024, "the result's data counts as queued body bytes");
  assert.equal(out.full, true);
  const [f] = drain();
  assert.equal(f?.frame?.case, "result");
  assert.equal(out.bytes, 0);
  assert.equal(out.full, false);
});

test("a server that reads nothing while ordering 40 scrapes of ~1 MiB: queued body bytes stay under the high-water mark and one body; every order is answered whole once it reads", async () => {
  const bodyBytes = MiB - 100;
  const { out, order, drain, renders } = setUp({ bodyBytes, places: 2 });
  let most = 0;
  for (let i = 0; i < 40; i++) {
    order();
    for (let k = 0; k < 3; k++) await tick();
    most = Math.max(most, out.bytes);
  }
  // Uncounted, every order queued its body: 40 MiB here. Counted: one result, the rest wait for room.
  assert.ok(most <= chunkHighWaterBytes + bodyBytes, `${most} body bytes queued at most`);
  assert.ok(renders() <= 3, `${renders()} renders: the two places hold their bodies while they wait`);
  // The server reads: drain until nothing more comes; every scrape got a whole answer.
  const answers = new Map<bigint, string>();
  const got = new Map<bigint, number>();
  for (let round = 0; round < 50 && answers.size < 40; round++) {
    for (const f of drain()) {
      const c = f.frame!;
      if (c.case === "result") answers.set(c.value.scrapeId!, `result ${c.value.data!.byteLength}`);
      if (c.case === "chunk") got.set(c.value.scrapeId!, (got.get(c.value.scrapeId!) ?? 0) + c.value.data!.byteLength);
      if (c.case === "end") answers.set(c.value.scrapeId!, c.value.error ? "busy" : `whole ${got.get(c.value.scrapeId!)}`);
    }
    await tick();
  }
  assert.equal(answers.size, 40);
  for (const [id, a] of answers) assert.match(a, new RegExp(`^(result ${bodyBytes}|whole ${bodyBytes}|busy)$`), `scrape ${id}: ${a}`);
  assert.equal([...answers.values()].filter((a) => a !== "busy").length, renders());
});

test("a held body waiting for room is cancelled as any chunk: its end says so, nothing of its body is queued", async () => {
  const { out, order, drain, scrapes } = setUp({ bodyBytes: 512 * 1024, places: 4 });
  order(); // queued as one result: the queue is full now
  await tick();
  order(); // its head goes; its body waits for room
  for (let k = 0; k < 3; k++) await tick();
  assert.equal(out.bytes, 512 * 1024);
  scrapes.get(2n)?.abort(new TargetError(ScrapeErrorReason.CANCELLED, "cancelled by the server"));
  for (let k = 0; k < 3; k++) await tick();
  const frames = drain().map((f) => `${f.frame?.case} ${f.frame?.value && "scrapeId" in f.frame.value ? f.frame.value.scrapeId : ""}`);
  assert.deepEqual(frames, ["result 1", "head 2", "end 2"]);
  assert.equal(scrapes.size, 0);
  order(); // the place was given back, and the queue has room: one result again
  await tick();
  assert.deepEqual(drain().map((f) => f.frame?.case), ["result"]);
});
