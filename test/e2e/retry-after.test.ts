/**
 * The retry hint (`promproxy-retry-after-ms`): a server that sheds load (past
 * maxPendingHellos) says when to come back, at most maxRetryAfterMs ahead; a
 * client waits what it says, but only within its own backoff bounds, whatever
 * a hostile server announces. Both client transports. Times are only checked
 * from below (a client waited at least so long) or against a bound far away.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { createClient, silentLogger, type PromproxyClient } from "../../src/client/index.ts";
import { retryAfterKey } from "../../src/shared/retry-after.ts";
import { proxyGet, startServer, testRegistry } from "../helpers.ts";
import { silentStream } from "./silent-stream.ts";

const transports = ["fast", "connect"] as const;

function client(url: string, transport: (typeof transports)[number], backoff: { initialMs: number; maxMs: number }, onError?: (e: ConnectError) => void): PromproxyClient {
  return createClient({ name: "app-1", serverUrl: url, registry: testRegistry("app-1"), logger: silentLogger, transport, backoff: { ...backoff, jitter: 0 }, onError });
}

const waitFor = async (what: string, ok: () => boolean, ms = 20_000) => {
  const t0 = performance.now();
  while (!ok()) {
    if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

for (const transport of transports) {
  test(`${transport}: a server past maxPendingHellos refuses with a hint of at most maxRetryAfterMs, and the client waits it`, { timeout: 60_000 }, async () => {
    const s = await startServer({ maxPendingHellos: 1, helloTimeoutMs: 30_000, maxRetryAfterMs: 400 });
    const silent = silentStream(s.url);
    const refusals: { at: number; hint: string | null }[] = [];
    await new Promise((r) => setTimeout(r, 300)); // the silent stream holds the one place
    // Backoff 20 ms to 5 s: without the hint the first waits would be 20, 40, 80 ms.
    const app = client(s.url, transport, { initialMs: 20, maxMs: 5_000 }, (e) => {
      if (e.code === Code.ResourceExhausted) refusals.push({ at: performance.now(), hint: e.metadata.get(retryAfterKey) });
    });
    try {
      void app.start().catch(() => {});
      await waitFor("four refusals", () => refusals.length >= 4);
      for (const [i, r] of refusals.entries()) {
        assert.match(r.hint ?? "", /^\d+$/, `refusal ${i} carries a hint`);
        assert.ok(Number(r.hint) <= 400, `hint ${r.hint} within maxRetryAfterMs`);
        const next = refusals[i + 1];
        // The next attempt came no sooner than the hint (raised to initialMs), minus timer slack.
        if (next) assert.ok(next.at - r.at >= Math.max(20, Number(r.hint)) - 15, `waited ${(next.at - r.at).toFixed(0)} ms after a hint of ${r.hint}`);
      }
      silent.close(); // the place frees: the client gets in and is scraped
      await waitFor("the client", () => s.server.clients().length === 1);
      assert.equal((await proxyGet(s.port, "http://app-1/metrics")).status, 200);
    } finally {
      silent.close();
      await app.stop();
      await s.close();
    }
  });

  test(`${transport}: a hostile hint is clamped to the client's backoff bounds; a malformed one is ignored`, { timeout: 90_000 }, async () => {
    let hint = "";
    const attempts: number[] = [];
    const h2 = http2.createServer();
    const sessions = new Set<http2.ServerHttp2Session>();
    h2.on("session", (s) => {
      sessions.add(s);
      s.on("close", () => sessions.delete(s));
    });
    h2.on("stream", (stream) => {
      attempts.push(performance.now());
      stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "8", "grpc-message": "busy", [retryAfterKey]: hint }, { endStream: true });
    });
    await new Promise<void>((r) => h2.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(h2.address() as { port: number }).port}`;
    const run = async (value: string, backoff: { initialMs: number; maxMs: number }, n: number) => {
      hint = value;
      attempts.length = 0;
      const app = client(url, transport, backoff);
      void app.start().catch(() => {});
      try {
        await waitFor(`${n} attempts with hint "${value}"`, () => attempts.length >= n, 30_000);
      } finally {
        await app.stop();
      }
      return attempts.slice(1, n).map((t, i) => t - (attempts[i] as number));
    };
    try {
      // Over the upper bound (an hour, and more digits than a hint has): the client comes back after maxMs.
      await run("3600000", { initialMs: 50, maxMs: 200 }, 4);
      await run("99999999999", { initialMs: 50, maxMs: 200 }, 4);
      // At the upper bound: waited in full.
      for (const gap of await run("300", { initialMs: 50, maxMs: 300 }, 3)) assert.ok(gap >= 285, `gap ${gap.toFixed(0)} ms for a hint of 300 at maxMs 300`);
      // Under the lower bound (0): raised to initialMs, no tight loop.
      for (const gap of await run("0", { initialMs: 300, maxMs: 1_000 }, 4)) assert.ok(gap >= 285, `gap ${gap.toFixed(0)} ms for a hint of 0 at initialMs 300`);
      // At the lower bound: waited as said.
      for (const gap of await run("300", { initialMs: 300, maxMs: 1_000 }, 3)) assert.ok(gap >= 285, `gap ${gap.toFixed(0)} ms for a hint of 300 at initialMs 300`);
      // Malformed: ignored, the backoff runs (300 ms, then 600 ms: the second wait is the longer).
      for (const bad of ["-5", "1e3", "12 ms", "100, 200"]) {
        const gaps = await run(bad, { initialMs: 300, maxMs: 5_000 }, 3);
        assert.ok((gaps[0] as number) >= 285 && (gaps[1] as number) >= 585, `hint "${bad}" ignored: gaps ${gaps.map((g) => g.toFixed(0)).join(", ")} ms`);
      }
    } finally {
      for (const x of sessions) x.destroy();
      await new Promise<void>((r) => h2.close(() => r()));
    }
  });
}
