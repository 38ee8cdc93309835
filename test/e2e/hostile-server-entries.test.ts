/**
 * The client trusts no server, part five: frames packed with tiny repeated
 * entries. An empty header is 2 bytes on the wire and an object, a string pair
 * and a record entry in the host once decoded: a 1 MiB order of 520,000 of them
 * held a host at 330-500 MB of RSS and stalled its event loop 0.4-0.9 s a
 * second (an outside review). Server frames are at most 64 KiB now
 * (`maxServerFrameBytes`), reading costs a frame per 64 bytes, and an order with
 * more than 64 headers ends the stream, counted before the frame is decoded
 * (so also under a raised read limit; src/client/frame-entries.ts).
 *
 * Thresholds are counts and bounds far above what the host shows (a few ms of
 * event-loop delay, a few MB) and far below what it showed before.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { waitFor } from "../helpers.ts";
import { MiB, mb, startHost, type HostStats } from "./fixtures/hostile-server/harness.ts";
import { envelope, startHostileServer, varint, welcome } from "./fixtures/hostile-server/server.ts";

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A ServerFrame with an order for /metrics carrying `headers` headers, each empty (2 bytes) or `a: b` (8 bytes). */
function orderWithHeaders(id: number, headers: number, empty = true): Buffer {
  const one = empty ? [0x2a, 0x00] : [0x2a, 0x06, 0x0a, 0x01, 0x61, 0x12, 0x01, 0x62];
  const entries = Buffer.alloc(headers * one.length);
  for (let i = 0; i < headers; i++) entries.set(one, i * one.length);
  const head = Buffer.from([0x08, ...varint(id), 0x1a, 0x08, ...Buffer.from("/metrics"), 0x38, 0x80, 0x80, 0x04]); // credit 64 KiB
  const inner = Buffer.concat([head, entries]);
  return envelope(Buffer.concat([Buffer.from([0x12, ...varint(inner.byteLength)]), inner]));
}

/** A ServerFrame with a replica set of `ids` empty ids. */
function replicaSetWithIds(ids: number): Buffer {
  const inner = Buffer.alloc(ids * 2);
  for (let i = 0; i < ids; i++) inner[i * 2] = 0x0a;
  return envelope(Buffer.concat([Buffer.from([0x32, ...varint(inner.byteLength)]), inner]));
}

/** A server sending such orders on every stream for as long as it stays open; the host's worst figures over `ms`. */
async function flood(transport: "fast" | "connect", headers: number, ms: number, empty = true, o: { client?: object; frame?: (id: number) => Buffer } = {}) {
  let answered = 0;
  let go = () => {};
  const begun = new Promise<void>((r) => (go = r));
  const server = await startHostileServer(async (s) => {
    s.read((f) => void ((f.frame.case === "end" || f.frame.case === "result") && answered++));
    await s.send(welcome());
    await begun; // once the host's figures before are taken
    for (let id = 1; !s.closed && id < 1_000; id++) await s.sendRaw(o.frame ? o.frame(id) : orderWithHeaders(id, headers, empty));
  });
  cleanups.push(() => server.close());
  const host = startHost(server.url, { registryBytes: 2 * 1024, client: { transport, ...o.client } });
  cleanups.push(() => host.stop());
  await waitFor("a first stream", () => server.streams >= 1, 20_000);
  const base = await host.stats();
  go();
  const worst = { rss: base.rss, heapUsed: base.heapUsed, eldMaxMs: 0 };
  for (const end = performance.now() + ms; performance.now() < end; ) {
    await pause(500);
    const s: HostStats = await host.stats();
    worst.rss = Math.max(worst.rss, s.rss);
    worst.heapUsed = Math.max(worst.heapUsed, s.heapUsed);
    worst.eldMaxMs = Math.max(worst.eldMaxMs, s.eldMaxMs);
  }
  return { host, base, worst, streams: server.streams, answered: () => answered };
}

