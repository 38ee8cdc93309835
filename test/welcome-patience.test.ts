import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveClientOptions } from "../src/client/options.ts";
import { createWelcomePatience, welcomePatienceOf } from "../src/client/welcome-patience.ts";

test("welcome patience: doubles after each timeout up to its bound, a welcome resets it", () => {
  const p = createWelcomePatience({ welcomeTimeoutMs: 1_000, maxWelcomeTimeoutMs: 5_000 });
  const seen = [p.currentMs];
  for (let i = 0; i < 5; i++) {
    p.timedOut();
    seen.push(p.currentMs);
  }
  assert.deepEqual(seen, [1_000, 2_000, 4_000, 5_000, 5_000, 5_000]);
  p.welcomed();
  assert.equal(p.currentMs, 1_000);
});

test("welcome patience: a bound equal to the timeout never grows", () => {
  const p = createWelcomePatience({ welcomeTimeoutMs: 1_000, maxWelcomeTimeoutMs: 1_000 });
  p.timedOut();
  p.timedOut();
  assert.equal(p.currentMs, 1_000);
});

test("welcome patience: one per client (its resolved options), shared by its attempts", () => {
  const a = resolveClientOptions({ name: "a", serverUrl: "http://127.0.0.1:1" });
  const b = resolveClientOptions({ name: "b", serverUrl: "http://127.0.0.1:1" });
  welcomePatienceOf(a).timedOut();
  assert.equal(welcomePatienceOf(a).currentMs, 20_000);
  assert.equal(welcomePatienceOf(b).currentMs, 10_000);
});
