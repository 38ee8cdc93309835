/**
 * Late frames: a client answers scrapes the server already gave up on (the
 * cancel crossed its answer). However many scrapes were abandoned since, a
 * late answer for an id the server issued is dropped and the stream stays up;
 * an answer for an id the server never issued ends the stream.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code } from "@connectrpc/connect";
import { proxyGet, startServer } from "../helpers.ts";
import { connectRaw, giveUpOn, openGet } from "./raw-client.ts";

const text = { "content-type": "text/plain; version=0.0.4" };

test("300 scrapes cancelled by Prometheus hanging up, each answered late: the stream stays up and serves", { timeout: 120_000 }, async () => {
  // Places for all 300: a scrape given up on keeps its place until the client ends it, and this one answers late.
  const s = await startServer({ maxScrapesInFlight: 1_000 });
  try {
    const raw = await connectRaw(s.url, { name: "victim", features: ["single-result"] });
    const ids = await giveUpOn(raw, s.port, "victim", 300);
    // Every kind of late frame, oldest first: the oldest ids are long past what the server remembers of them.
    for (const [i, id] of ids.entries()) {
      if (i % 2 === 0) {
        raw.head(id, 200, text);
        raw.chunk(id, "up 1\n");
        raw.end(id);
      } else {
        raw.send({ frame: { case: "result", value: { scrapeId: id, status: 200, headers: [], data: Buffer.from("up 1\n") } } });
      }
    }
    const res = proxyGet(s.port, "http://victim/metrics");
    const order = await raw.next("order");
    assert.ok(order.scrapeId > ids.at(-1)!, "ids grow on a stream");
    raw.head(order.scrapeId, 200, text);
    raw.chunk(order.scrapeId, "up 1\n");
    raw.end(order.scrapeId);
    const r = await res;
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.body.toString(), "up 1\n");
    const still = await Promise.race([raw.ended.then((e) => `ended: ${e?.message ?? "cleanly"}`), new Promise((ok) => setTimeout(ok, 200, "up"))]);
    assert.equal(still, "up");
    raw.abort();
    await raw.ended;
  } finally {
    await s.close();
  }
});

test("an answer for a scrape id the server never issued ends the stream with INVALID_ARGUMENT", { timeout: 30_000 }, async () => {
  const s = await startServer();
  try {
    const raw = await connectRaw(s.url, { name: "liar" });
    const req = openGet(s.port, "http://liar/metrics");
    const order = await raw.next("order");
    req.destroy();
    await raw.next("cancel", (c) => c.scrapeId === order.scrapeId);
    await req.done;
    raw.head(order.scrapeId + 1n, 200, text); // the id the next order would get: not issued yet
    const e = await raw.ended;
    assert.equal(e?.code, Code.InvalidArgument);
    assert.match(e.rawMessage, /head for scrape 2, which was never ordered/);
  } finally {
    await s.close();
  }
});
