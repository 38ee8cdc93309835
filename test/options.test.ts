import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Registry } from "prom-client";
import { scrapeTimeoutMs } from "../src/server/proxy-request.ts";
import { resolveServerOptions, type ServerOptions } from "../src/server/options.ts";
import { silentLogger } from "../src/shared/logger.ts";
import { version } from "../src/shared/version.ts";

test("server option defaults", () => {
  const o = resolveServerOptions({});
  assert.equal(o.defaultScrapeTimeoutMs, 15_000);
  assert.equal(o.maxScrapeTimeoutMs, 300_000);
  assert.equal(o.maxClients, 10_000);
  assert.equal(o.maxScrapesInFlight, 16);
  assert.equal(o.maxResponseBytes, 256 * 1024 * 1024);
  assert.equal(o.maxChunkBytes, 256 * 1024);
  assert.equal(o.creditBytes, 2 * 1024 * 1024);
  assert.equal(o.maxLabels, 32);
  assert.equal(o.maxLabelValueLength, 1024);
  assert.equal(o.maxTargets, 64);
  assert.equal(o.helloTimeoutMs, 10_000);
  assert.equal(o.takeoverProbeMs, 2_000);
  assert.equal(o.heartbeatIntervalMs, 10_000);
  assert.equal(o.heartbeatTimeoutMs, 30_000);
  assert.deepEqual(o.interceptors, []);
  assert.ok(o.registry instanceof Registry);
  assert.notEqual(o.registry, resolveServerOptions({}).registry, "a fresh registry each time, never the global one");
  const given = new Registry();
  const custom = resolveServerOptions({ registry: given, logger: silentLogger, heartbeatIntervalMs: 1000 });
  assert.equal(custom.registry, given);
  assert.equal(custom.heartbeatTimeoutMs, 3000);
});

test("server options reject nonsense with the option's name", () => {
  assert.throws(() => resolveServerOptions({ maxClients: 0 }), /maxClients must be a positive whole number/);
  assert.throws(() => resolveServerOptions({ maxChunkBytes: 1000.5 }), /maxChunkBytes must be a positive whole number, got 1000.5/);
  assert.throws(() => resolveServerOptions({ replicaCount: 1.5 }), /replicaCount must be a whole number >= 0/);
  assert.throws(() => resolveServerOptions({ maxForwardsPerPeer: 0 }), /maxForwardsPerPeer must be a positive whole number, got 0/);
  assert.throws(() => resolveServerOptions({ maxForwardsPerPeer: 2.5 }), /maxForwardsPerPeer must be a positive whole number, got 2.5/);
  assert.equal(resolveServerOptions({ maxForwardsPerPeer: 1 }).maxForwardsPerPeer, 1);
  assert.equal(resolveServerOptions({}).maxForwardsPerPeer, 256);
  assert.throws(() => resolveServerOptions({ stalledAnswerMs: 0 }), /option stalledAnswerMs must be a positive number, got 0/);
  assert.throws(() => resolveServerOptions({ stalledAnswerMs: -5 }), /option stalledAnswerMs must be a positive number, got -5/);
  assert.equal(resolveServerOptions({ stalledAnswerMs: 1 }).stalledAnswerMs, 1);
  assert.equal(resolveServerOptions({}).stalledAnswerMs, 5_000);
  assert.throws(() => resolveServerOptions({ defaultScrapeTimeoutMs: Number.NaN }), /defaultScrapeTimeoutMs/);
  assert.throws(() => resolveServerOptions({ maxChunkBytes: 2 * 1024 * 1024 }), /at most 1 MiB/);
  assert.throws(() => resolveServerOptions({ creditBytes: 1024 }), /creditBytes must be at least maxChunkBytes/);
  assert.throws(() => resolveServerOptions({ defaultScrapeTimeoutMs: 10_000, maxScrapeTimeoutMs: 5_000 }), /exceeds/);
  assert.throws(() => resolveServerOptions({ heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 500 }), /heartbeatTimeoutMs/);
});

test("scrape timeout header: default, clamp, and clear errors", () => {
  const o = { defaultScrapeTimeoutMs: 15_000, maxScrapeTimeoutMs: 60_000 };
  assert.equal(scrapeTimeoutMs(undefined, o), 15_000);
  assert.equal(scrapeTimeoutMs("10", o), 10_000);
  assert.equal(scrapeTimeoutMs("9.5", o), 9_500);
  assert.equal(scrapeTimeoutMs(" 2 ", o), 2_000);
  assert.equal(scrapeTimeoutMs("1e300", o), 60_000);
  assert.equal(scrapeTimeoutMs("3600", o), 60_000);
  for (const bad of ["abc", "-1", "0", "NaN", "", "Infinity", "1s", "0x10", "1,2"]) {
    const r = scrapeTimeoutMs(bad, o);
    assert.equal(typeof r, "string", `expected ${JSON.stringify(bad)} to be refused`);
    assert.match(r as string, /^bad X-Prometheus-Scrape-Timeout-Seconds/);
  }
});

test("the version string follows package.json", () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  assert.equal(version, `promproxy-node/${pkg.version}`);
});

test("maxVanishedPerIdentity: defaults to maxClients, a positive whole number", () => {
  assert.equal(resolveServerOptions({}).maxVanishedPerIdentity, 10_000);
  assert.equal(resolveServerOptions({ maxClients: 500 }).maxVanishedPerIdentity, 500);
  assert.equal(resolveServerOptions({ maxVanishedPerIdentity: 7 }).maxVanishedPerIdentity, 7);
  assert.throws(() => resolveServerOptions({ maxVanishedPerIdentity: 0 }), /maxVanishedPerIdentity must be a positive whole number, got 0/);
});

test("server options: an unknown key is refused, naming the nearest option", () => {
  assert.throws(() => resolveServerOptions({ maxclients: 5 } as ServerOptions), /unknown option "maxclients" \(did you mean maxClients\?\)/);
  assert.throws(() => resolveServerOptions({ heartbeatIntervalSeconds: 5 } as ServerOptions), /unknown option "heartbeatIntervalSeconds"/);
  assert.doesNotThrow(() => resolveServerOptions({ peerSecret: undefined, promAuth: undefined, logger: undefined }));
});
