/**
 * The control-frame budget of an HTTP/2 session (maxServerControlFramesPerSecond):
 * a bucket holding one second's worth, filling at the limit; past it the
 * session is destroyed with ENHANCE_YOUR_CALM and an error that says what the
 * server did. Counted where a frame wakes JavaScript on the session itself (its
 * kUpdateTimer), not what its streams wake it for; where Node names no such
 * symbol, by the four events.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type * as http2 from "node:http2";
import { test } from "node:test";
import { guardControlFrames } from "../src/client/h2-control-budget.ts";
import { budgetCutOf } from "../src/shared/budget-cut.ts";

const kUpdateTimer = Symbol("kUpdateTimer");

/** A stand-in session: an emitter with destroy(), and (unless `events`) a kUpdateTimer as Node's has. */
function fakeSession(events = false) {
  const s = Object.assign(new EventEmitter(), {
    destroyed: false,
    wakeups: 0,
    destroyedWith: undefined as undefined | { error: Error; code: number },
    destroy(error: Error, code: number) {
      s.destroyed = true;
      s.destroyedWith = { error, code };
    },
  });
  if (!events) (s as unknown as Record<symbol, () => void>)[kUpdateTimer] = () => void s.wakeups++;
  return s;
}
const wake = (s: object) => (s as Record<symbol, () => void>)[kUpdateTimer]!();

test("at the limit a session is kept; one frame past a second's worth ends it, saying what the server did", () => {
  let now = 0;
  const s = fakeSession();
  guardControlFrames(s as unknown as http2.Http2Session, 20, () => now);
  for (let i = 0; i < 20; i++) wake(s); // a second's worth at once
  for (let i = 0; i < 100; i++) {
    now += 50; // then 20 a second, for 5 s
    wake(s);
  }
  assert.equal(s.destroyed, false);
  assert.equal(s.wakeups, 120, "Node's own timer refresh still runs");
  wake(s);
  assert.equal(s.destroyed, true);
  assert.equal(s.destroyedWith?.code, 0xb, "ENHANCE_YOUR_CALM");
  assert.match(s.destroyedWith!.error.message, /the server sent 121 HTTP\/2 control frames \(PING\/SETTINGS\/ORIGIN\/ALTSVC\) in 5\.0 s, more than maxServerControlFramesPerSecond \(20 a second\) allows/);
  assert.equal(budgetCutOf(s.destroyedWith!.error), "maxServerControlFramesPerSecond", "marked as that budget's cut");
});

test("what a stream wakes JavaScript for (its DATA, its writes) is not a control frame", () => {
  const s = fakeSession();
  const guard = guardControlFrames(s as unknown as http2.Http2Session, 10, () => 0);
  const stream = { [kUpdateTimer]: () => wake(s) }; // as Node's Http2Stream refreshes its session's timer
  guard.exempt(stream as unknown as http2.Http2Stream);
  for (let i = 0; i < 10_000; i++) stream[kUpdateTimer]();
  assert.equal(s.destroyed, false);
  assert.equal(s.wakeups, 10_000);
  for (let i = 0; i < 11; i++) wake(s);
  assert.equal(s.destroyed, true);
});

test("without Node's kUpdateTimer the four events are counted; listeners are there either way (nghttp2 hands the frames to JavaScript only then)", () => {
  for (const events of [true, false]) {
    const s = fakeSession(events);
    guardControlFrames(s as unknown as http2.Http2Session, 10, () => 0);
    for (const e of ["ping", "remoteSettings", "altsvc", "origin"]) assert.equal(s.listenerCount(e), 1, e);
    for (let i = 0; i < 11; i++) s.emit(["ping", "remoteSettings", "altsvc", "origin"][i % 4]!);
    assert.equal(s.destroyed, events, events ? "counted by the events" : "not counted twice: the frames wake kUpdateTimer as well");
  }
});
