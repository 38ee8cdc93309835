/**
 * The client trusts no server, part four: how much of the host a server's
 * frames can take when it sends them as fast as it can. Orders with boundless
 * credit against a registry whose render costs 5 ms of CPU, and a flood of
 * pings and cancels. The host reads at most maxServerFramesPerSecond (default
 * 1000) frames a second, flow control holding the rest in the server, and
 * renders within maxRenderPercent (default 10 %) of a core.
 *
 * Thresholds are counts against the elapsed time the test measures itself: a
 * loaded machine makes the host do less, never more.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { waitFor } from "../helpers.ts";
import { startHost } from "./fixtures/hostile-server/harness.ts";
import { startHostileServer, welcome } from "./fixtures/hostile-server/server.ts";

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const floodMs = 4_000;
/** Frames a stream holds before flow control stops the server: the client's 64 KiB window, Node's buffers, one DATA frame read. */
const inFlightFrames = (frameBytes: number) => Math.ceil((128 * 1024) / frameBytes);

for (const transport of ["fast", "connect"] as const) {
  test(`${transport}: orders with credit as fast as a server can send: renders within 10 % of a core, orders read at 1000 a second`, async (t) => {
    let answered = 0;
    let started = 0;
    const server = await startHostileServer(async (s) => {
      s.read((f) => {
        if (f.frame.case === "end" || f.frame.case === "result") answered++;
      });
      await s.send(welcome());
      started = performance.now();
      for (let id = 1n; !s.closed; id++) {
        await s.send({ frame: { case: "order", value: { scrapeId: id, path: "/metrics", timeout: { seconds: 60n, nanos: 0 }, creditBytes: 1n << 40n } } });
      }
    });
    cleanups.push(() => server.close());
    const spinMs = 5;
    const host = startHost(server.url, { registryBytes: 8 * 1024, spinMs, client: { transport } });
    cleanups.push(() => host.stop());
    await waitFor("the flood to begin", () => started > 0, 20_000);
    await pause(floodMs);
    const stats = await host.stats();
    const elapsedMs = performance.now() - started; // after the figures came: an upper bound of the flood's length
    const renders = stats.collects.total;
    // The bucket: one second's worth (100 ms) at the start, 10 % of the clock since; a render may start while the
    // bucket is not empty (each of the four formats at most once more), and each costs at least its 5 ms of spinning.
    const mostRenders = Math.ceil((100 + 0.1 * elapsedMs) / spinMs) + 4;
    const mostAnswered = Math.ceil(elapsedMs) + 1000 + inFlightFrames(20);
    t.diagnostic(`streams ${server.streams} logs ${host.logs().slice(0, 6).join(" | ")}`);
    t.diagnostic(`${elapsedMs.toFixed(0)} ms: ${renders} renders (at most ${mostRenders}), ${answered} orders answered (at most ${mostAnswered})`);
    assert.ok(renders <= mostRenders, `${renders} renders of ${spinMs} ms in ${elapsedMs.toFixed(0)} ms: more than 10 % of a core`);
    assert.ok(answered <= mostAnswered, `${answered} orders answered in ${elapsedMs.toFixed(0)} ms: read faster than 1000 frames a second`);
    assert.ok(renders >= 3 && answered >= 50, `the host still serves: ${renders} renders, ${answered} answers`);
    assert.equal(stats.disconnected, 0, "a flood is held back, not a reason to drop the stream");
    assert.equal(host.script.stderr(), "");
  });

  test(`${transport}: pings and cancels as fast as a server can send: read at 1000 frames a second, the rest held by flow control`, async (t) => {
    let sent = 0;
    let pongs = 0;
    let started = 0;
    const server = await startHostileServer(async (s) => {
      s.read((f) => {
        if (f.frame.case === "pong") pongs++;
      });
      await s.send(welcome());
      started = performance.now();
      for (let n = 1n; !s.closed; n++) {
        await s.send(n % 2n ? { frame: { case: "ping", value: { nonce: n } } } : { frame: { case: "cancel", value: { scrapeId: n, reason: "r".repeat(100) } } });
        sent++;
      }
    });
    cleanups.push(() => server.close());
    const host = startHost(server.url, { client: { transport } });
    cleanups.push(() => host.stop());
    await waitFor("the flood to begin", () => started > 0, 20_000);
    await pause(floodMs);
    const stats = await host.stats();
    const elapsedMs = performance.now() - started;
    const most = Math.ceil(elapsedMs) + 1000 + inFlightFrames(12);
    t.diagnostic(`${elapsedMs.toFixed(0)} ms: the server got ${sent} frames out (at most ${most}); ${pongs} pongs back`);
    assert.ok(sent <= most, `the server got ${sent} frames out in ${elapsedMs.toFixed(0)} ms: read faster than 1000 a second`);
    assert.ok(pongs >= 1, "pings are still answered");
    assert.equal(stats.disconnected, 0);
    assert.equal(host.script.stderr(), "");
  });
}
