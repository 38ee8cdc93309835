/**
 * A client that works on fewer scrapes at once than the server allows says
 * so in its hello (max_in_flight): the server keeps no more of its scrapes in
 * flight than that, and the others wait on the server for a place instead of
 * being answered busy by the client.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { proxyGet, startClient, startServer, waitFor } from "../helpers.ts";
import { slowRegistry } from "./fixtures/faults/util.ts";

test("a client with 2 places and a server with 16: 6 scrapes at once are all served, 2 at a time", { timeout: 60_000 }, async () => {
  const s = await startServer();
  const slow = slowRegistry(300);
  const c = await startClient(s.url, "small", { registry: slow, maxScrapesInFlight: 2 });
  let most = 0;
  const look = setInterval(() => (most = Math.max(most, s.server.clients().find((x) => x.name === "small")?.scrapesInFlight ?? 0)), 5);
  try {
    await waitFor("the client", () => s.server.clients().some((x) => x.name === "small"));
    const answers = await Promise.all(Array.from({ length: 6 }, () => proxyGet(s.port, "http://small/metrics", { "x-prometheus-scrape-timeout-seconds": "20" })));
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200, 200, 200], answers.map((a) => a.body.toString()).join(" | "));
    assert.ok(most <= 2, `at most the client's 2 in flight on the server, saw ${most}`);
    assert.ok(most >= 1);
  } finally {
    clearInterval(look);
    slow.release();
    await c.stop();
    await s.close();
  }
});
