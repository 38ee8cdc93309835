/**
 * The client trusts no server: a scripted hostile server (raw HTTP/2, gRPC
 * framing by hand) against the real embedded client inside a real host
 * process, measuring the host's memory, event-loop delay, timer callbacks and
 * stderr. Here: what the transport reads (compression, frame sizes), what it
 * queues to send (pongs), and the durations it puts into timers.
 * Thresholds are on memory and counts, never on speed.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { waitFor } from "../helpers.ts";
import { MiB, mb, startHost, type Host } from "./fixtures/hostile-server/harness.ts";
import { bigPing, gzipBomb, startHostileServer, welcome, type HostileServer } from "./fixtures/hostile-server/server.ts";

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function setUp(server: HostileServer, o: Parameters<typeof startHost>[1] = {}): Promise<Host> {
  cleanups.push(() => server.close());
  const host = startHost(server.url, o);
  cleanups.push(() => host.stop());
  return host;
}

/** The host's stderr holds nothing at all: no warning, no error, no log line. */
function assertQuiet(host: Host) {
  assert.equal(host.script.stderr(), "", "nothing reaches the host's stderr");
}

for (const [label, wire, inflated] of [
  ["0.25 MiB inflating to 256 MiB", 0.25, 256 * MiB],
  ["4 MiB inflating to 4 GiB", 4, 4096 * MiB],
] as const) {
  test(`a compressed frame the client never negotiated (${label}) ends the stream, uninflated`, async (t) => {
    const bomb = gzipBomb(inflated);
    t.diagnostic(`bomb: ${mb(bomb.byteLength)} on the wire (${wire} MiB expected)`);
    const server = await startHostileServer(async (s) => {
      await s.send(welcome());
      await s.sendRaw(bomb);
    }, { grpcEncoding: "gzip" });
    const host = await setUp(server);
    await waitFor("a first stream", () => server.streams >= 1, 20_000);
    const base = await host.stats();
    await waitFor("a few attempts", () => server.streams >= 3, 30_000).catch(() => {}); // asserted below, after the figures
    const now = await host.stats();
    t.diagnostic(`rss ${mb(base.rss)} -> ${mb(now.rss)}, heap ${mb(base.heapUsed)} -> ${mb(now.heapUsed)}, event loop max ${now.eldMaxMs} ms, streams ${server.streams}`);
    assert.ok(server.streams >= 3, "the client reconnects after each refused stream");
    assert.ok(now.rss - base.rss < 16 * MiB, `host RSS grew by ${mb(now.rss - base.rss)}`);
    const lines = host.logs().filter((l) => /compress|encoding/i.test(l));
    t.diagnostic(`log: ${lines[0]}`);
    assert.ok(lines.length >= 1, `one clear log line per attempt:\n${host.logs().join("\n")}`);
    assert.match(lines[0] ?? "", /gzip/);
    assertQuiet(host);
  });
}

test("a frame with the compressed flag, without any grpc-encoding, ends the stream unanswered", async (t) => {
  let pongs = 0;
  const server = await startHostileServer(async (s) => {
    s.read((f) => void (f.frame.case === "pong" && pongs++));
    await s.send(welcome());
    await s.send({ frame: { case: "ping", value: { nonce: 7n } } }, { compressed: true });
  });
  const host = await setUp(server);
  await waitFor("a reconnect", () => server.streams >= 2, 30_000);
  const line = host.logs().find((l) => /compressed/.test(l));
  t.diagnostic(`log: ${line}`);
  assert.ok(line, `a log line says why:\n${host.logs().join("\n")}`);
  assert.equal(pongs, 0);
  assertQuiet(host);
});

