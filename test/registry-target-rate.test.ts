/**
 * How many scrapes of the registry get a body (maxRegistryScrapesPerSecond): past the render budget a recent render
 * serves the scrapes, and before this limit every order got that render's whole body again (round 18b: 9,114 bodies
 * of 5,000 series in 25 s, 46 MB/s). Counted in bodies and bytes handed to the writer, on a clock the test moves.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Gauge, Registry } from "prom-client";
import { registryTarget } from "../src/client/targets/registry-target.ts";
import { ScrapeErrorReason, type ScrapeTarget } from "../src/client/targets/target.ts";
import type { Logger } from "../src/shared/logger.ts";
import { proxyGet, startClient, startServer } from "./helpers.ts";

function registryOf(series: number): Registry {
  const registry = new Registry();
  const g = new Gauge({ name: "host_series", help: "h", labelNames: ["i"], registers: [registry] });
  for (let i = 0; i < series; i++) g.set({ i: String(i) }, i);
  return registry;
}

/** A registry target on a clock the test moves, counting the bodies and bytes it writes and the warnings it logs. */
function counted(o: { scrapesPerSecond?: number; series?: number } = {}) {
  const warnings: string[] = [];
  const log: Logger = { debug() {}, info() {}, warn: (m) => void warnings.push(m), error() {} };
  const clock = { ms: 0 };
  const target: ScrapeTarget = registryTarget(registryOf(o.series ?? 100), {
    metricsPath: "/metrics",
    gzipLevel: 0,
    renderPercent: 100,
    scrapesPerSecond: o.scrapesPerSecond ?? 10,
    log,
    now: () => clock.ms,
  });
  const sent = { bodies: 0, bytes: 0, refused: [] as string[] };
  const serve = (path = "/metrics") =>
    target
      .serve({ port: 0, path, scheme: "http", headers: {}, timeoutMs: 5000, signal: new AbortController().signal }, {
        head() {},
        write: async (data) => {
          sent.bodies++;
          sent.bytes += data.byteLength;
        },
      })
      .then(
        () => true as const,
        (e: Error & { reason?: ScrapeErrorReason }) => {
          if (e.reason === ScrapeErrorReason.NOT_FOUND) return "not found" as const;
          assert.equal(e.reason, ScrapeErrorReason.BUSY, e.message);
          sent.refused.push(e.message);
          return false as const;
        },
      );
  return { serve, sent, clock, warnings };
}

test("registry target: an order flood gets at most maxRegistryScrapesPerSecond bodies a second (the burst of one second's worth, then the rate), the rest busy with a line naming the option", async () => {
  const t = counted({ series: 5000 });
  // 1000 orders a second (the client's frame budget) for 10 s of the test's clock.
  for (let ms = 0; ms < 10_000; ms++) {
    t.clock.ms = ms;
    await t.serve();
  }
  const bodyBytes = t.sent.bytes / t.sent.bodies;
  // 10 at once, then one every 100 ms: 10 + 10 x 9.999 s.
  assert.equal(t.sent.bodies, 10 + 99, `${t.sent.bodies} bodies for 10,000 orders in 10 s`);
  assert.ok(t.sent.bytes <= 110 * bodyBytes && bodyBytes > 100_000, `${t.sent.bytes} bytes sent`);
  assert.equal(t.sent.refused.length, 10_000 - 109);
  assert.deepEqual(new Set(t.sent.refused), new Set(["the registry was asked for more than 10 scrapes a second, its maximum (maxRegistryScrapesPerSecond); not served"]));
  // Logged sparsely: once a minute at most, however many are refused.
  assert.deepEqual(t.warnings, [
    "the registry was asked for more than 10 scrapes a second, its maximum (maxRegistryScrapesPerSecond); not served: scrapes past it are answered busy (said at most once a minute)",
  ]);
});

test("registry target: honest scrape rates never meet the default: three HA pairs every second at the same moment, another pair every 5 s and one every 15 s, for 10 minutes", async () => {
  const t = counted();
  let asked = 0;
  for (let ms = 0; ms < 600_000; ms += 1000) {
    // 6 + 2 + 1 = 9 at the same moment every 15 s (the burst), 6.5 a second on average (the rate).
    const due = 6 + (ms % 5000 === 0 ? 2 : 0) + (ms % 15_000 === 0 ? 1 : 0);
    t.clock.ms = ms;
    for (let i = 0; i < due; i++) {
      assert.equal(await t.serve(), true, `scrape ${i + 1} of ${due} at ${ms} ms refused: ${t.sent.refused.join("; ")}`);
      asked++;
    }
  }
  assert.equal(t.sent.bodies, asked);
  assert.deepEqual(t.warnings, []);
});

test("registry target: the bucket refills with time, holds one second's worth at most, at least two (an HA pair at 0.5 a second); a clock going backwards adds nothing", async () => {
  const t = counted({ scrapesPerSecond: 3 });
  for (let i = 0; i < 3; i++) assert.equal(await t.serve(), true);
  assert.equal(await t.serve(), false);
  t.clock.ms += 340; // a third of a second: one token
  assert.equal(await t.serve(), true);
  assert.equal(await t.serve(), false);
  t.clock.ms += 5_000;
  for (let i = 0; i < 3; i++) assert.equal(await t.serve(), true);
  assert.equal(await t.serve(), false);
  t.clock.ms -= 10_000;
  assert.equal(await t.serve(), false);
  assert.equal(t.sent.bodies, 7);

  const half = counted({ scrapesPerSecond: 0.5 });
  assert.equal(await half.serve(), true);
  assert.equal(await half.serve(), true, "the other Prometheus of the pair, a moment later");
  assert.equal(await half.serve(), false);
  half.clock.ms += 1_000;
  assert.equal(await half.serve(), false);
  half.clock.ms += 1_000;
  assert.equal(await half.serve(), true);
  assert.match(half.sent.refused[0]!, /^the registry was asked for more than 0\.5 scrapes a second/);
});

test("registry target: a scrape of another path is not found, and takes nothing from the bucket", async () => {
  const t = counted({ scrapesPerSecond: 0.001 });
  for (let i = 0; i < 5; i++) assert.equal(await t.serve("/other"), "not found");
  assert.equal(await t.serve(), true);
  assert.equal(await t.serve(), true);
  assert.equal(await t.serve(), false);
});

test("registry target: over maxRegistryScrapesPerSecond Prometheus gets a 503 with one line naming the limit and the option", async () => {
  const server = await startServer();
  const client = await startClient(server.url, "app", { maxRegistryScrapesPerSecond: 0.001 });
  try {
    // A rate so low the bucket does not refill during the test: two scrapes (the bucket holds at least two), then busy.
    assert.equal((await proxyGet(server.port, "http://app/metrics")).status, 200);
    assert.equal((await proxyGet(server.port, "http://app/metrics")).status, 200);
    const r = await proxyGet(server.port, "http://app/metrics");
    assert.equal(r.status, 503);
    assert.equal(r.body.toString(), 'promproxy: client "app": the registry was asked for more than 0.001 scrapes a second, its maximum (maxRegistryScrapesPerSecond); not served\n');
  } finally {
    await client.stop();
    await server.close();
  }
});
