/**
 * A client that breaks the protocol has its stream ended; Prometheus, whose
 * scrapes of it were in flight, is told which rule was broken, not only that
 * the client disconnected.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code } from "@connectrpc/connect";
import { startServer } from "../helpers.ts";
import { connectRaw, openGet } from "./raw-client.ts";

test("a result frame without the feature single-result: 502 naming the rule, for each scrape in flight", { timeout: 30_000 }, async () => {
  const s = await startServer();
  try {
    const raw = await connectRaw(s.url, { name: "rude" });
    const first = openGet(s.port, "http://rude/metrics");
    const a = await raw.next("order");
    const second = openGet(s.port, "http://rude/metrics");
    await raw.next("order");
    raw.send({ frame: { case: "result", value: { scrapeId: a.scrapeId, status: 200, headers: [], data: Buffer.from("up 1\n") } } });
    const e = await raw.ended;
    assert.equal(e?.code, Code.InvalidArgument);
    const rule = 'promproxy: client "rude" disconnected: cut off for breaking the protocol: scrape 1: a result frame, but the stream did not negotiate the feature "single-result"\n';
    for (const r of [await first.done, await second.done]) {
      assert.equal(r.status, 502);
      assert.equal(r.body.toString(), rule);
    }
  } finally {
    await s.close();
  }
});
