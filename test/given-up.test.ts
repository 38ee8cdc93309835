/**
 * Places of scrapes given up on (src/server/given-up.ts): held until the client shows it read the cancel (it ends
 * the scrape, or answers a ping sent after it; one ping at a time covers every cancel before it), or until the
 * release time for a client that does neither.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createGivenUp } from "../src/server/given-up.ts";

test("one ping covers the cancels before it; its pong frees them, and cancels after it get the next ping", () => {
  const g = createGivenUp();
  const first = g.add(1n, 10_000, 0);
  assert.ok(first !== undefined, "a ping after the first cancel");
  assert.equal(g.add(2n, 10_000, 1), undefined, "one ping at a time");
  assert.equal(g.held(2), 2);
  assert.equal(g.pong(first! + 7n, 3), undefined, "another nonce frees nothing");
  assert.equal(g.held(3), 2);
  const second = g.pong(first!, 4);
  assert.equal(g.held(4), 1, "the ping covered only the cancel before it");
  assert.ok(second !== undefined && second !== first, "a new ping for the cancel after it");
  assert.equal(g.pong(second!, 5), undefined, "nothing left to cover");
  assert.equal(g.held(5), 0);
});

test("an end frees a place at once; a client that shows nothing has its places freed at their release time", () => {
  const g = createGivenUp();
  g.add(1n, 1_000, 0);
  g.add(2n, 2_000, 0);
  g.ended(1n);
  assert.equal(g.held(10), 1);
  assert.equal(g.held(1_999), 1);
  assert.equal(g.held(2_000), 0);
});

test("a ping whose pong never came is not waited on forever: after its cancels' release time a new one goes", () => {
  const g = createGivenUp();
  const lost = g.add(1n, 1_000, 0);
  assert.ok(lost !== undefined);
  assert.equal(g.held(1_000), 0);
  const next = g.add(2n, 3_000, 1_500);
  assert.ok(next !== undefined && next !== lost, "a new ping covers the new cancel");
  g.pong(next!, 1_600);
  assert.equal(g.held(1_600), 0);
});

test("nonces stay clear of the heartbeat's (milliseconds since 1970)", () => {
  const g = createGivenUp();
  const nonce = g.add(1n, 1, 0)!;
  assert.ok(nonce > BigInt(Date.now()) * 1000n && nonce < 1n << 64n, String(nonce));
});
