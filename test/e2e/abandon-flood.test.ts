/**
 * A stranger on the proxy port asking for a client's metrics and hanging up 2 ms later, thousands of times a
 * second. Each request orders a scrape and abandons it. The client reads its stream at its own pace (its read
 * budget): orders still waiting to be sent are taken back, late answers for the ones it got are dropped, and it
 * keeps its stream and its name, and Prometheus' own scrapes during the flood wait for a place and are served. It used
 * to be cut off, as "not reading its stream" (orders and cancels piled up
 * unsent) or as a protocol violator (late answers for scrapes past the last 128 remembered).
 */
import assert from "node:assert/strict";
import * as net from "node:net";
import { after, test } from "node:test";
import type { Logger } from "../../src/shared/logger.ts";
import { proxyGet, startClient, startServer, waitFor } from "../helpers.ts";

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Proxy requests for `name` hung up 2 ms after they were sent, one after another, until `until`. */
async function abandonLoop(port: number, name: string, until: number): Promise<number> {
  const request = `GET http://${name}/metrics HTTP/1.1\r\nHost: ${name}\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n`;
  let n = 0;
  while (Date.now() < until) {
    await new Promise<void>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.write(request);
        setTimeout(() => s.destroy(), 2);
      });
      s.on("error", () => {});
      s.on("close", () => resolve());
    });
    n++;
  }
  return n;
}

test("scrapes abandoned as fast as a script can: the client keeps its stream and its name, and is scraped after", async (t) => {
  const warned: string[] = [];
  const logger: Logger = { debug() {}, info() {}, warn: (m) => void warned.push(m), error: (m) => void warned.push(m) };
  // Heartbeats every 500 ms: the check for a client not reading its stream runs often.
  const s = await startServer({ logger, heartbeatIntervalMs: 500 });
  cleanups.push(() => s.close());
  const c = await startClient(s.url, "victim");
  cleanups.push(() => c.stop());
  await waitFor("the client", () => s.server.clients().some((x) => x.name === "victim"));
  const sessionId = s.server.clients().find((x) => x.name === "victim")?.sessionId;

  // Meanwhile Prometheus scrapes the client 4 times a second: each waits for a place (maxScrapesWaiting) while the
  // flood's requests leave the wait as they hang up, so it gets one of the next places freed, never a 503.
  const until = Date.now() + 4_000;
  const legit = (async () => {
    const statuses: number[] = [];
    while (Date.now() < until) {
      const [r] = await Promise.all([proxyGet(s.port, "http://victim/metrics", { "x-prometheus-scrape-timeout-seconds": "10" }), new Promise((r) => setTimeout(r, 250))]);
      statuses.push(r.status);
    }
    return statuses;
  })();
  const abandoned = (await Promise.all(Array.from({ length: 16 }, () => abandonLoop(s.port, "victim", until)))).reduce((a, b) => a + b, 0);
  const statuses = await legit;
  t.diagnostic(`${abandoned} scrapes abandoned in 4 s; Prometheus' during it: ${JSON.stringify(statuses)}; server warnings: ${JSON.stringify(warned.slice(0, 3))}`);
  // At least two during the flood (four on a quiet machine; three when a CI run or a bench shares the 2 cores).
  assert.ok(statuses.length >= 2 && statuses.every((x) => x === 200), `every scrape of Prometheus' during the flood is served: ${statuses}`);
  assert.ok(abandoned >= 1_000, `a flood: ${abandoned}`);
  assert.equal(s.server.clients().find((x) => x.name === "victim")?.sessionId, sessionId, "the client kept its stream");
  assert.deepEqual(warned.filter((m) => /closing a client's stream/.test(m)), []);
  // Once the flood stops, the client serves again (what it read of the flood drains at its pace first).
  const r = await waitFor("a scrape answered 200", async () => {
    const got = await proxyGet(s.port, "http://victim/metrics");
    return got.status === 200 ? got : undefined;
  }, 30_000, 200);
  assert.match(r?.body.toString() ?? "", /test_up_total/);
});
