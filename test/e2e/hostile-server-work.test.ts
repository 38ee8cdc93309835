/**
 * The client trusts no server, part two: the work a server's orders can make
 * the host do. Tiny chunks with boundless credit, and orders with 5 ms
 * timeouts against an app whose collect() takes 2 s (embedded client) or an
 * exporter that takes 2 s (the `promproxy client` forwarder).
 * Thresholds are on memory and counts, never on speed.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, test } from "node:test";
import { ScrapeErrorReason } from "../../gen/promproxy/v1/scrape_pb.ts";
import { waitFor } from "../helpers.ts";
import { MiB, mb, startHost } from "./fixtures/hostile-server/harness.ts";
import { startHostileServer, welcome, type HostileStream } from "./fixtures/hostile-server/server.ts";
import { runCli } from "./prometheus.ts";

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const credit = 1n << 50n;

/** Orders `n` scrapes of /metrics, one every 5 ms, each with a 5 ms timeout; counts the ends by reason. */
async function orderFlood(s: HostileStream, n: number, ends: Map<number, number>) {
  s.read((f) => {
    if (f.frame.case === "end") {
      const reason = f.frame.value.error?.reason ?? 0;
      ends.set(reason, (ends.get(reason) ?? 0) + 1);
    }
  });
  await s.send(welcome());
  for (let id = 1n; id <= BigInt(n) && !s.closed; id++) {
    await s.send({ frame: { case: "order", value: { scrapeId: id, path: "/metrics", timeout: { seconds: 0n, nanos: 5_000_000 }, creditBytes: credit } } });
    await pause(5);
  }
}

test("a welcome with max_chunk_bytes 1 is refused with a clear error; tiny chunks and 2^50 credit never pile up", async (t) => {
  let chunks = 0;
  let served = false;
  let go = () => {};
  const measured = new Promise<void>((resolve) => (go = resolve));
  const server = await startHostileServer(async (s) => {
    s.read((f) => {
      if (f.frame.case === "chunk") chunks++;
      if (f.frame.case === "end") served = true;
    });
    await s.send(welcome({ maxChunkBytes: 1 }));
    await measured; // the host's figures before the order
    await s.send({ frame: { case: "order", value: { scrapeId: 1n, path: "/metrics", creditBytes: credit } } });
  });
  cleanups.push(() => server.close());
  const host = startHost(server.url, { registryBytes: 2 * MiB });
  cleanups.push(() => host.stop());
  await waitFor("a first stream", () => server.streams >= 1, 20_000);
  const base = await host.stats();
  go();
  await waitFor("a few attempts, or the scrape served", () => server.streams >= 3 || served, 60_000).catch(() => {});
  const now = await host.stats();
  t.diagnostic(`heap ${mb(base.heapUsed)} -> ${mb(now.heapUsed)}, rss ${mb(base.rss)} -> ${mb(now.rss)}, event loop max ${now.eldMaxMs} ms, chunks ${chunks}, streams ${server.streams}`);
  assert.equal(chunks, 0, "no chunk is sent to a server whose limit is below the floor");
  t.diagnostic(`log: ${host.logs().find((l) => /max_chunk_bytes/.test(l))}`);
  assert.ok(host.logs().some((l) => /max_chunk_bytes.*below/.test(l)), `a log line names the cause:\n${host.logs().join("\n")}`);
  assert.ok(now.heapUsed - base.heapUsed < 8 * MiB, `host heap grew by ${mb(now.heapUsed - base.heapUsed)}`);
  assert.equal(host.script.stderr(), "");
});

