/**
 * The client trusts no server, bytes that never wake JavaScript: WINDOW_UPDATE (on stream 0 or on the Scrape
 * stream) and DATA that carries only padding, which nghttp2 takes in C++ below the client's control and frame
 * budgets. A server sending them as fast as the client took them held the host at 26-31 % of a core (WINDOW_UPDATE,
 * ~40-50 MB/s) or 25 % (padding, ~225 MB/s), for as long as it liked, with no log line (outside review, round
 * 16a). Past maxServerOverheadBytesPerSecond (default 1 MiB a second), judged on each tick of the PING timer, the
 * connection is closed, the stream ends with a reason that says so, and the client dials again.
 *
 * (PRIORITY and frames of unknown types nghttp2 itself ends as a protocol error after some ten thousand on a
 * connection: the fixture has them, the host's CPU is measured in /tmp/wuflood, no test here.)
 *
 * The bounds are on time (wide: the cut comes at the first PING tick, here every second) and on the reason; the
 * host's CPU and the bytes the server got out before the cut are diagnostics.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import * as https from "node:https";
import { test } from "node:test";
import { Gauge, Registry } from "prom-client";
import { createServer, silentLogger } from "../../src/server/index.ts";
import type { ClientOptions } from "../../src/client/index.ts";
import { startClient, waitFor } from "../helpers.ts";
import { cleanupsAfterAll, clientTls, mb, pause, serverTls, startHost } from "./fixtures/hostile-server/harness.ts";
import { startControlServer, type WasteKind } from "./fixtures/hostile-server/control-server.ts";

const cleanups = cleanupsAfterAll();

const cutLine = (limit: number) =>
  new RegExp(
    `^log warn disconnected .*"reason":"the server sent \\d+ bytes in [\\d.]+ s that carry no data \\(frame headers, WINDOW_UPDATE, PRIORITY, padding, unknown frames\\), more than maxServerOverheadBytesPerSecond \\(${limit} a second\\) allows"`,
  );

// Batches large enough that the flood's marker PINGs (one a batch) stay under the control budget's 100 a second.
const floods: { kind: WasteKind; transport: "fast" | "connect"; tls?: boolean; batch: number }[] = [
  { kind: "window", transport: "fast", batch: 100_000 },
  { kind: "window", transport: "connect", batch: 100_000 },
  { kind: "stream-window", transport: "fast", batch: 100_000 },
  { kind: "padded", transport: "fast", batch: 20_000 },
  { kind: "window", transport: "fast", tls: true, batch: 100_000 },
];

for (const f of floods) {
  test(`${f.transport}${f.tls ? ", TLS" : ""}: ${f.kind} frames as fast as the client takes them (nothing wakes JavaScript): the connection is cut past 1 MiB a second`, async (t) => {
    const server = await startControlServer({ kind: f.kind, mode: "flood", batch: f.batch, ...(f.tls ? { tls: serverTls } : {}) });
    cleanups.push(() => server.close());
    const host = startHost(server.url, { client: { transport: f.transport, pingIntervalMs: 1_000, ...(f.tls ? { tls: clientTls } : {}) } });
    cleanups.push(() => host.stop());
    const before = await host.stats();
    const line = (await waitFor("the cut, said", () => host.logs().find((l) => cutLine(1 << 20).test(l)), 20_000)) ?? "";
    await waitFor("the first connection closed", () => server.closed[0], 10_000);
    const cpu = await host.stats();
    const lived = server.closedAt[0]! - server.openedAt[0]!;
    const hostPercent = (100 * (cpu.cpuMs - before.cpuMs)) / lived;
    t.diagnostic(`${line.slice(0, 300)}; the server wrote ${mb(server.bytes[0]!)} in ${(lived / 1000).toFixed(1)} s on the first connection; the host's CPU meanwhile ~${hostPercent.toFixed(0)} % of a core`);
    // The first PING tick comes a second in, a tick late or two under load: never 10 s.
    assert.ok(lived < 10_000, `the flood lasted ${lived.toFixed(0)} ms before the cut`);
    assert.ok(server.bytes[0]! > 1 << 20, `${server.bytes[0]} bytes: the cut came before the limit`);
    await waitFor("a second connection (the client dials again)", () => server.sent.length >= 2, 20_000);
    assert.equal(host.script.stderr(), "");
  });
}

test("a server at the limit (64 KiB a second: ~48 KiB of WINDOW_UPDATE) keeps its stream; one at twice the limit is cut", async (t) => {
  // 13-byte frames every 100 ms: 380 of them ~48 KiB a second, 1,000 ~127 KiB.
  const honest = await startControlServer({ kind: "window", mode: "paced", perTick: 380 });
  const over = await startControlServer({ kind: "stream-window", mode: "paced", perTick: 1_000 });
  for (const s of [honest, over]) cleanups.push(() => s.close());
  const client = { maxServerOverheadBytesPerSecond: 1 << 16, pingIntervalMs: 1_000 };
  const [honestHost, overHost] = [honest, over].map((s) => startHost(s.url, { client }));
  for (const h of [honestHost!, overHost!]) cleanups.push(() => h.stop());
  const line = (await waitFor("the cut at twice the limit", () => overHost!.logs().find((l) => cutLine(1 << 16).test(l)), 20_000)) ?? "";
  t.diagnostic(line.slice(0, 300));
  await waitFor("the honest server sent 6 s of frames", () => (honest.sent[0] ?? 0) >= 60 * 380, 20_000);
  await pause(500);
  t.diagnostic(`at the limit: ${mb(honest.bytes[0]!)} on ${honest.sent.length} connection(s)`);
  assert.equal(honest.sent.length, 1, "at the limit: the client dialled again");
  assert.equal(honest.closed[0], false, "at the limit: the connection was closed");
  assert.deepEqual(honestHost!.logs().filter((l) => /disconnected/.test(l)), []);
  for (const h of [honestHost!, overHost!]) assert.equal(h.script.stderr(), "");
});

/** A registry whose exposition is about `bytes` long (series with long labels: quick to render). */
function largeRegistry(bytes: number): Registry {
  const registry = new Registry();
  const g = new Gauge({ name: "padding_bytes", help: "Bytes to scrape.", labelNames: ["i"], registers: [registry] });
  for (let i = 0; i < bytes / 1_040; i++) g.set({ i: String(i).padStart(1_000, "0") }, i);
  return registry;
}