test("a 64 MiB frame ends the stream at its length prefix, unread, and the client reconnects", async (t) => {
  const ping = bigPing(64 * MiB);
  let pongs = 0;
  const server = await startHostileServer(async (s) => {
    s.read((f) => void (f.frame.case === "pong" && pongs++));
    await s.send(welcome());
    await s.sendRaw(ping);
  });
  const host = await setUp(server);
  await waitFor("a first stream", () => server.streams >= 1, 20_000);
  const base = await host.stats();
  await waitFor("a reconnect", () => server.streams >= 3, 30_000).catch(() => {}); // asserted below, after the figures
  const now = await host.stats();
  t.diagnostic(`rss ${mb(base.rss)} -> ${mb(now.rss)}, heap ${mb(base.heapUsed)} -> ${mb(now.heapUsed)}, event loop max ${now.eldMaxMs} ms, pongs ${pongs}, streams ${server.streams}`);
  assert.ok(server.streams >= 3, "the client reconnects after each refused stream");
  assert.equal(pongs, 0, "the oversized ping is never answered");
  assert.ok(now.rss - base.rss < 16 * MiB, `host RSS grew by ${mb(now.rss - base.rss)}`);
  t.diagnostic(`log: ${host.logs().find((l) => /larger than/.test(l))}`);
  assert.ok(host.logs().some((l) => /larger than the client's read limit/.test(l)), `a log line names the size:\n${host.logs().join("\n")}`);
  assertQuiet(host);
});

for (const reads of [false, true]) {
  test(`a server flooding pings ${reads ? "and reading" : "and never reading"} costs the host a few MB`, async (t) => {
    let pongs = 0;
    const server = await startHostileServer(async (s) => {
      if (reads) s.read((f) => void (f.frame.case === "pong" && pongs++));
      await s.send(welcome({ heartbeat: { seconds: 1n, nanos: 0 } }));
      const deadline = Date.now() + 10_000;
      for (let n = 1n; !s.closed && Date.now() < deadline; n++) {
        await s.send({ frame: { case: "ping", value: { nonce: n } } });
      }
      s.stream.destroy();
    });
    const host = await setUp(server);
    await waitFor("a first stream", () => server.streams >= 1, 20_000);
    await pause(200);
    const base = await host.stats();
    await pause(10_000);
    const now = await host.stats();
    t.diagnostic(`heap ${mb(base.heapUsed)} -> ${mb(now.heapUsed)}, rss ${mb(base.rss)} -> ${mb(now.rss)}, pongs read ${pongs}, streams ${server.streams}`);
    assert.ok(now.heapUsed - base.heapUsed < 8 * MiB, `host heap grew by ${mb(now.heapUsed - base.heapUsed)}`);
    if (reads) assert.ok(pongs > 0, "pongs were answered");
    assertQuiet(host);
  });
}

test("a server that pings but takes none of our bytes (a zero window) has its stream ended after the silence window", async (t) => {
  const server = await startHostileServer(async (s) => {
    await s.send(welcome({ heartbeat: { seconds: 1n, nanos: 0 } }));
    for (let n = 1n; !s.closed && n < 200n; n++) {
      await s.send({ frame: { case: "ping", value: { nonce: n } } });
      await pause(200);
    }
  }, { windowSize: 0 });
  const host = await setUp(server);
  await waitFor("a redial", () => server.streams >= 2, 30_000);
  const line = host.logs().find((l) => /has read nothing we sent/.test(l));
  t.diagnostic(`log: ${line}`);
  assert.match(line ?? "", /the server has read nothing we sent for 3s/);
  assertQuiet(host);
});

test("a server that orders and never reads: the client stops reading while its answers wait, ends the stream after the silence window, and redials", async (t) => {
  const sentPerStream: number[] = [];
  const server = await startHostileServer(async (s) => {
    const i = sentPerStream.push(0) - 1;
    await s.send(welcome({ heartbeat: { seconds: 0n, nanos: 100_000_000 } })); // silence window: the 1 s floor
    for (let id = 1n; id <= 50_000n && !s.closed; id++) {
      await s.send({ frame: { case: "order", value: { scrapeId: id, path: "/not-served", creditBytes: 1024n } } });
      sentPerStream[i]!++;
    }
  }, { windowSize: 0 }); // takes none of the client's bytes
  const host = await setUp(server);
  await waitFor("a first stream", () => server.streams >= 1, 20_000);
  const base = await host.stats();
  await waitFor("a redial", () => server.streams >= 2, 30_000);
  const now = await host.stats();
  const line = host.logs().find((l) => /has read nothing we sent/.test(l));
  const sent = sentPerStream[0] ?? 0;
  t.diagnostic(`heap ${mb(base.heapUsed)} -> ${mb(now.heapUsed)}; orders the server got out on the first stream ${sent}; log: ${line}`);
  const waiting = Number(/has read nothing we sent for 1s \((\d+) frames waiting\)/.exec(line ?? "")?.[1] ?? NaN);
  // Reading stops once a quarter of maxQueuedFrames (1024) waits; one chunk of orders read before that adds its answers.
  assert.ok(waiting >= 256 && waiting <= 1024, `answers waiting when the stream ended: ${waiting} (log: ${line})`);
  // What the client read (at most ~1 000 a second and a chunk), its 64 KiB window and Node's buffers: a few thousand.
  assert.ok(sent < 15_000, `the server got ${sent} orders out on one stream: the client kept reading`);
  assert.ok(now.heapUsed - base.heapUsed < 8 * MiB, `host heap grew by ${mb(now.heapUsed - base.heapUsed)}`);
  assertQuiet(host);
});

test("absurd durations (heartbeat and order timeouts of 10^9 s) are clamped: no overflow warning, no 1 ms timer", async (t) => {
  const huge = { seconds: 1_000_000_000n, nanos: 0 };
  let ends = 0;
  const server = await startHostileServer(async (s) => {
    let next = 1n;
    const order = () => s.send({ frame: { case: "order", value: { scrapeId: next++, path: "/metrics", timeout: huge, creditBytes: 1n << 20n } } });
    s.read((f) => {
      if (f.frame.case !== "end") return;
      ends++;
      if (next <= 400n) void order();
    });
    await s.send(welcome({ heartbeat: huge }));
    await order();
  });
  const host = await setUp(server);
  await waitFor("400 scrapes served", () => ends >= 400, 60_000);
  await host.stats(); // resets the timer count
  await pause(2_000);
  const now = await host.stats();
  t.diagnostic(`timer callbacks in 2 s of an idle stream: ${now.timerCalls}; stderr ${host.script.stderr().length} bytes`);
  assert.ok(now.timerCalls < 100, `${now.timerCalls} timer callbacks in 2 s: a runaway interval`);
  assertQuiet(host);
});

test("a welcome whose replica id is not a short header-safe id (60 KB here) is refused: never held, logged in one short line", async (t) => {
  let streams = 0;
  const server = await startHostileServer(async (s) => {
    streams++;
    const w = welcome();
    if (w.frame?.case === "welcome") w.frame.value = { ...w.frame.value, replicaId: "r".repeat(60_000), replicaCount: 64 };
    await s.send(w);
  });
  const host = await setUp(server);
  await waitFor("a few attempts", () => streams >= 3, 30_000);
  const stats = await host.stats();
  const longest = Math.max(0, ...host.logs().map((l) => l.length));
  t.diagnostic(`${streams} attempts, connected ${stats.connected}, longest log line ${longest} characters`);
  assert.equal(stats.connected, 0, "a stream with such a welcome never counts as held");
  assert.ok(longest < 2_000, `a log line of ${longest} characters`);
  assert.ok(host.logs().some((l) => /replica_id of 60000 characters/.test(l)), host.logs().join("\n").slice(0, 2000));
  assertQuiet(host);
});

test("a frame dripped a byte at a time costs the host about its own size, not a buffer per byte", async (t) => {
  const frameBytes = 40_000;
  let dripped = 0;
  const server = await startHostileServer(async (s) => {
    await s.send(welcome());
    const head = Buffer.alloc(5);
    head.writeUInt32BE(frameBytes, 1);
    await s.sendRaw(head);
    // One byte a turn: each its own DATA frame and its own read on the client.
    for (let i = 0; i < frameBytes - 1 && !s.closed; i++) {
      if (!s.stream.write(Buffer.alloc(1))) await new Promise((r) => s.stream.once("drain", r));
      dripped++;
      await new Promise((r) => setImmediate(r));
    }
  });
  // Memory is the question here: the frame budget, which reads a drip at 1000 pieces a second, is lifted.
  const host = await setUp(server, { client: { maxServerFramesPerSecond: 1_000_000 } });
  await waitFor("connected", async () => (await host.stats()).connected >= 1, 30_000);
  const before = await host.stats();
  await waitFor("most of the frame dripped", () => dripped >= frameBytes - 2, 150_000);
  await pause(200);
  const after = await host.stats();
  const grown = after.rss - before.rss;
  t.diagnostic(`${dripped} bytes dripped one per DATA frame: host RSS +${mb(grown)}, heap ${mb(after.heapUsed - before.heapUsed)}, external ${mb(after.external - before.external)}`);
  // A view kept per read cost ~135 bytes of heap per byte (100 KB dripped: +13.4 MB); one buffer costs the frame's size.
  assert.ok(after.external - before.external < 2 * MiB && after.heapUsed - before.heapUsed < 2 * MiB, "about the frame's own size");
  assertQuiet(host);
});
