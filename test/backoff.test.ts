import assert from "node:assert/strict";
import { test } from "node:test";
import { createBackoff, resolveBackoff } from "../src/client/backoff.ts";

const defaults = { initialMs: 500, maxMs: 30_000, multiplier: 2, jitter: 0.5 };

test("backoff grows exponentially to its maximum, with jitter below the base", () => {
  const b = createBackoff({ initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.5 }, () => 0);
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000, 1000]);
  b.reset();
  assert.equal(b.next(), 100);
  const j = createBackoff(resolveBackoff({ initialMs: 100, jitter: 0.5 }, defaults, "backoff"), () => 1);
  assert.equal(j.next(), 50);
});

test("backoff over its defaults: 500 ms doubling to 30 s", () => {
  const b = createBackoff(resolveBackoff(undefined, defaults, "backoff"), () => 0);
  const seq = Array.from({ length: 10 }, () => b.next());
  assert.equal(seq[0], 500);
  assert.equal(seq[1], 1000);
  assert.equal(seq.at(-1), 30_000);
});

test("backoff rejects nonsense", () => {
  for (const bad of [{ initialMs: 0 }, { initialMs: 10, maxMs: 5 }, { jitter: 2 }, { multiplier: 0.5 }, { initialMs: Number.NaN }]) {
    assert.throws(() => resolveBackoff(bad, defaults, "searchBackoff"), /option searchBackoff needs initialMs > 0/);
  }
});
