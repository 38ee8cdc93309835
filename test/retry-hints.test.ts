import assert from "node:assert/strict";
import { test } from "node:test";
import { createRetryHints } from "../src/server/retry-hints.ts";
import { retryAfterKey } from "../src/shared/retry-after.ts";

const hintOf = (h: Headers | undefined) => Number(h?.get(retryAfterKey));

test("retry hints are tickets at the pace of welcomes: a burst of refusals is spread, never past maxRetryAfterMs", () => {
  let now = 0;
  const hints = createRetryHints(5_000, () => now, () => 0.5);
  // 200 welcomes in the first second: the next second's tickets are 5 ms apart.
  for (let i = 0; i < 200; i++) hints.admitted();
  now = 1_000;
  const burst = Array.from({ length: 400 }, () => hintOf(hints.refusal()));
  assert.deepEqual(burst.slice(0, 3), [5, 10, 15]);
  assert.ok(burst.every((h, i) => i === 0 || h >= (burst[i - 1] as number)), "in order");
  assert.equal(burst.at(-1), 2_000, "400 tickets at 200 a second: 2 s");
  // Past maxRetryAfterMs the queue is full: hints fall anywhere within it, never beyond.
  const more = Array.from({ length: 1_000 }, () => hintOf(hints.refusal()));
  assert.ok(more.every((h) => h >= 0 && h <= 5_000));
  assert.equal(more.at(-1), 2_500, "random 0.5 of 5 000 ms");
});

test("retry hints: at least 100 welcomes a second are assumed; maxRetryAfterMs 0 means none", () => {
  const hints = createRetryHints(10_000, () => 0, () => 0.5);
  assert.equal(hintOf(hints.refusal()), 10);
  assert.equal(createRetryHints(0).refusal(), undefined);
});