/** A scrape as Prometheus sends it through the server (over TLS with `ca`): status and body length. */
function scrape(port: number, uri: string, ca?: string): Promise<{ status: number; length: number }> {
  return new Promise((resolve, reject) => {
    const o = { host: "127.0.0.1", port, path: uri, agent: false as const };
    const onResponse = (res: http.IncomingMessage) => {
      let length = 0;
      res.on("data", (c: Buffer) => (length += c.length));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, length }));
      res.on("error", reject);
    };
    const req = ca ? https.request({ ...o, ca }, onResponse) : http.request(o, onResponse);
    req.on("error", reject);
    req.end();
  });
}

const honestRuns: { transport: "fast" | "connect"; tls?: boolean }[] = [{ transport: "fast" }, { transport: "connect" }, { transport: "fast", tls: true }];
for (const r of honestRuns) {
  test(`${r.transport}${r.tls ? ", TLS" : ""}: an honest server at a high scrape rate with large bodies is never cut, at the default nor at the lowest limit (64 KiB a second)`, async (t) => {
    const server = createServer({ logger: silentLogger });
    const { port } = await server.listen({ host: "127.0.0.1", port: 0, ...(r.tls ? { tls: serverTls } : {}) });
    cleanups.push(() => server.close({ graceMs: 500 }));
    const url = `${r.tls ? "https" : "http"}://127.0.0.1:${port}`;
    const registry = largeRegistry(2 << 20);
    const ends: string[] = [];
    const base: Partial<ClientOptions> = { transport: r.transport, pingIntervalMs: 1_000, registry, maxRenderPercent: 100, gzipLevel: 0, ...(r.tls ? { tls: clientTls } : {}) };
    const onDisconnected = (e: Error | undefined) => void ends.push(e?.message ?? "ended");
    const clients = [
      await startClient(url, "app-default", { ...base, onDisconnected }),
      await startClient(url, "app-lowest", { ...base, maxServerOverheadBytesPerSecond: 1 << 16, onDisconnected }),
    ];
    cleanups.push(async () => void (await Promise.all(clients.map((c) => c.stop()))));
    let scrapes = 0;
    let bytes = 0;
    const started = performance.now();
    await Promise.all(
      ["app-default", "app-lowest", "app-default", "app-lowest"].map(async (name) => {
        for (let i = 0; i < 16; i++) {
          const res = await scrape(port, `http://${name}/metrics`, r.tls ? clientTls.ca : undefined);
          assert.equal(res.status, 200, `scrape ${scrapes + 1} of ${name}`);
          scrapes++;
          bytes += res.length;
        }
      }),
    );
    t.diagnostic(`${scrapes} scrapes, ${mb(bytes)} in ${((performance.now() - started) / 1000).toFixed(1)} s, disconnects: ${ends.length}`);
    assert.equal(scrapes, 64);
    assert.ok(bytes > 120 << 20, `only ${mb(bytes)} scraped`);
    assert.deepEqual(ends, []);
  });
}
