/**
 * Admission: streams that open and never send their hello hold a bounded
 * number of places (maxPendingHellos), each for at most helloTimeoutMs; past
 * the bound a new stream is refused at once with ResourceExhausted, and once
 * places free up clients connect again.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code } from "@connectrpc/connect";
import { proxyGet, startClient, startServer } from "../helpers.ts";
import { silentStream } from "./silent-stream.ts";

test("maxPendingHellos: at the limit streams wait, over it ResourceExhausted at once; the hello timeout frees the places", { timeout: 60_000 }, async () => {
  const s = await startServer({ maxPendingHellos: 3, helloTimeoutMs: 3_000 });
  const silent = [silentStream(s.url), silentStream(s.url), silentStream(s.url)];
  try {
    await new Promise((r) => setTimeout(r, 500)); // the three hold their places
    const t0 = performance.now();
    const over = await silentStream(s.url).ended;
    assert.equal(over?.code, Code.ResourceExhausted, String(over));
    assert.match(over?.rawMessage ?? "", /3 streams are waiting for their hello, the maximum/);
    assert.ok(performance.now() - t0 < 2_500, "refused at once, not after the hello timeout");
    // The silent ones are ended by the hello timeout; then a client connects and is scraped.
    for (const x of silent) assert.equal((await x.ended)?.code, Code.DeadlineExceeded);
    const app = await startClient(s.url, "app-1");
    try {
      const r = await proxyGet(s.port, "http://app-1/metrics");
      assert.equal(r.status, 200);
    } finally {
      await app.stop();
    }
  } finally {
    for (const x of silent) x.close();
    await s.close();
  }
});

test("a server that is draining refuses new client streams with Unavailable and keeps serving its clients", { timeout: 30_000 }, async () => {
  const s = await startServer();
  const app = await startClient(s.url, "app-1");
  try {
    const closing = s.server.close({ drainDelayMs: 1_500, graceMs: 1_000 });
    assert.equal(s.server.ready, false);
    const newcomer = await silentStream(s.url).ended;
    assert.equal(newcomer?.code, Code.Unavailable);
    const r = await proxyGet(s.port, "http://app-1/metrics");
    assert.equal(r.status, 200, "still served during the drain delay");
    assert.equal(r.headers["connection"], "close");
    await closing;
  } finally {
    await app.stop();
    await s.close();
  }
});
