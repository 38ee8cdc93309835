import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveClientOptions, type ClientOptions } from "../src/client/options.ts";

const base: ClientOptions = { name: "App-1", serverUrl: "http://127.0.0.1:1" };

test("client options: one resolver fills in every default", () => {
  const r = resolveClientOptions(base);
  assert.equal(r.name, "app-1", "the checked name");
  assert.deepEqual(r.urls.map(String), ["http://127.0.0.1:1/"]);
  assert.deepEqual(
    [r.maxScrapesInFlight, r.maxServerFrameBytes, r.maxQueuedFrames, r.gzipLevel, r.heartbeatMisses, r.welcomeTimeoutMs, r.pingIntervalMs, r.pingTimeoutMs],
    [8, 64 * 1024, 1024, 1, 3, 10_000, 10_000, 5_000],
  );
  assert.deepEqual([r.protocol, r.transport, r.metricsPath], ["grpc", "fast", "/metrics"]);
  assert.deepEqual([r.maxServerFramesPerSecond, r.maxRenderPercent, r.maxServerControlFramesPerSecond, r.maxServerOverheadBytesPerSecond], [1000, 10, 100, 1 << 20]);
  assert.equal(r.maxRegistryScrapesPerSecond, 10);
  assert.equal(r.maxWelcomeTimeoutMs, 60_000);
  assert.equal(resolveClientOptions({ ...base, welcomeTimeoutMs: 90_000 }).maxWelcomeTimeoutMs, 90_000, "the default is never below welcomeTimeoutMs");
  assert.deepEqual(r.backoff, { initialMs: 500, maxMs: 30_000, multiplier: 2, jitter: 0.5 });
  assert.deepEqual(r.searchBackoff, { initialMs: 100, maxMs: 2_000, multiplier: 2, jitter: 0.5 });
  assert.deepEqual(resolveClientOptions({ ...base, backoff: { maxMs: 5_000 } }).backoff, { initialMs: 500, maxMs: 5_000, multiplier: 2, jitter: 0.5 });
});

