/**
 * The client trusts no server: how many bodies of its registry a server gets when it orders scrapes as fast as the
 * client reads them (1000 frames a second) and reads every answer. The render budget (maxRenderPercent) bounds how
 * often the registry renders, not how often a render is sent: past it every order got the latest render's whole
 * body again (round 18b: 9,114 bodies of 5,000 series in 25 s, 1.16 GB, a quarter of a core). At most
 * maxRegistryScrapesPerSecond (10) scrapes a second get one; the rest are answered busy, a line naming the option.
 *
 * Counts against the elapsed time the test measures itself: a loaded machine makes the host do less, never more.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { waitFor } from "../helpers.ts";
import { cleanupsAfterAll, mb, pause, startHost } from "./fixtures/hostile-server/harness.ts";
import { startHostileServer, welcome } from "./fixtures/hostile-server/server.ts";

const cleanups = cleanupsAfterAll();
const floodMs = 4_000;
const registryBytes = 8 * 1024;
const refusal = "the registry was asked for more than 10 scrapes a second, its maximum (maxRegistryScrapesPerSecond); not served";

for (const transport of ["fast", "connect"] as const) {
  test(`${transport}: orders with credit as fast as the client reads them, every answer read: at most 10 bodies a second (and the burst of 10), the rest busy naming the option`, async (t) => {
    const got = { bodies: 0, bytes: 0, busy: 0, other: new Map<string, number>() };
    let started = 0;
    const server = await startHostileServer(async (s) => {
      s.read((f) => {
        const c = f.frame;
        if (c.case === "head") got.bodies++;
        else if (c.case === "chunk") got.bytes += c.value.data.byteLength;
        else if ((c.case === "end" || c.case === "result") && c.value.error) {
          const m = c.value.error.message;
          if (m === refusal) got.busy++;
          else got.other.set(m, (got.other.get(m) ?? 0) + 1);
        } else if (c.case === "result") {
          got.bodies++;
          got.bytes += c.value.data.byteLength;
        }
      });
      await s.send(welcome());
      started = performance.now();
      for (let id = 1n; !s.closed; id++) {
        await s.send({ frame: { case: "order", value: { scrapeId: id, path: "/metrics", timeout: { seconds: 60n, nanos: 0 }, creditBytes: 1n << 40n } } });
      }
    });
    cleanups.push(() => server.close());
    const host = startHost(server.url, { registryBytes, client: { transport } });
    cleanups.push(() => host.stop());
    await waitFor("the flood to begin", () => started > 0, 20_000);
    await pause(floodMs);
    const { bodies, bytes, busy } = got;
    const elapsedMs = performance.now() - started; // after the counts: an upper bound of the flood's length
    const stats = await host.stats();
    const mostBodies = 10 + Math.ceil((10 * elapsedMs) / 1000);
    const bodyBytes = bodies ? bytes / bodies : 0;
    t.diagnostic(`${elapsedMs.toFixed(0)} ms: ${bodies} bodies (at most ${mostBodies}), ${mb(bytes)} (${bodyBytes.toFixed(0)} B each), ${busy} busy over the limit, ${[...got.other.values()].reduce((a, b) => a + b, 0)} other; ${stats.collects.total} renders`);
    assert.ok(bodies <= mostBodies, `${bodies} bodies in ${elapsedMs.toFixed(0)} ms: more than 10 a second`);
    assert.ok(bytes <= mostBodies * registryBytes * 1.5, `${mb(bytes)} of bodies in ${elapsedMs.toFixed(0)} ms`);
    assert.ok(bodies >= 10 && busy >= 20, `the host still serves: ${bodies} bodies, ${busy} busy`);
    // Orders that found the client's places taken (its bodies waiting for the transport) are busy too.
    assert.deepEqual([...got.other].filter(([m]) => !/^client "host-app" has 8 scrapes in flight, its maximum$/.test(m)), [], "no other failure");
    assert.equal(stats.disconnected, 0, "a flood is answered, not a reason to drop the stream");
    // Said once (a line a minute at most).
    assert.equal(host.logs().filter((l) => l.includes("maxRegistryScrapesPerSecond")).length, 1, host.logs().join("\n"));
    assert.equal(host.script.stderr(), "");
  });
}
