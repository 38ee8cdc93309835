/**
 * Faults with real processes and sockets: the server killed and
 * restarted, a client killed in the middle of a scrape, a black-holed network
 * path, and a graceful shutdown of the `promproxy server` CLI.
 *
 * Timing bounds are generous: they separate "at once" or "within the
 * heartbeat timeout" from "after a scrape timeout" (15 s by default, 30 s as
 * the tests ask for), nothing finer.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, type ConnectError } from "@connectrpc/connect";
import { createClient, silentLogger, type PromproxyClient } from "../../src/client/index.ts";
import { createServer, type PromproxyServer } from "../../src/server/index.ts";
import { proxyGet, startClient, startServer, waitFor } from "../helpers.ts";
import { startRelay } from "./fixtures/faults/relay.ts";
import { runScript, slowRegistry, type Script } from "./fixtures/faults/util.ts";
import { freePort, runCli, type CliProcess } from "./prometheus.ts";
import { openGet, timed } from "./raw-client.ts";

/** Names on /clients (http_sd) of the server at `url`: connected ones, or with `vanished`, those marked disconnected. */
async function listed(url: string, vanished = false): Promise<string[]> {
  const groups = (await (await fetch(`${url}/clients`)).json()) as { targets: string[]; labels: Record<string, string> }[];
  return groups
    .filter((g) => g.labels["__meta_promproxy_connected"] === (vanished ? "false" : "true"))
    .flatMap((g) => g.targets)
    .sort();
}

test("server SIGKILLed mid-scrape: the scrape fails at once, every client is back and scrapeable after a restart", { timeout: 60_000 }, async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const procs: CliProcess[] = [];
  const clients: PromproxyClient[] = [];
  const startServerProcess = async () => {
    const p = runCli(["server", "--listen", `127.0.0.1:${port}`, "--log-level", "warn"]);
    procs.push(p);
    await p.waitForOutput(/promproxy server listening on/);
    return p;
  };
  const names = Array.from({ length: 8 }, (_, i) => `app-${i}`);
  const slow = slowRegistry(60_000);
  try {
    const p1 = await startServerProcess();
    for (const name of names) clients.push(await startClient(url, name, { backoff: { initialMs: 50, maxMs: 500 } }));
    clients.push(await startClient(url, "slow", { registry: slow, backoff: { initialMs: 50, maxMs: 500 } }));
    assert.deepEqual(await listed(url), [...names, "slow"].sort());

    // A scrape the client is working on when the server dies; it asked for 30 s.
    const inFlight = openGet(port, "http://slow/metrics", { "x-prometheus-scrape-timeout-seconds": "30" });
    await waitFor("the slow client to start collecting", () => slow.started === 1);
    p1.child.kill("SIGKILL");
    const { value: seen, ms } = await timed(inFlight.done);
    assert.equal(seen.complete, false, "no complete response from a dead server");
    assert.ok(ms < 2_000, `the scrape in flight failed after ${ms.toFixed(0)} ms, want at once (not at its 30 s timeout)`);
    assert.equal((await p1.exited).signal, "SIGKILL");

    const restarted = performance.now();
    await startServerProcess();
    await waitFor("every client back on /clients", async () => (await listed(url)).length === names.length + 1, 15_000);
    for (const name of names) {
      const r = await proxyGet(port, `http://${name}/metrics`);
      assert.equal(r.status, 200, `${name}: ${r.body}`);
      assert.match(r.body.toString(), new RegExp(`^test_up_total\\{name="${name}"\\} 1$`, "m"));
    }
    const backMs = performance.now() - restarted;
    // Backoff here tops out at 500 ms; the server process itself starts in well under a second.
    assert.ok(backMs < 8_000, `clients were back after ${backMs.toFixed(0)} ms`);
  } finally {
    slow.release();
    await Promise.all(clients.map((c) => c.stop()));
    for (const p of procs) await p.kill();
  }
});

