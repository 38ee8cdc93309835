/**
 * The search schedule of a client behind one load-balancer address
 * (src/client/search-schedule.ts): fast at first, never more than 10 s
 * between rounds while a replica is missing, slowing down otherwise; a lost
 * replica is remembered for a bounded time only.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createSearchSchedule, createLostReplicas, createRoundDelays, lostSearchMs, missingRoundMs } from "../src/client/search-schedule.ts";

const backoff = { initialMs: 100, maxMs: 2_000, multiplier: 2, jitter: 0.5 };

test("while a replica is missing, rounds start fast and are never more than 10 s apart, for as long as it lasts", () => {
  const longest = createRoundDelays({ backoff, intervalMs: 30_000 }, () => 0); // no jitter off: the longest waits
  const delays = Array.from({ length: 1_000 }, () => longest.next(true));
  assert.deepEqual(delays.slice(0, 6), [100, 200, 400, 800, 1_600, 2_000]);
  assert.equal(Math.max(...delays), missingRoundMs);
  assert.equal(delays.at(-1), 10_000, "still 10 s after 1,000 empty rounds");
  const shortest = createRoundDelays({ backoff, intervalMs: 30_000 }, () => 1);
  const jittered = Array.from({ length: 50 }, () => shortest.next(true));
  assert.equal(jittered[0], 50, "half of each delay is random");
  assert.equal(jittered.at(-1), 5_000, "the 10 s cap is jittered too: 5-10 s");
});

test("a fast backoff configured slower than 10 s is capped while a replica is missing", () => {
  const d = createRoundDelays({ backoff: { initialMs: 60_000, maxMs: 600_000, multiplier: 2, jitter: 0 }, intervalMs: 30_000 });
  assert.equal(d.next(true), 10_000);
  assert.equal(d.cap(45_000, true), 10_000, "a reconnect backoff while searching, too");
  assert.equal(d.cap(45_000, false), 45_000);
});

test("with nothing missing, rounds slow down after 8 empty ones to 32 x the interval; a change makes them fast again", () => {
  const d = createRoundDelays({ backoff, intervalMs: 30_000 }, () => 0);
  const delays = Array.from({ length: 20 }, () => d.next(false));
  assert.deepEqual(delays.slice(8, 11), [30_000, 60_000, 120_000]);
  assert.equal(delays.at(-1), 30_000 * 32);
  d.reset();
  assert.equal(d.next(false), 100);
});

test("a lost replica is remembered for lostSearchMs (10 min), then forgotten; at most `max` are kept", () => {
  let now = 0;
  const lost = createLostReplicas(3, () => now);
  assert.equal(lost.recent(), false);
  lost.lost("r1");
  now = lostSearchMs - 1;
  assert.equal(lost.recent(), true);
  now = lostSearchMs;
  assert.equal(lost.recent(), false, "a ghost id is not searched for forever");
  lost.lost("r2");
  lost.found("r2");
  assert.equal(lost.recent(), false, "found again: no longer lost");
  for (let i = 0; i < 1_000; i++) lost.lost(`rogue-${i}`); // a server naming a fresh id in every welcome
  // Only the 3 newest are kept: forgetting them all empties the set.
  for (const id of ["rogue-997", "rogue-998", "rogue-999"]) lost.found(id);
  assert.equal(lost.recent(), false, "older ids were dropped at the cap");
});

test("a round set long ago, while nothing was missing, comes fast once a replica is lost", async () => {
  let missing = false;
  const schedule = createSearchSchedule({ backoff: { initialMs: 1, maxMs: 1, multiplier: 2, jitter: 0 }, intervalMs: 600_000, urgent: () => missing, maxLost: 8 });
  const never = new AbortController().signal;
  const alive = setInterval(() => {}, 1_000); // the schedule's timers are unref'd: keep the test's loop alive
  for (let i = 0; i < 8; i++) await schedule.nextRound(never); // the fast rounds, 1 ms each
  const slow = schedule.nextRound(never); // the next one is 10 min away
  missing = true;
  schedule.lost("r1");
  assert.equal(schedule.recentlyLost(), true);
  const t0 = performance.now();
  await slow;
  assert.ok(performance.now() - t0 < 30_000, "it did not wait the 10 min round");
  const stop = new AbortController();
  const pending = schedule.nextRound(stop.signal);
  stop.abort();
  await pending; // an aborted wait ends at once
  clearInterval(alive);
});

test("a replica lost before its stream was stable, or found again and again, does not keep the rounds fast", async () => {
  let missing = false;
  const schedule = createSearchSchedule({ backoff: { initialMs: 1, maxMs: 1, multiplier: 2, jitter: 0 }, intervalMs: 600_000, urgent: () => missing, maxLost: 8 });
  const alive = setInterval(() => {}, 1_000); // the schedule's timers are unref'd: keep the test's loop alive
  /** Whether the next round comes within `ms` (the fast rounds are 1 ms apart; the slow one is 10 min away). */
  const fastNow = async (ms = 500) => {
    const stop = new AbortController();
    const t = setTimeout(() => stop.abort(), ms);
    const t0 = performance.now();
    await schedule.nextRound(stop.signal);
    clearTimeout(t);
    return performance.now() - t0 < ms - 50;
  };
  const settle = async () => {
    while (await fastNow()); // until the fast rounds are spent and the slow one is set
  };
  await settle();
  schedule.foundNew(); // a replica found, nothing flapping: fast again, as at every find
  assert.equal(await fastNow(), true);
  await settle();
  schedule.foundNew();
  assert.equal(await fastNow(), true, "each new replica restarts them");
  await settle();
  schedule.lost("flapper", false); // welcomed and reset at once: remembered, but no restart
  assert.equal(schedule.recentlyLost(), true);
  assert.equal(await fastNow(), false, "an unstable loss does not restart the fast rounds");
  schedule.foundNew(); // found again (under a fresh id or not) within 10 s of it: no restart either
  assert.equal(await fastNow(), false, "a find within missingRoundMs of an unstable loss does not restart them");
  schedule.lost("r1"); // a stream that lived: fast at once
  assert.equal(await fastNow(), true);
  missing = false;
  clearInterval(alive);
});
