/**
 * A forwarder (createClient with two http targets, in-process) whose one
 * exporter answers in 1-byte HTTP chunks (legal: 12 KB of body in ~72 KB of
 * framing), or streams a long body faster than the server takes it: the
 * other target's scrapes on the same stream are all answered while it
 * streams. A server that counts the frames it reads checks that the tiny
 * chunks leave merged (review 17a: one chunk frame per body byte, 132,007
 * frames for 18 scrapes, the good target's scrapes waiting seconds), and
 * that a body keeping the out-queue at its chunk cap while the server does
 * read it does not stop the client reading the orders for other targets (it
 * used to: "answers pile up" was a quarter of maxQueuedFrames, the very cap
 * of queued chunk frames). Assertions are on counts, never on speed.
 */
import assert from "node:assert/strict";
import type * as net from "node:net";
import { after, test } from "node:test";
import { createClient, type PromproxyClient } from "../src/client/index.ts";
import { silentLogger } from "../src/shared/logger.ts";
import { rawExporter, type RawExporter } from "./fixtures/raw-exporter.ts";
import { startHostileServer, welcome, type HostileStream } from "./e2e/fixtures/hostile-server/server.ts";
import { waitFor } from "./helpers.ts";

const cleanups: (() => Promise<unknown> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const goodBody = "good_metric 1\n".repeat(500);
const tinyBodyBytes = 12_000;

/** An exporter with a Content-Length body: the good one. */
const goodExporter = () => rawExporter((s) => s.write(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${goodBody.length}\r\n\r\n${goodBody}`));

/** What the server read of one scrape. */
interface Seen {
  chunks: number;
  bytes: number;
  ended: boolean;
  error?: string;
}

/** A server that reads every frame and records each scrape's; `script` sends the orders once welcomed. */
async function countingServer(script: (s: HostileStream) => Promise<void>, o: { windowSize?: number } = {}) {
  const seen = new Map<bigint, Seen>();
  const at = (id: bigint) => {
    let s = seen.get(id);
    if (!s) seen.set(id, (s = { chunks: 0, bytes: 0, ended: false }));
    return s;
  };
  const server = await startHostileServer(async (s) => {
    s.read((f) => {
      const c = f.frame;
      if (c.case === "chunk") {
        const x = at(c.value.scrapeId);
        x.chunks++;
        x.bytes += c.value.data.byteLength;
      } else if (c.case === "end") {
        const x = at(c.value.scrapeId);
        x.ended = true;
        if (c.value.error) x.error = c.value.error.message;
      }
    });
    await s.send(welcome());
    await script(s);
  }, o);
  cleanups.push(() => server.close());
  return { server, seen, at };
}

const order = (scrapeId: bigint, port: number, seconds = 20n) => ({
  frame: { case: "order" as const, value: { scrapeId, port, path: "/metrics", creditBytes: 1n << 30n, timeout: { seconds, nanos: 0 } } },
});

async function forwarder(serverUrl: string, tiny: RawExporter, good: RawExporter, more: { maxQueuedFrames?: number } = {}): Promise<PromproxyClient> {
  const targets = [`9001=http://127.0.0.1:${tiny.port}/metrics`, `9002=http://127.0.0.1:${good.port}/metrics`];
  const c = createClient({ name: "fwd", serverUrl, targets, logger: silentLogger, ...more });
  cleanups.push(() => c.stop());
  await c.start({ timeoutMs: 10_000 });
  return c;
}

test("an exporter answering in 1-byte chunks: its body leaves in a few chunk frames, not one per byte, and the other target's scrapes on the stream are all answered", { timeout: 120_000 }, async (t) => {
  const tinyAnswer = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n" + "1\r\nm\r\n".repeat(tinyBodyBytes) + "0\r\n\r\n";
  const tiny = await rawExporter((s) => s.write(tinyAnswer));
  const good = await goodExporter();
  cleanups.push(() => tiny.close(), () => good.close());
  const rounds = 6;
  const tinyIds: bigint[] = [];
  const goodIds: bigint[] = [];
  let go: () => void = () => {};
  const started = new Promise<void>((r) => (go = r));
  const { server, seen, at } = await countingServer(async (s) => {
    await started;
    for (let i = 0; i < rounds && !s.closed; i++) {
      const ti = BigInt(2 * i + 1);
      const gi = BigInt(2 * i + 2);
      tinyIds.push(ti);
      goodIds.push(gi);
      await s.send(order(ti, 9001));
      await s.send(order(gi, 9002));
      await new Promise((r) => setTimeout(r, 30));
    }
  });
  await forwarder(server.url, tiny, good);
  go();
  await waitFor("every scrape to end", () => tinyIds.length === rounds && [...tinyIds, ...goodIds].every((id) => at(id).ended), 60_000);
  const frames = tinyIds.map((id) => at(id).chunks);
  t.diagnostic(`tiny scrapes' chunk frames: ${frames.join(", ")} (for ${tinyBodyBytes} bytes each)`);
  for (const id of goodIds) {
    const g = seen.get(id)!;
    assert.equal(g.error, undefined, `good scrape ${id}: ${g.error}`);
    assert.equal(g.bytes, goodBody.length, `good scrape ${id}`);
  }
  for (const id of tinyIds) {
    const x = seen.get(id)!;
    assert.equal(x.error, undefined, `tiny scrape ${id}: ${x.error}`);
    assert.equal(x.bytes, tinyBodyBytes, `tiny scrape ${id}: the whole body`);
    // One frame per byte before: 12 000. Merged: a frame per socket read of the exporter's, or so.
    assert.ok(x.chunks <= 60, `tiny scrape ${id}: ${x.chunks} chunk frames for ${tinyBodyBytes} bytes`);
  }
});

test("a body streaming faster than the server reads it (the out-queue at its chunk cap, the writer taking): the orders for the other target are read and answered meanwhile", { timeout: 120_000 }, async (t) => {
  // An endless body, written as fast as the forwarder reads it: the server's small window is what paces it.
  let sockets: net.Socket[] = [];
  const piece = Buffer.alloc(64 * 1024, "b");
  const big = await rawExporter((s) => {
    sockets.push(s);
    s.write("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n");
    const pump = () => {
      while (!s.destroyed && s.write(piece));
    };
    s.on("drain", pump);
    pump();
  });
  const good = await goodExporter();
  cleanups.push(
    () => big.close(),
    () => good.close(),
    () => {
      for (const s of sockets) s.destroy();
      sockets = [];
    },
  );
  const goods = 6;
  const goodIds: bigint[] = [];
  let go: () => void = () => {};
  const started = new Promise<void>((r) => (go = r));
  let chunksBefore = 0;
  const { server, seen, at } = await countingServer(async (s) => {
    await started;
    await s.send(order(1n, 9001, 60n));
    // The big body streams before the good orders come (6 orders, 150 ms apart: the body streams throughout).
    await waitFor("the big body to stream", () => at(1n).chunks >= 20, 30_000);
    chunksBefore = at(1n).chunks;
    for (let i = 0; i < goods && !s.closed; i++) {
      const id = BigInt(i + 2);
      goodIds.push(id);
      await s.send(order(id, 9002, 8n));
      await new Promise((r) => setTimeout(r, 150));
    }
  }, { windowSize: 1024 });
  // maxQueuedFrames 16: a chunk cap of 4 frames, as many as "answers pile up" was.
  await forwarder(server.url, big, good, { maxQueuedFrames: 16 });
  go();
  await waitFor("the good orders to be sent", () => goodIds.length === goods, 30_000);
  await waitFor("every good scrape to end", () => goodIds.every((id) => at(id).ended), 20_000).catch(() => undefined);
  const answered = goodIds.filter((id) => at(id).ended && at(id).error === undefined && at(id).bytes === goodBody.length).length;
  const big1 = seen.get(1n)!;
  t.diagnostic(`good scrapes answered whole: ${answered} of ${goods}; big body: ${big1.chunks} chunk frames, ${big1.bytes} bytes so far, ended ${big1.ended}`);
  assert.equal(answered, goods, `good scrapes: ${goodIds.map((id) => `${id}: ${JSON.stringify(at(id))}`).join("; ")}`);
  assert.equal(big1.ended, false, "the big body was still streaming");
  assert.ok(big1.chunks > chunksBefore, "and its chunks still came while the good scrapes were answered");
});
