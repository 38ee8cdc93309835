/**
 * The client trusts no server, part three: what a server that makes the
 * client drop its stream again and again leaves behind in the host. A server
 * that welcomes with a short heartbeat, floods orders with credit and never
 * reads the client's frames has its stream ended once our answers have
 * waited out the silence window (1 s), and the client dials again. Each dropped connection
 * must be freed then, not held by a timer (connect-node's session manager
 * re-arms its idle timer, 15 minutes by default, when the last stream closes
 * after the manager was aborted). And a server whose header block is too
 * large to be sent. Thresholds are on memory, never on speed.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, test } from "node:test";
import { waitFor } from "../helpers.ts";
import { MiB, mb, startHost } from "./fixtures/hostile-server/harness.ts";
import { startHostileServer, welcome } from "./fixtures/hostile-server/server.ts";

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("a server that floods orders and never reads: every dropped connection is freed, during the storm and after stop()", async (t) => {
  const server = await startHostileServer(async (s) => {
    await s.send(welcome({ heartbeat: { seconds: 0n, nanos: 100_000_000 } })); // silence window: the 1 s floor
    for (let id = 1n; id <= 20_000n && !s.closed; id++) {
      await s.send({ frame: { case: "order", value: { scrapeId: id, path: "/metrics", timeout: { seconds: 60n, nanos: 0 }, creditBytes: 1n << 40n } } });
    }
  }, { windowSize: 0 }); // takes none of the client's bytes
  cleanups.push(() => server.close());
  const host = startHost(server.url, { registryBytes: 4096 });
  cleanups.push(() => host.stop());
  await waitFor("three streams dropped", () => server.streams >= 4, 60_000);
  const base = await host.stats();
  const from = server.streams;
  await waitFor("twenty more", () => server.streams >= from + 20, 120_000);
  const during = await host.stats();
  await host.stopClient();
  await pause(3_000);
  const stopped = await host.stats();
  const held = (s: { heapUsed: number; external: number }) => s.heapUsed + s.external;
  t.diagnostic(
    `streams ${server.streams}; heap+external ${mb(held(base))} -> ${mb(held(during))} after 20 more drops -> ${mb(held(stopped))} 3 s after stop(); ` +
      `rss ${mb(base.rss)} -> ${mb(during.rss)} -> ${mb(stopped.rss)}`,
  );
  assert.ok(host.logs().some((l) => /has read nothing we sent/.test(l)), `the client says why it drops the stream:\n${host.logs().slice(0, 5).join("\n")}`);
  // Held by the timers, each dropped connection kept its session and its queue's answers: 20 of them +5.4 MB, and
  // +4.3 MB 3 s after stop(). Freed: +1.8 MB at most, and nothing after stop().
  assert.ok(held(during) - held(base) < 4 * MiB, `20 dropped connections held ${mb(held(during) - held(base))}`);
  assert.ok(held(stopped) - held(base) < 2 * MiB, `3 s after stop() the host still holds ${mb(held(stopped) - held(base))} more than before`);
  assert.equal(host.script.stderr(), "");
});

test("a server whose answer is a 1 MB header block: the client says no response headers came, and keeps trying", async () => {
  let streams = 0;
  const server = http2.createServer();
  server.on("session", (s) => s.on("error", () => {}));
  server.on("stream", (stream) => {
    streams++;
    stream.on("error", () => {});
    stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "14", "grpc-message": "m".repeat(1 << 20) }, { endStream: true });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
  const host = startHost(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  cleanups.push(() => host.stop());
  await waitFor("three attempts", () => streams >= 3, 60_000);
  const said = host.logs().filter((l) => /without response headers/.test(l));
  assert.ok(said.length > 0, `the client names what happened:\n${host.logs().slice(0, 5).join("\n")}`);
  assert.equal(host.script.stderr(), "");
});
