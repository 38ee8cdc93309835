/**
 * With several targets, a client keeps its last free places for the targets that have no scrape at work (one
 * each, at most half of `maxScrapesInFlight`) from a target's third scrape at work on: an exporter that hangs
 * cannot hold every place until its scrapes time out while a healthy target beside it is answered busy, and two
 * Prometheus servers scraping one target at once are never answered busy for it (src/client/scrape-slots.ts).
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createClient, silentLogger } from "../src/client/index.ts";
import { createScrapeSlots } from "../src/client/scrape-slots.ts";
import { proxyGet, startServer, waitFor } from "./helpers.ts";

test("places: one target takes all of them; with several, the last ones wait for targets with nothing at work", () => {
  const one = createScrapeSlots(8, 1);
  const t = {};
  for (let i = 0; i < 8; i++) (assert.equal(one.refusal(t, "c"), undefined), one.take(t));
  assert.equal(one.refusal(t, "c"), 'client "c" has 8 scrapes in flight, its maximum');

  const [hang, a, b] = [{}, {}, {}];
  const three = createScrapeSlots(8, 3);
  let taken = 0;
  while (!three.refusal(hang, "c")) (three.take(hang), taken++);
  assert.equal(taken, 6, "two places kept, one for each idle target");
  assert.equal(three.refusal(hang, "c"), 'client "c" keeps its last 2 free places of 8 for targets with no scrape at work (this one has 6)');
  assert.equal(three.refusal(a, "c"), undefined, "an idle target's first scrape finds a place");
  three.take(a);
  assert.equal(three.refusal(a, "c"), undefined, "and its second (an HA pair of Prometheus servers), even from the last place");
  three.take(a);
  assert.match(three.refusal(b, "c") ?? "", /has 8 scrapes in flight/);
  three.release(hang);
  assert.equal(three.refusal(b, "c"), undefined, "a place free again: b's first scrape takes it");
  three.take(b);
  three.release({}); // a target that holds nothing: nothing changes
  assert.equal(three.inUse, 8);

  // Two scrapes of each of four targets at once fill eight places: none is answered busy.
  const ha = createScrapeSlots(8, 50);
  const four = [{}, {}, {}, {}];
  for (const t of four) for (let i = 0; i < 2; i++) (assert.equal(ha.refusal(t, "c"), undefined), ha.take(t));

  // Many targets: at most half of the places are kept.
  const many = createScrapeSlots(8, 50);
  let n = 0;
  while (!many.refusal(hang, "c")) (many.take(hang), n++);
  assert.equal(n, 4);
});

test("a forwarder with a hanging exporter and a healthy one: the healthy one is served throughout", { timeout: 60_000 }, async () => {
  let hung = 0;
  const hanging = http.createServer(() => void hung++); // takes requests, never answers
  const healthy = http.createServer((_req, res) => res.writeHead(200, { "content-type": "text/plain" }).end("up_test 1\n"));
  for (const srv of [hanging, healthy]) srv.listen(0, "127.0.0.1");
  await Promise.all([once(hanging, "listening"), once(healthy, "listening")]);
  const port = (srv: http.Server) => (srv.address() as AddressInfo).port;
  const s = await startServer();
  const c = createClient({
    name: "fwd",
    serverUrl: s.url,
    logger: silentLogger,
    maxScrapesInFlight: 8,
    targets: [
      { url: `http://127.0.0.1:${port(hanging)}/metrics`, port: 9115, maxScrapesPerSecond: 100 },
      { url: `http://127.0.0.1:${port(healthy)}/metrics`, port: 9100 },
    ],
  });
  try {
    await c.start({ timeoutMs: 10_000 });
    // 16 scrapes of the hanging exporter at once, each waiting out its 5 s.
    const stuck = Array.from({ length: 16 }, () => proxyGet(s.port, "http://fwd:9115/metrics", { "x-prometheus-scrape-timeout-seconds": "5" }));
    await waitFor("7 of them at work on the hanging exporter (one place kept for the healthy target)", () => hung === 7, 10_000);
    await new Promise((r) => setTimeout(r, 200)); // and no more
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await proxyGet(s.port, "http://fwd:9100/metrics")).status);
    assert.deepEqual(statuses, Array(10).fill(200), "the healthy target is never answered busy");
    const answers = await Promise.all(stuck);
    const busy = answers.filter((r) => r.status === 503);
    assert.ok(busy.length >= 9, `16 - 7 of the hanging exporter's scrapes answered busy: ${busy.length}`);
    assert.equal(hung, 7);
    assert.match(busy[0]!.body.toString(), /keeps its last 1 free place of 8 for targets with no scrape at work|has 8 scrapes in flight/);
  } finally {
    await c.stop();
    await s.close();
    for (const srv of [hanging, healthy]) (srv.closeAllConnections(), srv.close());
  }
});
