/**
 * Places held by answers nobody reads yield to another address's scrape (src/server/stalled-places.ts): a scraper
 * whose connections ask a large target and read nothing (and ask again at once when answered 503) held every place
 * of that target for as long as it liked, and legitimate Prometheus got 64 of 64 `503 ... keeps its last 1 free
 * place of 8` over 140 s (an outside review), nothing logged. Now a scrape from another address that finds no place
 * (the client answers it busy) takes the place of an answer stalled for `stalledAnswerMs`: the stalled scrape is
 * cancelled, its connection closed, and that is logged. Real server, real forwarder client, real exporter.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as net from "node:net";
import { test } from "node:test";
import { Registry } from "prom-client";
import type { Logger } from "../../src/shared/logger.ts";
/** The server option stalledAnswerMs, lowered from its 5 s (the rule is the same; the test is shorter, and shows the option is used). */
const stalledPlaceMs = 2_000;
import { startClient, startServer, waitFor } from "../helpers.ts";
import { rawHttp } from "./raw-client.ts";

const bodyBytes = 20 * 1024 * 1024;
const hogs = 6;

/** Hogs from one address hold the big target's places (`places` of them); a scrape from another gets 200. */
async function hogged(serverPlaces: number | undefined, targets: (ep: number) => string[], places: number) {
  const body = Buffer.alloc(bodyBytes, "a");
  const exporter = http.createServer((req, res) => {
    if (req.url === "/small") return void res.end("small_metric 1\n");
    res.writeHead(200, { "content-type": "text/plain", "content-length": body.length }).end(body);
  });
  await new Promise<void>((r) => exporter.listen(0, "127.0.0.1", r));
  const ep = (exporter.address() as AddressInfo).port;
  const warnings: string[] = [];
  const logger: Logger = { debug() {}, info() {}, warn: (m) => void warnings.push(m), error: (m) => void warnings.push(m) };
  const registry = new Registry();
  const s = await startServer({ logger, registry, stalledAnswerMs: stalledPlaceMs, ...(serverPlaces ? { maxScrapesInFlight: serverPlaces } : {}) });
  const cancelled = async () => (await registry.getSingleMetric("promproxy_scrapes_total")!.get()).values.find((v) => v.labels["outcome"] === "cancelled")?.value ?? 0;
  const inFlight = async () => (await registry.getSingleMetric("promproxy_scrapes_in_flight")!.get()).values[0]?.value ?? 0;
  const client = await startClient(s.url, "app", { registry: undefined, targets: targets(ep), maxScrapesInFlight: 4 });
  const sockets = new Set<net.Socket>();
  let stopped = false;
  /** A hog: asks the big target from 127.0.0.50, reads nothing; answered 503 (or closed), asks again. */
  const hog = () => {
    if (stopped) return;
    const socket = net.connect({ port: s.port, host: "127.0.0.1", localAddress: "127.0.0.50" });
    sockets.add(socket);
    socket.on("error", () => {});
    socket.write("GET http://app:9100/metrics HTTP/1.1\r\nHost: app:9100\r\nX-Prometheus-Scrape-Timeout-Seconds: 120\r\n\r\n");
    socket.once("data", (d) => {
      if (d.toString("latin1", 0, 12) === "HTTP/1.1 503") socket.destroy();
      else socket.pause();
    });
    socket.once("close", () => {
      sockets.delete(socket);
      setTimeout(hog, 100);
    });
  };
  try {
    for (let i = 0; i < hogs; i++) hog();
    await waitFor("the hogs to hold the big target's places", async () => (await inFlight()) >= places, 20_000);
    // Their answers stall once the sockets are full; give them the time that makes a stalled answer yield.
    await new Promise((r) => setTimeout(r, stalledPlaceMs + 2_000));
    assert.equal(await cancelled(), 0);
    const answer = await rawHttp(s.port, "GET http://app:9100/metrics HTTP/1.1\r\nHost: app:9100\r\nX-Prometheus-Scrape-Timeout-Seconds: 30\r\nConnection: close\r\n\r\n", 60_000, "127.0.0.51");
    assert.match(answer.slice(0, 200), /^HTTP\/1.1 200 /, answer.slice(0, 300));
    assert.equal(answer.length - answer.indexOf("\r\n\r\n") - 4, bodyBytes);
    assert.ok((await cancelled()) >= 1, "a stalled hog's scrape was cancelled");
    assert.ok(warnings.some((w) => /scrape of "app" cancelled, its place given up: its answer took nothing for \d+s while a scrape from another address found no place/.test(w)), warnings.join("\n"));
  } finally {
    stopped = true;
    for (const socket of sockets) socket.destroy();
    await client.stop();
    await s.close();
    exporter.closeAllConnections();
    await new Promise((r) => exporter.close(r));
  }
}

test("the client's own places (it keeps its last free one for an idle target): another address's scrape gets 200", { timeout: 120_000 }, () =>
  hogged(undefined, (ep) => [`9100=http://127.0.0.1:${ep}/metrics`, `9101=http://127.0.0.1:${ep}/small`], 3));

test("the server's places (maxScrapesInFlight, the hogs' next asks waiting): another address's scrape gets 200, first in line", { timeout: 120_000 }, () =>
  hogged(3, (ep) => [`9100=http://127.0.0.1:${ep}/metrics`], 3));
