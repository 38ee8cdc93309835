/**
 * A replica warming up (`/readyz` 503: just started, its clients still finding it) answers a scrape of a name it
 * does not know `503 ... warming up ...` (outcome `warming_up`), not `404 no client`: the client may well be on
 * its way (after a restart, clients come back over seconds). Once warm, an unknown name is a 404 again.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { proxyGet, startClient, startServer, waitFor } from "../helpers.ts";

test("warming up: an unknown name is 503 warming_up, a connected client is served; once warm, an unknown name is 404", { timeout: 30_000 }, async () => {
  const s = await startServer({ warmupMs: 1_500, warmupSettleMs: 200, warmupMaxMs: 1_500 });
  const outcomes: string[] = [];
  s.server.on("scrapeFinished", (e) => outcomes.push(e.outcome));
  try {
    assert.equal(s.server.status().ready, false, "not ready: warming up");
    const early = await proxyGet(s.port, "http://late-app/metrics");
    assert.equal(early.status, 503);
    assert.equal(early.body.toString(), 'promproxy: no client "late-app" connected yet: this replica is warming up (clients are still finding it); retry shortly\n');
    const app = await startClient(s.url, "late-app");
    try {
      assert.equal((await proxyGet(s.port, "http://late-app/metrics")).status, 200, "served once it came, warm or not");
      await waitFor("the replica warm", () => s.server.status().ready, 10_000);
      const warm = await proxyGet(s.port, "http://nobody/metrics");
      assert.equal(warm.status, 404);
      assert.equal(warm.body.toString(), 'promproxy: no client "nobody" connected\n');
      assert.deepEqual(outcomes, ["warming_up", "success", "unknown_client"]);
      const metrics = (await proxyGet(s.port, "/metrics")).body.toString();
      assert.match(metrics, /promproxy_scrapes_total\{outcome="warming_up"\} 1/);
    } finally {
      await app.stop();
    }
  } finally {
    await s.close();
  }
});
