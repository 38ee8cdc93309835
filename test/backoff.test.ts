import assert from "node:assert/strict";
import { test } from "node:test";
import { createBackoff } from "../src/client/backoff.ts";

test("backoff grows exponentially to its maximum, with jitter below the base", () => {
  const b = createBackoff({ initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.5 }, () => 0);
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000, 1000]);
  b.reset();
  assert.equal(b.next(), 100);
  const j = createBackoff({ initialMs: 100, jitter: 0.5 }, () => 1);
  assert.equal(j.next(), 50);
});

test("backoff defaults: 500 ms doubling to 30 s", () => {
  const b = createBackoff({}, () => 0);
  const seq = Array.from({ length: 10 }, () => b.next());
  assert.equal(seq[0], 500);
  assert.equal(seq[1], 1000);
  assert.equal(seq.at(-1), 30_000);
});

test("backoff rejects nonsense", () => {
  assert.throws(() => createBackoff({ initialMs: 0 }), RangeError);
  assert.throws(() => createBackoff({ initialMs: 10, maxMs: 5 }), RangeError);
  assert.throws(() => createBackoff({ jitter: 2 }), RangeError);
  assert.throws(() => createBackoff({ multiplier: 0.5 }), RangeError);
});

test("a retry hint sets the wait, clamped to [initialMs, maxMs]; a malformed one is ignored; the exponential step does not grow", () => {
  const b = createBackoff({ initialMs: 100, maxMs: 1000, jitter: 0.5 }, () => 0);
  const hint = (v: string) => new Headers({ "promproxy-retry-after-ms": v });
  assert.equal(b.next(hint("250")), 250);
  assert.equal(b.next(hint("1000")), 1000, "at the upper bound");
  assert.equal(b.next(hint("1001")), 1000, "over it");
  assert.equal(b.next(hint("3600000")), 1000);
  assert.equal(b.next(hint("100")), 100, "at the lower bound");
  assert.equal(b.next(hint("0")), 100, "under it");
  assert.equal(b.next(new Headers()), 100, "hinted waits left the steps where they were");
  assert.equal(b.next(), 200);
  for (const bad of ["", "-5", "1.5", "1e3", "12 ms", "100, 200", "99999999999"]) {
    const fresh = createBackoff({ initialMs: 100, maxMs: 1000 }, () => 0);
    assert.deepEqual([fresh.next(hint(bad)), fresh.next(hint(bad))], [100, 200], `"${bad}" ignored: the steps run`);
  }
});