for (const transport of ["fast", "connect"] as const) {
  test(`${transport}: 1 MiB orders of 520,000 empty headers are refused at their length prefix, unread`, async (t) => {
    const f = await flood(transport, 520_000, 3_000);
    t.diagnostic(`rss ${mb(f.base.rss)} -> at most ${mb(f.worst.rss)}, heap at most ${mb(f.worst.heapUsed)}, event loop max ${f.worst.eldMaxMs} ms, ${f.streams} streams`);
    assert.ok(f.host.logs().some((l) => /larger than the client's read limit of 65536 bytes \(maxServerFrameBytes\)/.test(l)), f.host.logs().join("\n"));
    // Before: 330-500 MB and stalls of 0.4-0.9 s.
    assert.ok(f.worst.rss - f.base.rss < 48 * MiB, `host RSS grew by ${mb(f.worst.rss - f.base.rss)}`);
    assert.ok(f.worst.eldMaxMs < 300, `the host's event loop stalled ${f.worst.eldMaxMs} ms`);
    assert.equal(f.answered(), 0);
    assert.equal(f.host.script.stderr(), "");
  });

  test(`${transport}: 64 KiB orders of 32,000 empty headers end the stream as a protocol error, at a bounded cost`, async (t) => {
    const f = await flood(transport, 32_000, 3_000);
    const line = f.host.logs().find((l) => /protocol error: the server sent an order with more than 64 headers/.test(l));
    t.diagnostic(`${line ?? "no line"}; rss ${mb(f.base.rss)} -> at most ${mb(f.worst.rss)}, event loop max ${f.worst.eldMaxMs} ms, ${f.streams} streams`);
    assert.ok(line, f.host.logs().join("\n"));
    assert.ok(f.worst.rss - f.base.rss < 48 * MiB, `host RSS grew by ${mb(f.worst.rss - f.base.rss)}`);
    assert.ok(f.worst.eldMaxMs < 300, `the host's event loop stalled ${f.worst.eldMaxMs} ms`);
    assert.equal(f.answered(), 0, "no order of them is served");
    assert.equal(f.host.script.stderr(), "");
  });

  // Round 16a: with the read limit raised (up to 64 MiB is allowed), such a frame was decoded in full before the
  // counts were checked: 2,000,000 empty headers in a 4 MiB order took the host from 121 to 245 MB (and stalled its
  // event loop up to 0.9 s) per reconnect; a replica set of 2,000,000 ids likewise. Now the entries are counted
  // before decoding, and the walk stops at the first one over its cap.
  const raised = { maxServerFrameBytes: 4 * MiB, maxServerFramesPerSecond: 1_000_000 };
  for (const [what, frame, refusal] of [
    ["an order of 2,000,000 empty headers", (id: number) => orderWithHeaders(id, 2_000_000), /protocol error: the server sent an order with more than 64 headers/],
    ["a replica set of 2,000,000 empty ids", () => replicaSetWithIds(2_000_000), /announces a replica set of over 64 replicas, more than this client holds \(maxReplicas 64\)/],
  ] as const) {
    test(`${transport}: under a read limit raised to 4 MiB, ${what} is refused before it is decoded`, async (t) => {
      const f = await flood(transport, 0, 3_000, true, { client: raised, frame });
      const line = f.host.logs().find((l) => refusal.test(l));
      t.diagnostic(`${line ?? "no line"}; rss ${mb(f.base.rss)} -> at most ${mb(f.worst.rss)}, heap at most ${mb(f.worst.heapUsed)}, event loop max ${f.worst.eldMaxMs} ms, ${f.streams} streams`);
      assert.ok(line, f.host.logs().join("\n"));
      // Before: +120 MB a frame. Now the frame's own 4 MiB (gathered once) and the transport's buffers.
      assert.ok(f.worst.rss - f.base.rss < 48 * MiB, `host RSS grew by ${mb(f.worst.rss - f.base.rss)}`);
      assert.equal(f.answered(), 0);
      assert.equal(f.host.script.stderr(), "");
    });
  }

  test(`${transport}: orders of 64 headers (the most) are served`, async () => {
    const f = await flood(transport, 64, 1_000, false);
    assert.ok(f.answered() > 0, "orders answered");
    assert.ok(!f.host.logs().some((l) => /protocol error/.test(l)), f.host.logs().join("\n"));
    assert.equal(f.host.script.stderr(), "");
  });
}
