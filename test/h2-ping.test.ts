/**
 * The client's own HTTP/2 PINGs (src/client/h2-ping.ts), on a stand-in session and mock timers: one PING
 * unanswered at a time, a drop after pingTimeoutMs of ticks that came on time, a host stall not held against
 * the server, a host late on every tick still dropping a dead server, and nothing touching a destroyed session.
 * test/stalled-loop.test.ts and test/e2e/hostile-server-ping.test.ts run it on real sessions.
 */
import "./quiet-mock-timers.ts";
import assert from "node:assert/strict";
import { afterEach, beforeEach, mock, test } from "node:test";
import type * as http2 from "node:http2";
import { pingSession } from "../src/client/h2-ping.ts";

/** What pingSession uses of a client session, with its PINGs answered (or not) by the test. */
function standIn() {
  const pending: ((err: Error | null) => void)[] = [];
  const closers = new Set<() => void>();
  const s = {
    destroyed: false,
    pings: 0,
    error: undefined as Error | undefined,
    ping(cb: (err: Error | null) => void) {
      if (s.destroyed) throw new Error("The session has been destroyed (ERR_HTTP2_INVALID_SESSION)");
      s.pings++;
      pending.push(cb);
      return true;
    },
    answer: () => pending.shift()?.(null),
    get unanswered() {
      return pending.length;
    },
    destroy(error?: Error) {
      s.destroyed = true;
      s.error = error;
      for (const cb of pending.splice(0)) cb(new Error("ERR_HTTP2_PING_CANCEL"));
      for (const c of closers) c();
    },
    on(_event: "close", f: () => void) {
      closers.add(f);
    },
    off(_event: "close", f: () => void) {
      closers.delete(f);
    },
  };
  return s;
}

const o = { intervalMs: 200, timeoutMs: 100 }; // judged every 25 ms while a PING is out
let stalled = 0; // ms the host's clock ran ahead of the timers: a blocked loop
const now = () => Date.now() + stalled;
const asSession = (s: ReturnType<typeof standIn>) => s as unknown as http2.ClientHttp2Session;
/** Runs the timers for `ms`, a millisecond at a time (within one tick() Node 22's mock Date reads its end for every timer). */
const run = (ms: number) => {
  for (let i = 0; i < ms; i++) mock.timers.tick(1);
};

beforeEach(() => {
  stalled = 0;
  mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: 0 });
});
afterEach(() => mock.timers.reset());

test("a PING once the session was quiet for pingIntervalMs, one at a time; unanswered for pingTimeoutMs, the session is destroyed", () => {
  const s = standIn();
  const p = pingSession(asSession(s), o, now);
  run(199);
  assert.equal(s.pings, 0);
  run(1);
  assert.equal(s.pings, 1);
  s.answer();
  run(200);
  assert.equal(s.pings, 2, "answered: the next one an interval later");
  run(100);
  assert.equal(s.destroyed, false, "not before pingTimeoutMs");
  run(25);
  assert.equal(s.destroyed, true);
  assert.match(String((s.error as { rawMessage?: string } | undefined)?.rawMessage), /^the server answered no HTTP\/2 PING within 0\.1s \(pingTimeoutMs\)$/);
  assert.equal(s.pings, 2, "never a second PING while one is unanswered");
  assert.equal(p.sent, 2);
  run(10_000);
  assert.equal(s.pings, 2, "nothing after the drop");
});

test("something read (alive) puts the next PING off a whole interval", () => {
  const s = standIn();
  const p = pingSession(asSession(s), o, now);
  run(150);
  p.alive();
  run(199);
  assert.equal(s.pings, 0);
  run(1);
  assert.equal(s.pings, 1);
  p.stop();
});

test("a host stall right after a PING is not held against the server: its answer, read after the stall, keeps the session", () => {
  const s = standIn();
  const p = pingSession(asSession(s), o, now);
  run(200);
  assert.equal(s.unanswered, 1);
  stalled += 2_000; // the loop blocked for 2 s; the first tick after it runs before the socket is read
  run(25);
  assert.equal(s.destroyed, false, "the late tick judges nothing");
  s.answer(); // read right after
  for (let i = 0; i < 40; i++) {
    run(25);
    s.answer(); // on time from here
  }
  assert.equal(s.destroyed, false);
  assert.ok(s.pings >= 4);
  p.stop();
});

test("after a stall, a server that really answers nothing is dropped once pingTimeoutMs has passed on time", () => {
  const s = standIn();
  pingSession(asSession(s), o, now);
  run(200);
  stalled += 2_000;
  run(25); // late: passes
  run(100);
  assert.equal(s.destroyed, false, "100 ms on time since the stall: not more than pingTimeoutMs yet");
  run(25);
  assert.equal(s.destroyed, true);
});

test("a host late on every tick still drops a server that answers nothing, about twice pingTimeoutMs later", () => {
  const s = standIn();
  pingSession(asSession(s), o, now);
  run(200);
  let ticks = 0;
  while (!s.destroyed && ticks < 20) {
    stalled += 50; // every tick 75 ms after the last: more than a period (25 ms) late
    run(25);
    ticks++;
  }
  assert.ok(s.destroyed, "dropped");
  assert.ok(ticks <= 4, `after ${ticks} ticks of 75 ms`);
});

test("a session destroyed by someone else is never pinged again, and its close stops the timers", () => {
  const s = standIn();
  const p = pingSession(asSession(s), o, now);
  run(200);
  s.answer();
  s.destroy(); // a GOAWAY, an abort, a socket error
  assert.doesNotThrow(() => run(10_000));
  assert.equal(s.pings, 1);
  assert.equal(p.sent, 1);

  // Destroyed without its close seen yet: the due timer finds it dead and stops, without calling ping().
  const t = standIn();
  pingSession(asSession(t), o, now);
  t.destroyed = true;
  assert.doesNotThrow(() => run(10_000));
  assert.equal(t.pings, 0);
});

test("destroyed while a PING is out (its answer cancelled): the judging stops, nothing thrown", () => {
  const s = standIn();
  pingSession(asSession(s), o, now);
  run(200);
  s.destroy();
  assert.doesNotThrow(() => run(10_000));
  assert.equal(s.error, undefined, "not destroyed a second time");
});

test("with onTick and tickMs the quiet wait ticks that often (the overhead check's cadence), and the PING still waits its interval", () => {
  const s = standIn();
  let ticks = 0;
  pingSession(asSession(s), { ...o, onTick: () => void ticks++, tickMs: 30 }, now);
  run(190);
  assert.equal(s.pings, 0, "no PING before the interval");
  assert.ok(ticks >= 5 && ticks <= 7, `${ticks} ticks in 190 ms at 30 ms`);
  run(20);
  assert.equal(s.pings, 1, "the PING at its interval");
  // Without tickMs the quiet wait ticks only when the PING is due.
  const quiet = standIn();
  let few = 0;
  pingSession(asSession(quiet), { ...o, onTick: () => void few++ }, now);
  run(190);
  assert.equal(few, 0);
  quiet.destroy();
  s.destroy();
});