for (const chunkBytes of [512, 64 * 1024]) {
  test(`chunks of ${chunkBytes} B with 2^50 credit: a 2 MiB registry is written as the transport drains, a few MB at most`, async (t) => {
    let bytes = 0;
    let ended = 0;
    let orders = 0;
    let go = () => {};
    const measured = new Promise<void>((resolve) => (go = resolve));
    const server = await startHostileServer(async (s) => {
      let id = 0n;
      const order = () => {
        orders++;
        return s.send({ frame: { case: "order", value: { scrapeId: ++id, path: "/metrics", creditBytes: credit } } });
      };
      s.read((f) => {
        if (f.frame.case === "chunk") bytes += f.frame.value.data.byteLength;
        if (f.frame.case === "end" && ++ended < 5) void order();
      });
      await s.send(welcome({ maxChunkBytes: chunkBytes }));
      await measured;
      await order();
    });
    cleanups.push(() => server.close());
    const host = startHost(server.url, { registryBytes: 2 * MiB, client: { gzipLevel: 0 } });
    cleanups.push(() => host.stop());
    await waitFor("a first stream", () => server.streams >= 1, 20_000);
    await pause(500);
    const base = await host.stats();
    go();
    await waitFor("five 2 MiB scrapes", () => ended >= 5, 120_000);
    const now = await host.stats();
    t.diagnostic(`5 scrapes (${orders} orders), ${mb(bytes)} in ${Math.ceil(bytes / chunkBytes)} chunks; heap ${mb(base.heapUsed)} -> ${mb(now.heapUsed)}, event loop max ${now.eldMaxMs} ms`);
    assert.ok(bytes >= 5 * 2 * MiB * 0.9, "every body arrived");
    assert.ok(now.heapUsed - base.heapUsed < 8 * MiB, `host heap grew by ${mb(now.heapUsed - base.heapUsed)}`);
    assert.equal(host.script.stderr(), "");
  });
}

test("maxScrapesInFlight bounds the app's renders: 5 ms timeouts never let more than 8 slow collects run at once", async (t) => {
  const ends = new Map<number, number>();
  const server = await startHostileServer((s) => orderFlood(s, 300, ends));
  cleanups.push(() => server.close());
  const host = startHost(server.url, { collectMs: 2_000 });
  cleanups.push(() => host.stop());
  await waitFor("300 orders answered", () => [...ends.values()].reduce((a, b) => a + b, 0) >= 300, 60_000);
  const now = await host.stats();
  t.diagnostic(`collects at once at most ${now.collects.max} (total ${now.collects.total}); ends ${JSON.stringify(Object.fromEntries(ends))}`);
  assert.ok(now.collects.max <= 8, `${now.collects.max} collects ran at once`);
  assert.ok((ends.get(ScrapeErrorReason.BUSY) ?? 0) > 100, "orders beyond the limit are answered BUSY");
  assert.equal(host.script.stderr(), "");
});

test("the forwarder holds its place until the exporter request has ended", async (t) => {
  let open = 0;
  let maxOpen = 0;
  let total = 0;
  const exporter = http.createServer((req, res) => {
    open++;
    total++;
    maxOpen = Math.max(maxOpen, open);
    const timer = setTimeout(() => res.end("slow_metric 1\n"), 2_000);
    res.on("close", () => {
      open--;
      clearTimeout(timer);
    });
  });
  await new Promise<void>((r) => exporter.listen(0, "127.0.0.1", r));
  cleanups.push(() => new Promise((r) => exporter.close(() => r())));
  const ends = new Map<number, number>();
  const server = await startHostileServer((s) => orderFlood(s, 300, ends));
  cleanups.push(() => server.close());
  const target = `http://127.0.0.1:${(exporter.address() as AddressInfo).port}/metrics`;
  const fwd = runCli(["client", "--server", server.url, "--name", "fwd-hostile", "--target", target, "--log-level", "warn"]);
  cleanups.push(async () => {
    fwd.child.kill("SIGTERM");
    await fwd.exited;
  });
  await waitFor("300 orders answered", () => [...ends.values()].reduce((a, b) => a + b, 0) >= 300, 60_000);
  t.diagnostic(`exporter requests open at once at most ${maxOpen} (total ${total}); ends ${JSON.stringify(Object.fromEntries(ends))}`);
  assert.ok(maxOpen <= 8, `${maxOpen} exporter requests open at once`);
});