test("client options: each bad value is refused with the option's name, at and over its bounds", () => {
  const refused: [Partial<ClientOptions>, RegExp][] = [
    [{ name: "not a name" }, /option name/],
    [{ serverUrl: [] }, /option serverUrl must be a URL or a non-empty list/],
    [{ serverUrl: "ftp://x" }, /must be http:\/\/ or https:\/\//],
    [{ serverUrl: ["http://a:1", "http://a:1"] }, /lists a URL twice/],
    [{ tls: {} }, /option tls needs an https:\/\/ serverUrl/],
    [{ maxScrapesInFlight: 0 }, /option maxScrapesInFlight must be a whole number >= 1/],
    [{ gzipLevel: 10 }, /option gzipLevel must be a whole number from 0 to 9/],
    [{ heartbeatMisses: 0 }, /option heartbeatMisses must be a whole number from 1 to 1000/],
    [{ maxServerFrameBytes: 16 * 1024 - 1 }, /option maxServerFrameBytes must be a whole number from 16384 to 67108864/],
    [{ maxServerFrameBytes: 64 * 1024 * 1024 + 1 }, /option maxServerFrameBytes/],
    [{ maxQueuedFrames: (1 << 20) + 1 }, /option maxQueuedFrames must be a whole number from 16 to 1048576/],
    [{ maxServerFramesPerSecond: 9 }, /option maxServerFramesPerSecond must be a whole number from 10 to 1000000, got 9/],
    [{ maxServerFramesPerSecond: 1_000_001 }, /option maxServerFramesPerSecond/],
    [{ maxServerFramesPerSecond: 1.5e3 + 0.5 }, /option maxServerFramesPerSecond/],
    [{ maxServerControlFramesPerSecond: 9 }, /option maxServerControlFramesPerSecond must be a whole number from 10 to 1000000, got 9/],
    [{ maxServerControlFramesPerSecond: 1_000_001 }, /option maxServerControlFramesPerSecond/],
    [{ maxServerControlFramesPerSecond: 20.5 }, /option maxServerControlFramesPerSecond/],
    [{ maxServerOverheadBytesPerSecond: 65_535 }, /option maxServerOverheadBytesPerSecond must be a whole number from 65536 to 1073741824, got 65535/],
    [{ maxServerOverheadBytesPerSecond: 2 ** 30 + 1 }, /option maxServerOverheadBytesPerSecond/],
    [{ maxRenderPercent: 0 }, /option maxRenderPercent must be a whole number from 1 to 100, got 0/],
    [{ maxRenderPercent: 101 }, /option maxRenderPercent/],
    [{ maxRegistryScrapesPerSecond: 0 }, /^TypeError: promproxy: option maxRegistryScrapesPerSecond must be a positive number up to 1000000, got 0$/],
    [{ maxRegistryScrapesPerSecond: -1 }, /option maxRegistryScrapesPerSecond must be a positive number up to 1000000, got -1/],
    [{ maxRegistryScrapesPerSecond: Number.NaN }, /option maxRegistryScrapesPerSecond .* got NaN/],
    [{ maxRegistryScrapesPerSecond: 1_000_001 }, /option maxRegistryScrapesPerSecond .* got 1000001/],
    [{ maxRegistryScrapesPerSecond: Number.POSITIVE_INFINITY }, /option maxRegistryScrapesPerSecond .* got Infinity/],
    [{ maxRegistryScrapesPerSecond: "10" as unknown as number }, /option maxRegistryScrapesPerSecond .* got 10/],
    [{ welcomeTimeoutMs: 0 }, /option welcomeTimeoutMs must be a positive number/],
    [{ maxWelcomeTimeoutMs: 0 }, /option maxWelcomeTimeoutMs must be a positive number/],
    [{ maxWelcomeTimeoutMs: 9_999 }, /option maxWelcomeTimeoutMs \(9999\) must be at least welcomeTimeoutMs \(10000\)/],
    [{ welcomeTimeoutMs: 500, maxWelcomeTimeoutMs: 499 }, /option maxWelcomeTimeoutMs \(499\) must be at least welcomeTimeoutMs \(500\)/],
    [{ pingIntervalMs: Number.POSITIVE_INFINITY }, /option pingIntervalMs must be a positive number/],
    [{ transport: "tcp" as "fast" }, /option transport must be "fast" or "connect", got "tcp"/],
    [{ protocol: "http" as "grpc" }, /option protocol must be "grpc" or "connect"/],
    [{ searchBackoff: { jitter: 2 } }, /option searchBackoff needs/],
    [{ labels: { "bad label": "x" } }, /option label/],
  ];
  for (const [more, message] of refused) assert.throws(() => resolveClientOptions({ ...base, ...more }), message, JSON.stringify(more));
  // At the bounds: taken.
  for (const more of [{ gzipLevel: 0 }, { gzipLevel: 9 }, { maxServerFrameBytes: 16 * 1024 }, { maxQueuedFrames: 16 }, { heartbeatMisses: 1000 }, { maxWelcomeTimeoutMs: 10_000 },
    { maxServerFramesPerSecond: 10 }, { maxServerFramesPerSecond: 1_000_000 }, { maxRenderPercent: 1 }, { maxRenderPercent: 100 },
    { maxRegistryScrapesPerSecond: 0.001 }, { maxRegistryScrapesPerSecond: 1_000_000 },
    { maxServerControlFramesPerSecond: 10 }, { maxServerControlFramesPerSecond: 1_000_000 },
    { maxServerOverheadBytesPerSecond: 65_536 }, { maxServerOverheadBytesPerSecond: 2 ** 30 }]) {
    assert.doesNotThrow(() => resolveClientOptions({ ...base, ...more }), JSON.stringify(more));
  }
});

test("client options: an unknown or renamed key is refused, naming the one meant", () => {
  assert.throws(() => resolveClientOptions({ ...base, serverURL: "http://x:1" } as ClientOptions), /unknown option "serverURL" \(did you mean serverUrl\?\)/);
  assert.throws(() => resolveClientOptions({ ...base, discoverIntervalMs: 5 } as ClientOptions), /unknown option "discoverIntervalMs" \(renamed probeIntervalMs\)/);
  assert.throws(() => resolveClientOptions({ ...base, discoveryBackoff: undefined } as ClientOptions), /renamed searchBackoff/);
  assert.throws(() => resolveClientOptions({ ...base, colour: "red" } as ClientOptions), /^TypeError: promproxy: unknown option "colour"$/);
});

test("client options: every wait fits a Node timer (2^31-1 ms): a longer one would fire after 1 ms", () => {
  for (const key of ["welcomeTimeoutMs", "resolveIntervalMs", "pingIntervalMs", "pingTimeoutMs"] as const) {
    assert.throws(() => resolveClientOptions({ ...base, [key]: 2 ** 31 }), new RegExp(`option ${key} must be a positive number of milliseconds up to 2147483647`));
    assert.doesNotThrow(() => resolveClientOptions({ ...base, [key]: 2 ** 31 - 1, ...(key === "welcomeTimeoutMs" ? { maxWelcomeTimeoutMs: 2 ** 31 - 1 } : {}) }));
  }
  assert.throws(() => resolveClientOptions({ ...base, probeIntervalMs: 2 ** 26 }), /option probeIntervalMs must be a positive number of milliseconds up to 67108863/);
  assert.throws(() => resolveClientOptions({ ...base, backoff: { maxMs: 3e9 } }), /option backoff needs/);
});
