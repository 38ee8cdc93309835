/**
 * A Prometheus that reads a large answer steadily, however slowly, is never taken for a stalled one
 * (src/server/relay.ts `stalledMs`): "stalled" was no 'drain' for `stalledAnswerMs`, but a drain comes only once
 * the whole credit granted has gone out, so a reader taking 300 KB/s of a 20 MB body looked stalled and was cut
 * under contention (outside review 17b: 8 of 16 steady readers cut, "its answer took nothing for 8s"). Progress is
 * now the bytes handed to the kernel: steady readers keep their places; one that reads nothing still yields.
 */
import assert from "node:assert/strict";
import * as net from "node:net";
import { test } from "node:test";
import { Registry } from "prom-client";
import { startClient, startServer, waitFor } from "../helpers.ts";
import { rawHttp } from "./raw-client.ts";
import { appScrape, bigExporter, scrapeCounts, warningLogger } from "./fixtures/stalled-answers.ts";

const stalledPlaceMs = 2_000;
const bodyBytes = 20 * 1024 * 1024;

test("steady slow readers holding every place are not cut for another address's scrape", { timeout: 120_000 }, async () => {
  const exporter = await bigExporter(bodyBytes);
  const { logger, warnings } = warningLogger();
  const registry = new Registry();
  const s = await startServer({ logger, registry, stalledAnswerMs: stalledPlaceMs, maxScrapesInFlight: 3 });
  const { cancelled, inFlight } = scrapeCounts(registry);
  const client = await startClient(s.url, "app", { registry: undefined, targets: [`9100=http://127.0.0.1:${exporter.port}/metrics`], maxScrapesInFlight: 4 });
  const sockets: net.Socket[] = [];
  const ticks: NodeJS.Timeout[] = [];
  try {
    // Three readers from one address, each taking 96 KiB every 100 ms (under 1 MB/s): 20 MB takes 20 s. The kernel
    // wakes the server's writes once a third of the socket's send buffer is free (1-2 MB on loopback): a reader that
    // takes less than that per stalledAnswerMs shows no progress (here 2 s; 5 s by default).
    const got: number[] = [];
    for (let i = 0; i < 3; i++) {
      const socket = net.connect({ port: s.port, host: "127.0.0.1", localAddress: "127.0.0.60" });
      sockets.push(socket);
      socket.on("error", () => {});
      got.push(0);
      let allowance = 0;
      socket.on("data", (c: Buffer) => {
        got[i]! += c.length;
        allowance -= c.length;
        if (allowance <= 0) socket.pause();
      });
      ticks.push(
        setInterval(() => {
          allowance = 96 * 1024;
          socket.resume();
        }, 100),
      );
      socket.write(appScrape(120, false));
    }
    await waitFor("the readers to hold every place", async () => (await inFlight()) >= 3, 20_000);
    await new Promise((r) => setTimeout(r, stalledPlaceMs * 3)); // many times stalledAnswerMs of steady reading
    const before = [...got];
    // Another address asks meanwhile, a few times: no place, and none of the readers is cut for it.
    for (let i = 0; i < 3; i++) {
      const answer = await rawHttp(s.port, appScrape(2), 30_000, "127.0.0.61");
      assert.match(answer.slice(0, 200), /^HTTP\/1.1 503 /, `${answer.slice(0, 30)} cancelled=${await cancelled()} inFlight=${await inFlight()} got=${got} ${warnings.join(" / ")}`);
    }
    assert.equal(await cancelled(), 0, `steady readers cut: ${warnings.join(" / ")}`);
    assert.ok(got.every((g, i) => g > before[i]!), `every reader went on reading: ${got} (from ${before})`);
    assert.equal(sockets.filter((x) => x.destroyed).length, 0, "no reader's connection was closed");
  } finally {
    ticks.forEach(clearInterval);
    for (const socket of sockets) socket.destroy();
    await client.stop();
    await s.close();
    await exporter.close();
  }
});
