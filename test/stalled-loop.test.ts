/**
 * A process whose event loop was blocked (a host's synchronous work, a long GC) must not blame its peer: the
 * timer that judges silence runs before the loop reads the pings and pongs waiting in its sockets. Server and
 * client run in this process, with heartbeats of 200 ms (silence: 600 ms on the server, 1 s on the client), and
 * the loop is blocked for twice the longer of them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import * as http2 from "node:http2";
import { listenOnePort } from "../src/server/listen/listen.ts";
import { silentLogger } from "../src/shared/logger.ts";
import { lateTicks } from "../src/shared/late-tick.ts";
import type { Logger } from "../src/shared/logger.ts";
import { startClient, startServer } from "./helpers.ts";

function recording() {
  const lines: string[] = [];
  const at = (level: string) => (m: string, f?: Record<string, unknown>) => void lines.push(`${level} ${m} ${JSON.stringify(f ?? {})}`);
  const logger: Logger = { debug: () => {}, info: () => {}, warn: at("warn"), error: at("error") };
  return { lines, logger };
}

const block = (ms: number) => {
  const end = Date.now() + ms;
  while (Date.now() < end); // the host's synchronous work
};

test("a blocked event loop ends no stream: the late tick waits for the sockets to be read", { timeout: 30_000 }, async () => {
  const srv = recording();
  const cli = recording();
  const s = await startServer({ heartbeatIntervalMs: 200, logger: srv.logger });
  const c = await startClient(s.url, "app", { logger: cli.logger });
  try {
    const session = () => s.server.clients().find((x) => x.name === "app")?.sessionId;
    const first = session();
    assert.ok(first);
    await new Promise((r) => setTimeout(r, 600)); // a few pings answered first
    for (let i = 0; i < 2; i++) {
      block(2_000);
      await new Promise((r) => setTimeout(r, 1_000)); // the ticks after it, then on time
    }
    assert.equal(session(), first, `the same stream all along\nserver: ${srv.lines.join("\n")}\nclient: ${cli.lines.join("\n")}`);
    assert.deepEqual(srv.lines, []);
    assert.deepEqual(cli.lines, []);
  } finally {
    await c.stop();
    await s.close();
  }
});

test("a blocked event loop drops no HTTP/2 peer for a PING it answered while the loop was blocked", { timeout: 30_000 }, async () => {
  const bound = await listenOnePort(
    { host: "127.0.0.1", port: 0 },
    { h1Handler: (_req, res) => res.end(), h2Handler: (_req, res) => res.end(), logger: silentLogger, pingIntervalMs: 150 },
  );
  const peer = http2.connect(`http://127.0.0.1:${bound.port}`);
  peer.on("error", () => {});
  try {
    await new Promise((r) => setTimeout(r, 400)); // PINGs answered on time first
    // The loop blocks right as a PING arrives: its answer goes out, the server's next tick comes before it is read.
    await new Promise<void>((r) => peer.once("ping", () => r(block(1_000))));
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(peer.closed || peer.destroyed, false, "the peer's connection is kept");
  } finally {
    peer.destroy();
    await bound.close(100);
  }
});

/**
 * Blocks the loop once, for `ms`, right after the next HTTP/2 PING a client session sends has gone out (the
 * PING is written in the check phase; the block runs just after it): the host's synchronous work landing
 * while its PING waits for its answer. Server sessions are left alone. Returns a promise of the block's end.
 */
function blockAfterNextClientPing(probe: http2.ClientHttp2Session, ms: number): Promise<void> {
  const proto = Object.getPrototypeOf(probe) as { ping: http2.Http2Session["ping"] };
  const own = Object.getPrototypeOf(proto) as { ping: http2.Http2Session["ping"] };
  return new Promise((resolve) => {
    proto.ping = function (this: http2.Http2Session, ...args: unknown[]) {
      delete (proto as Partial<typeof proto>).ping; // once
      const sent = (own.ping as (...a: unknown[]) => boolean).apply(this, args);
      setImmediate(() => resolve(block(ms)));
      return sent;
    };
  });
}

// The client's three transports, each on the session createH2Connection keeps (src/client/h2-ping.ts).
const transports = [{ name: "gRPC (fast path)", options: {} }, { name: "gRPC (Connect)", options: { transport: "connect" as const } }, { name: "Connect protocol", options: { protocol: "connect" as const } }];

for (const { name, options } of transports) test(`${name}: a blocked event loop drops no client connection for an HTTP/2 PING answered while the loop was blocked`, { timeout: 30_000 }, async () => {
  const srv = recording();
  const cli = recording();
  const s = await startServer({ logger: srv.logger });
  const probe = http2.connect(s.url); // its prototype is every client session's
  probe.on("error", () => {});
  probe.destroy();
  let connects = 0;
  const c = await startClient(s.url, "app", { ...options, logger: cli.logger, pingIntervalMs: 200, pingTimeoutMs: 100, onConnected: () => connects++ });
  try {
    const session = () => s.server.clients().find((x) => x.name === "app")?.sessionId;
    const first = session();
    assert.ok(first);
    await new Promise((r) => setTimeout(r, 600)); // a few PINGs answered first
    for (let i = 0; i < 2; i++) {
      await blockAfterNextClientPing(probe, 2_000);
      await new Promise((r) => setTimeout(r, 1_000)); // the ticks after it, then PINGs on time
    }
    assert.equal(session(), first, `the same stream all along\nserver: ${srv.lines.join("\n")}\nclient: ${cli.lines.join("\n")}`);
    assert.equal(connects, 1, "connected once");
    assert.deepEqual(cli.lines, []);
    assert.deepEqual(srv.lines, []);
  } finally {
    await c.stop();
    await s.close();
  }
});

test("a client that really went silent is still ended, one tick late at most, however late the ticks", () => {
  let now = 0;
  const late = lateTicks(100, () => now);
  const ticks = (gaps: number[]) => gaps.map((g) => ((now += g), late()));
  assert.deepEqual(ticks([100, 150, 200, 100]), [false, false, false, false], "on time, or late by less than a period");
  assert.deepEqual(ticks([201, 100]), [true, false], "late by more than a period: that tick passes");
  assert.deepEqual(ticks([500, 500, 500, 0]), [true, false, true, false], "late on every tick: every second one judges");
});
