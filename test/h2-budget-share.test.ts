/**
 * The client's HTTP/2 budgets (maxServerControlFramesPerSecond, maxServerOverheadBytesPerSecond) are shared by all
 * of its connections, each an equal share of the total (src/client/h2-budget-share.ts): a server that makes the
 * client hold many connections (naming many replicas) gets no more in all (outside review, round 18b). A control
 * bucket holds at least connectionBurst frames, whatever the share: an honest connection's first millisecond brings two.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type * as http2 from "node:http2";
import { test } from "node:test";
import { createBudgetShare, h2Budgets } from "../src/client/h2-budget-share.ts";
import { connectionBurst, guardControlFrames } from "../src/client/h2-control-budget.ts";
import { guardOverheadBytes } from "../src/client/h2-overhead-budget.ts";

const kUpdateTimer = Symbol("kUpdateTimer");

/** A stand-in session: a socket whose bytesRead the test sets, a kUpdateTimer as Node's has, and destroy(). */
function fakeSession() {
  const s = Object.assign(new EventEmitter(), {
    destroyed: false,
    socket: { bytesRead: 0 },
    destroyedWith: undefined as undefined | { error: Error; code: number },
    destroy(error: Error, code: number) {
      s.destroyed = true;
      s.destroyedWith = { error, code };
    },
  });
  (s as unknown as Record<symbol, () => void>)[kUpdateTimer] = () => {};
  return s;
}
const wake = (s: object) => (s as Record<symbol, () => void>)[kUpdateTimer]!();
const asSession = (s: object) => s as unknown as http2.Http2Session;

test("each seat gets the total over the seats live; a seat that left gives its share back, once", () => {
  const share = createBudgetShare(1000);
  const a = share.join();
  assert.equal(a.perSecond(), 1000);
  const seats = Array.from({ length: 7 }, () => share.join());
  assert.equal(a.perSecond(), 125);
  assert.equal(a.sharers(), 8);
  for (const s of seats) s.leave();
  seats[0]!.leave();
  assert.equal(a.perSecond(), 1000, "left twice counts once");
  assert.equal(a.total, 1000);
  const b = h2Budgets({ maxServerControlFramesPerSecond: 100, maxServerOverheadBytesPerSecond: 1 << 20 });
  assert.deepEqual([b.control.total, b.overhead.total], [100, 1 << 20]);
});

test("overhead: 8 sessions each at 3/4 of the client's limit are cut at their first judgement, saying the share, until what is left is within the limit", () => {
  let now = 0;
  const share = createBudgetShare(1000);
  const sessions = Array.from({ length: 8 }, () => fakeSession());
  const guards = sessions.map((s) => guardOverheadBytes(asSession(s), share.join(), () => now));
  now += 1000;
  for (const s of sessions) s.socket.bytesRead += 750;
  for (const g of guards) g.check(true);
  // Each cut session left its share to the others: the last one, alone, at 750 of 1000.
  assert.deepEqual(sessions.map((s) => s.destroyed), [true, true, true, true, true, true, true, false]);
  assert.match(
    sessions[0]!.destroyedWith!.error.message,
    /^\[resource_exhausted\] the server sent 750 bytes in 1\.0 s that carry no data \(frame headers, WINDOW_UPDATE, PRIORITY, padding, unknown frames\), more than maxServerOverheadBytesPerSecond \(1000 a second\) allows, all the client's connections together \(8 now, 125 a second each\)$/,
  );
  assert.match(sessions[6]!.destroyedWith!.error.message, /\(2 now, 500 a second each\)$/);
  now += 1000; // the survivor goes on alone at 750 a second: kept
  sessions[7]!.socket.bytesRead += 750;
  guards[7]!.check(true);
  assert.equal(sessions[7]!.destroyed, false);
});

test("overhead: 8 sessions each under their share are kept, the total at the limit", () => {
  let now = 0;
  const share = createBudgetShare(8000);
  const sessions = Array.from({ length: 8 }, () => fakeSession());
  const guards = sessions.map((s) => guardOverheadBytes(asSession(s), share.join(), () => now));
  for (let i = 0; i < 10; i++) {
    now += 2000;
    for (const s of sessions) s.socket.bytesRead += 2000;
    for (const g of guards) g.check(true);
  }
  assert.ok(sessions.every((s) => !s.destroyed));
});

test("control: 8 sessions each at half of the client's limit are cut once past the burst, until what is left is within the limit; a bucket holds the burst whatever the share", () => {
  let now = 0;
  const share = createBudgetShare(20);
  const sessions = Array.from({ length: 8 }, () => fakeSession());
  for (const s of sessions) guardControlFrames(asSession(s), share.join(), () => now);
  for (let i = 0; i < connectionBurst; i++) for (const s of sessions) wake(s); // the burst at once: kept
  assert.ok(sessions.every((s) => !s.destroyed));
  for (let i = 0; i < 100; i++) {
    now += 100; // 10 a second on each: the share is 2.5 (more as others are cut)
    for (const s of sessions) if (!s.destroyed) wake(s);
  }
  // Two left, 10 a second each: the client's 20.
  assert.equal(sessions.filter((s) => !s.destroyed).length, 2);
  assert.match(
    sessions[0]!.destroyedWith!.error.message,
    /^\[resource_exhausted\] the server sent 11 HTTP\/2 control frames \(PING\/SETTINGS\/ORIGIN\/ALTSVC\) in 0\.1 s, more than maxServerControlFramesPerSecond \(20 a second\) allows, all the client's connections together \(8 now, 2 a second each\)$/,
  );
});

test("control: 64 honest sessions sharing 100 (1.6 each): their SETTINGS and HEADERS at once, then a PING answer every 10 s, never cut", () => {
  let now = 0;
  const share = createBudgetShare(100);
  const sessions = Array.from({ length: 64 }, () => fakeSession());
  for (const s of sessions) guardControlFrames(asSession(s), share.join(), () => now);
  for (const s of sessions) wake(s), wake(s), wake(s);
  for (let i = 0; i < 60; i++) {
    now += 10_000;
    for (const s of sessions) wake(s);
  }
  assert.ok(sessions.every((s) => !s.destroyed));
});
