import assert from "node:assert/strict";
import { test } from "node:test";
import { createBackoff, resolveBackoff } from "../src/client/backoff.ts";
import { sleep } from "../src/shared/sleep.ts";

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

test("a retry hint lengthens the wait, clamped to [initialMs, maxMs], never shortens it; a malformed one is ignored; the steps grow as without it", () => {
  const b = createBackoff({ initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.5 }, () => 0);
  const hint = (v: string) => new Headers({ "promproxy-retry-after-ms": v });
  assert.equal(b.next(hint("250")), 250, "step 100, hint 250");
  assert.equal(b.next(hint("1000")), 1000, "step 200, hint at the upper bound");
  assert.equal(b.next(hint("3600000")), 1000, "step 400, hint over the bound: clamped");
  assert.equal(b.next(hint("0")), 800, "step 800, hint 0: the step");
  assert.equal(b.next(hint("0")), 1000, "a server hinting 0 again and again still sees the client back off");
  for (const bad of ["", "-5", "1.5", "1e3", "12 ms", "100, 200", "99999999999"]) {
    const fresh = createBackoff({ initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.5 }, () => 0);
    assert.deepEqual([fresh.next(hint(bad)), fresh.next(hint(bad))], [100, 200], `"${bad}" ignored: the steps run`);
  }
});

test("backoff bounds: a largest wait over a timer's limit (2^31-1 ms) is refused; sleep never overflows to 1 ms", async () => {
  assert.throws(() => resolveBackoff({ maxMs: 2 ** 31 }, defaults, "backoff"), /initialMs <= maxMs <= 2147483647/);
  assert.throws(() => resolveBackoff({ maxMs: Number.POSITIVE_INFINITY }, defaults, "backoff"), /option backoff/);
  assert.doesNotThrow(() => resolveBackoff({ maxMs: 2 ** 31 - 1 }, defaults, "backoff"));
  const stop = new AbortController();
  let fired = false;
  void sleep(9_999_999_999, stop.signal).then(() => (fired = true));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(fired, false, "a huge wait is a long wait, not 1 ms");
  stop.abort();
});

