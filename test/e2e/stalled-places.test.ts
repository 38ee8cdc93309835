/**
 * Places held by answers nobody reads yield to another address's scrape (src/server/stalled-places.ts): a scraper
 * whose connections ask a large target and read nothing (and ask again at once when answered 503) held every place
 * of that target for as long as it liked, and legitimate Prometheus got 64 of 64 `503 ... keeps its last 1 free
 * place of 8` over 140 s (an outside review), nothing logged. Now a scrape from another address that finds no place
 * (the client answers it busy) takes the place of an answer stalled for `stalledAnswerMs`: the stalled scrape is
 * cancelled, its connection closed, and that is logged. Real server, real forwarder client, real exporter.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Registry } from "prom-client";
import { startClient, startServer, waitFor } from "../helpers.ts";
import { rawHttp } from "./raw-client.ts";
import { appScrape, bigExporter, placeGivenUp, scrapeCounts, startHogs, warningLogger } from "./fixtures/stalled-answers.ts";

/** The server option stalledAnswerMs, lowered from its 5 s (the rule is the same; the test is shorter, and shows the option is used). */
const stalledPlaceMs = 2_000;
const bodyBytes = 20 * 1024 * 1024;
const hogs = 6;

/** Hogs from one address hold the big target's places (`places` of them); a scrape from another gets 200. */
async function hogged(serverPlaces: number | undefined, targets: (ep: number) => string[], places: number) {
  const exporter = await bigExporter(bodyBytes);
  const { logger, warnings } = warningLogger();
  const registry = new Registry();
  const s = await startServer({ logger, registry, stalledAnswerMs: stalledPlaceMs, ...(serverPlaces ? { maxScrapesInFlight: serverPlaces } : {}) });
  const { cancelled, inFlight } = scrapeCounts(registry);
  const client = await startClient(s.url, "app", { registry: undefined, targets: targets(exporter.port), maxScrapesInFlight: 4 });
  const hogging = startHogs(s.port, hogs);
  try {
    await waitFor("the hogs to hold the big target's places", async () => (await inFlight()) >= places, 20_000);
    // Their answers stall once the sockets are full; give them the time that makes a stalled answer yield.
    await new Promise((r) => setTimeout(r, stalledPlaceMs + 2_000));
    assert.equal(await cancelled(), 0);
    const answer = await rawHttp(s.port, appScrape(30), 60_000, "127.0.0.51");
    assert.match(answer.slice(0, 200), /^HTTP\/1.1 200 /, answer.slice(0, 300));
    assert.equal(answer.length - answer.indexOf("\r\n\r\n") - 4, bodyBytes);
    assert.ok((await cancelled()) >= 1, "a stalled hog's scrape was cancelled");
    assert.ok(warnings.some((w) => placeGivenUp.test(w)), warnings.join("\n"));
  } finally {
    hogging.stop();
    await client.stop();
    await s.close();
    await exporter.close();
  }
}

test("the client's own places (it keeps its last free one for an idle target): another address's scrape gets 200", { timeout: 120_000 }, () =>
  hogged(undefined, (ep) => [`9100=http://127.0.0.1:${ep}/metrics`, `9101=http://127.0.0.1:${ep}/small`], 3));

test("the server's places (maxScrapesInFlight, the hogs' next asks waiting): another address's scrape gets 200, first in line", { timeout: 120_000 }, () =>
  hogged(3, (ep) => [`9100=http://127.0.0.1:${ep}/metrics`], 3));