for (const mode of ["slow-registry", "stall-body"] as const) {
  const what = mode === "slow-registry" ? "before its result head" : "after its result head, mid-body";
  test(`client process SIGKILLed ${what}: Prometheus gets the failure within a second, the name is marked vanished at once`, { timeout: 30_000 }, async () => {
    const s = await startServer();
    let child: Script | undefined;
    try {
      child = runScript("client-process.ts", [s.url, "app-1", mode]);
      await child.waitLine(/^connected$/);
      assert.deepEqual(await listed(s.url), ["app-1"]);

      const scrape = openGet(s.port, "http://app-1/metrics", { "x-prometheus-scrape-timeout-seconds": "30" });
      await child.waitLine(mode === "slow-registry" ? /^collecting$/ : /^head-sent$/);
      if (mode === "stall-body") await scrape.received(1);
      const killedAt = performance.now();
      child.child.kill("SIGKILL");
      const seen = await scrape.done;
      const ms = performance.now() - killedAt;
      const gone = await listed(s.url);
      assert.ok(ms < 1_000, `Prometheus saw the failure after ${ms.toFixed(0)} ms`);
      if (mode === "slow-registry") {
        assert.equal(seen.status, 502);
        // Why, in words: a killed process's connection is closed (or reset) by its kernel.
        assert.match(seen.body.toString(), /^promproxy: client "app-1" disconnected: the (client closed its connection|connection was reset)[^\n]*\n$/);
      } else {
        // The status line was out already: the response is cut short, so Prometheus counts a failed scrape.
        assert.equal(seen.status, 200);
        assert.equal(seen.complete, false, "the response must not look complete");
        assert.equal(seen.body.toString(), "stalled_metric 1\n");
      }
      assert.deepEqual(gone, [], "no longer listed as connected by the time the failure is seen");
      assert.deepEqual(await listed(s.url, true), ["app-1"], "listed as vanished, so that up == 0 fires");
      const after = await proxyGet(s.port, "http://app-1/metrics");
      assert.equal(after.status, 503);
      assert.match(after.body.toString(), /^promproxy: client "app-1" disconnected \d+s ago/);
      assert.equal(s.server.clients().length, 0);
    } finally {
      await child?.kill();
      await s.close();
    }
  });
}

test("network black hole between client and server: both notice within the heartbeat timeout, the client reconnects once the path is back", { timeout: 30_000 }, async () => {
  const heartbeatIntervalMs = 400;
  const heartbeatTimeoutMs = 1_200;
  const s = await startServer({ heartbeatIntervalMs, heartbeatTimeoutMs });
  const relay = await startRelay(s.port);
  const disconnects: { at: number; error: ConnectError | undefined }[] = [];
  let connects = 0;
  let c: PromproxyClient | undefined;
  try {
    c = await startClient(`http://127.0.0.1:${relay.port}`, "app-1", {
      backoff: { initialMs: 100, maxMs: 300 },
      // HTTP/2 PINGs are left at their defaults (10 s + 5 s): the app-level heartbeat is what must notice.
      onConnected: () => connects++,
      onDisconnected: (error) => disconnects.push({ at: performance.now(), error }),
    });
    assert.equal((await proxyGet(s.port, "http://app-1/metrics")).status, 200);

    relay.blackhole();
    const holed = performance.now();
    // A scrape that starts in the black hole fails when the server gives up on the stream, not at its 30 s timeout.
    const scrape = openGet(s.port, "http://app-1/metrics", { "x-prometheus-scrape-timeout-seconds": "30" });
    const seen = await scrape.done;
    const scrapeMs = performance.now() - holed;
    await waitFor("the server to drop the stream", () => s.server.clients().length === 0, 10_000, 10);
    const serverMs = performance.now() - holed;
    await waitFor("the client to drop the stream", () => disconnects.length === 1, 10_000, 10);
    const clientMs = (disconnects[0]?.at ?? Infinity) - holed;

    // The server checks once per interval, the client a few times per interval.
    const bound = heartbeatTimeoutMs + heartbeatIntervalMs + 1_000;
    assert.ok(serverMs < bound, `the server noticed after ${serverMs.toFixed(0)} ms, want < ${bound}`);
    assert.ok(clientMs < bound, `the client noticed after ${clientMs.toFixed(0)} ms, want < ${bound}`);
    assert.equal(seen.status, 502, seen.body.toString());
    assert.match(seen.body.toString(), /^promproxy: client "app-1" disconnected: the stream went silent: nothing heard from the client for [\d.]+s \(no pong\)\n$/);
    assert.ok(scrapeMs < bound, `the scrape failed after ${scrapeMs.toFixed(0)} ms`);
    assert.equal(disconnects[0]?.error?.code, Code.Unavailable, disconnects[0]?.error?.message);
    assert.match(disconnects[0]?.error?.rawMessage ?? "", /nothing heard from the server/);
    assert.deepEqual(await listed(s.url), []);
    assert.deepEqual(await listed(s.url, true), ["app-1"]);
    assert.equal((await proxyGet(s.port, "http://app-1/metrics")).status, 503);

    // Still down a while later: attempts through the hole get nowhere.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(connects, 1);
    assert.equal(s.server.clients().length, 0);

    relay.restore();
    await waitFor("the client to reconnect", () => s.server.clients().length === 1, 10_000, 10);
    const r = await proxyGet(s.port, "http://app-1/metrics");
    assert.equal(r.status, 200);
    assert.match(r.body.toString(), /^test_up_total\{name="app-1"\} 1$/m);
    assert.equal(connects, 2);
  } finally {
    await c?.stop();
    await relay.close();
    await s.close();
  }
});

