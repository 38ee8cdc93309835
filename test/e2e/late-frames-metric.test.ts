/**
 * `promproxy_late_frames_dropped_total`: the result frames clients send for
 * scrapes already ended or given up on, dropped quietly, counted over every
 * client stream, those that ended included; the frames of a scrape in flight
 * are not counted.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { proxyGet, startServer } from "../helpers.ts";
import { connectRaw, giveUpOn } from "./raw-client.ts";

const text = { "content-type": "text/plain; version=0.0.4" };

/** The counter's value on the server's /metrics. */
async function lateDropped(port: number): Promise<number> {
  const r = await proxyGet(port, "/metrics");
  assert.equal(r.status, 200);
  const m = /^promproxy_late_frames_dropped_total (\d+)$/m.exec(r.body.toString());
  assert.ok(m, "promproxy_late_frames_dropped_total on /metrics");
  return Number(m[1]);
}

/** The counter reaches `n` (the server builds /metrics at most once a second: a page may be up to 1 s old). */
async function reaches(port: number, n: number): Promise<void> {
  let v = await lateDropped(port);
  for (const t0 = Date.now(); v !== n && Date.now() - t0 < 10_000; v = await lateDropped(port)) await new Promise((r) => setTimeout(r, 100));
  assert.equal(v, n);
}

test("late frames are counted in promproxy_late_frames_dropped_total, sessions that ended included", { timeout: 60_000 }, async () => {
  const s = await startServer();
  try {
    await reaches(s.port, 0);
    const raw = await connectRaw(s.url, { name: "late", features: ["single-result"] });
    // 3 scrapes Prometheus gives up on, each answered late with head, chunk and end: 9 frames.
    const ids = await giveUpOn(raw, s.port, "late", 3);
    for (const id of ids) {
      raw.head(id, 200, text);
      raw.chunk(id, "up 1\n");
      raw.end(id);
    }
    // A scrape served (its frames are not late), then one more frame for it after its end: late.
    const res = proxyGet(s.port, "http://late/metrics");
    const order = await raw.next("order");
    raw.send({ frame: { case: "result", value: { scrapeId: order.scrapeId, status: 200, headers: [], data: Buffer.from("up 1\n") } } });
    assert.equal((await res).status, 200);
    raw.chunk(order.scrapeId, "up 1\n");
    // Frames on a stream are taken in order: once a scrape ordered after them is answered, they are counted.
    const after = proxyGet(s.port, "http://late/metrics");
    const next = await raw.next("order");
    raw.send({ frame: { case: "result", value: { scrapeId: next.scrapeId, status: 200, headers: [], data: Buffer.from("up 1\n") } } });
    assert.equal((await after).status, 200);
    await reaches(s.port, 10);

    // The stream ends: its count stays; a second client's late frame adds to it.
    raw.abort();
    await raw.ended;
    await reaches(s.port, 10);
    const other = await connectRaw(s.url, { name: "other", features: ["single-result"] });
    const one = proxyGet(s.port, "http://other/metrics");
    const o1 = await other.next("order");
    other.send({ frame: { case: "result", value: { scrapeId: o1.scrapeId, status: 200, headers: [], data: Buffer.from("up 1\n") } } });
    assert.equal((await one).status, 200);
    other.send({ frame: { case: "result", value: { scrapeId: o1.scrapeId, status: 200, headers: [], data: Buffer.from("up 1\n") } } });
    const two = proxyGet(s.port, "http://other/metrics");
    const o2 = await other.next("order");
    other.send({ frame: { case: "result", value: { scrapeId: o2.scrapeId, status: 200, headers: [], data: Buffer.from("up 1\n") } } });
    assert.equal((await two).status, 200);
    await reaches(s.port, 11);
    other.abort();
    await other.ended;
  } finally {
    await s.close();
  }
});