test("SIGTERM on `promproxy server`: in-flight scrapes finish, clients are told Unavailable and reconnect elsewhere, exit code 0", { timeout: 60_000 }, async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let proc: CliProcess | undefined;
  let replacement: PromproxyServer | undefined;
  const clients: PromproxyClient[] = [];
  const slow = slowRegistry(1_500, "slow_metric 42\n");
  const disconnects: (ConnectError | undefined)[] = [];
  const lateErrors: ConnectError[] = [];
  try {
    // No drain delay: this is about in-flight scrapes and clients (test/e2e/drain.test.ts covers the delay).
    proc = runCli(["server", "--listen", `127.0.0.1:${port}`, "--drain-delay", "0s", "--shutdown-grace", "10s", "--log-level", "info"]);
    await proc.waitForOutput(/promproxy server listening on/);
    clients.push(
      await startClient(url, "slow", {
        registry: slow,
        backoff: { initialMs: 50, maxMs: 200 },
        onDisconnected: (e) => disconnects.push(e),
      }),
    );
    clients.push(await startClient(url, "idle", { backoff: { initialMs: 50, maxMs: 200 } }));

    const scrape = openGet(port, "http://slow/metrics");
    await waitFor("the slow client to start collecting", () => slow.started === 1);
    const termAt = performance.now();
    proc.child.kill("SIGTERM");
    const p = proc;
    await waitFor("the server to start draining", () => /shutting down/.test(p.stderr()), 5_000, 10);

    // While it drains, the server takes no new clients: it says Unavailable, so they go elsewhere.
    const late = createClient({
      name: "late",
      serverUrl: url,
      logger: silentLogger,
      registry: slowRegistry(0),
      backoff: { initialMs: 50, maxMs: 200 },
      onError: (e) => lateErrors.push(e),
    });
    clients.push(late);
    void late.start().catch(() => {});

    const seen = await scrape.done;
    assert.equal(seen.status, 200, seen.body.toString());
    assert.equal(seen.complete, true);
    assert.equal(seen.body.toString(), "slow_metric 42\n");

    const exit = await proc.exited;
    const exitMs = performance.now() - termAt;
    assert.deepEqual(exit, { code: 0, signal: null }, proc.stderr());
    assert.ok(exitMs < 8_000, `exited ${exitMs.toFixed(0)} ms after SIGTERM (the scrape took 1.5 s, grace 10 s)`);
    assert.ok(disconnects.length >= 1, "the client heard the server end its stream");
    assert.equal(disconnects[0]?.code, Code.Unavailable, disconnects[0]?.message);
    assert.match(disconnects[0]?.rawMessage ?? "", /shutting down/, "told to go away, not just cut off");
    assert.ok(
      lateErrors.some((e) => e.code === Code.Unavailable && /shutting down/.test(e.rawMessage)),
      `a client arriving during the drain is refused with Unavailable, got ${lateErrors.map((e) => `${Code[e.code]}: ${e.rawMessage}`).join(", ")}`,
    );

    // Another replica on the same address: everyone connects to it on their own.
    replacement = createServer({ logger: silentLogger });
    await replacement.listen({ host: "127.0.0.1", port });
    const r2 = replacement;
    await waitFor("the clients to connect to the replacement", () => r2.clients().length === 3, 15_000);
    const r = await proxyGet(port, "http://slow/metrics");
    assert.equal(r.status, 200);
  } finally {
    slow.release();
    await Promise.all(clients.map((c) => c.stop()));
    await replacement?.close({ graceMs: 500 });
    await proc?.kill();
  }
});

test("clients that reconnect again and again leave no timer behind that throws later (connect-es#1795)", { timeout: 30_000 }, async () => {
  // With HTTP/2 PINGs every 100 ms, a PING timer re-armed on a destroyed session fires within the test and
  // throws ERR_HTTP2_INVALID_SESSION as an uncaught exception, which fails this test (and would crash an app).
  let s = await startServer();
  const port = s.port;
  const clients: PromproxyClient[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      clients.push(await startClient(s.url, `app-${i}`, { pingIntervalMs: 100, pingTimeoutMs: 1_000, backoff: { initialMs: 20, maxMs: 50 } }));
    }
    for (let round = 0; round < 4; round++) {
      await s.close();
      const server = createServer({ logger: silentLogger });
      await server.listen({ host: "127.0.0.1", port });
      s = { server, port, url: s.url, close: () => server.close({ graceMs: 500 }) };
      const current = server;
      await waitFor("every client back", () => current.clients().length === clients.length, 10_000, 10);
    }
    // Several PING intervals for any stale timer to fire.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal((await proxyGet(port, "http://app-0/metrics")).status, 200);
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
    await s.close();
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
});
