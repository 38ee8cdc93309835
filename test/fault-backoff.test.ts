import assert from "node:assert/strict";
import { test } from "node:test";
import { ConnectError, Code } from "@connectrpc/connect";
import { createFaultBackoff, type Attempt } from "../src/client/fault-backoff.ts";
import { stableStreamMs } from "../src/client/backoff.ts";
import { markBudgetCut } from "../src/shared/budget-cut.ts";

const silent = { debug() {}, info() {}, warn() {}, error() {} };
const steps = { initialMs: 40, maxMs: 160, multiplier: 2, jitter: 0 };
/** Cuts as the guards make them: marked (src/shared/budget-cut.ts), wrapped as a stream's error may be. */
const overheadCut = () => ConnectError.from(markBudgetCut(new Error("the server sent 9 bytes in 1.0 s that carry no data (...)"), "maxServerOverheadBytesPerSecond"));
const controlCut = () => new ConnectError("in our words", Code.Unavailable, undefined, undefined, markBudgetCut(new ConnectError("the server sent 13 HTTP/2 control frames ...", Code.ResourceExhausted), "maxServerControlFramesPerSecond"));

/** A fake clock the backoff reads; its waits are real timers of the difference. */
function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}
const welcomedAt = (at: number): Attempt => ({ welcomed: true, welcomedAt: at });
/** Whether `p` settled within a few turns of the event loop (no timer of the gate's fired). */
async function settledSoon(p: Promise<void>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return done;
}

test("no fault: every dial passes at once, whatever ended", async () => {
  const c = clock();
  const f = createFaultBackoff({ backoff: steps, log: silent, name: "app-1" }, c.now);
  const signal = new AbortController().signal;
  for (const error of [undefined, new ConnectError("the server ended the stream", Code.Unavailable)]) {
    const a = welcomedAt(c.now());
    f.started(a);
    assert.equal(f.ended(a, error), false, "ended at once: not stable");
    assert.equal(await settledSoon(f.gate(signal)), true);
  }
  assert.equal(f.row, 0);
});

test("budget cuts count client-wide: the next dials go one at a time, each after a step that grows with the cuts in a row", async () => {
  const c = clock();
  const f = createFaultBackoff({ backoff: steps, log: silent, name: "app-1" }, c.now);
  const signal = new AbortController().signal;
  for (const [i, cut] of [overheadCut, controlCut, overheadCut, overheadCut].entries()) {
    const a = welcomedAt(c.now());
    f.started(a);
    assert.equal(f.ended(a, cut()), false, "a cut stream never lived");
    assert.equal(f.row, i + 1);
  }
  // 4 in a row: 40 * 2^3 = 320, capped at 160 ms.
  const first = f.gate(signal);
  assert.equal(await settledSoon(first), false, "dialled at once after a cut");
  c.advance(160);
  await first;
  // The dial that passed set the next one's wait: a second slot waits a whole step too.
  const second = f.gate(signal);
  assert.equal(await settledSoon(second), false, "two slots dialled together after a cut");
  c.advance(160);
  await second;
});

test("the row ends only after a connection lived stableStreamMs: one that ended so, or one living that long at the next cut", async () => {
  const c = clock();
  const f = createFaultBackoff({ backoff: steps, log: silent, name: "app-1" }, c.now);
  const cutOne = () => {
    const a = welcomedAt(c.now());
    f.started(a);
    f.ended(a, overheadCut());
  };
  cutOne();
  cutOne();
  assert.equal(f.row, 2);
  // A stream that ends before stableStreamMs, without a fault: the row goes on.
  const short = welcomedAt(c.now());
  f.started(short);
  c.advance(stableStreamMs - 1);
  assert.equal(f.ended(short, undefined), false);
  assert.equal(f.row, 2);
  // One that lived stableStreamMs: over.
  const long = welcomedAt(c.now());
  f.started(long);
  c.advance(stableStreamMs);
  assert.equal(f.ended(long, new ConnectError("the server ended the stream", Code.Unavailable)), true);
  assert.equal(f.row, 0);
  assert.equal(await settledSoon(f.gate(new AbortController().signal)), true);
  // A cut while another stream has lived that long: that cut starts a new row.
  cutOne();
  cutOne();
  const living = welcomedAt(c.now());
  f.started(living);
  c.advance(stableStreamMs);
  cutOne();
  assert.equal(f.row, 1);
  // A stream cut after living that long (its share shrank as others came): a row of one.
  f.ended(living, undefined);
  cutOne();
  assert.equal(f.row, 1);
  const old = welcomedAt(c.now());
  f.started(old);
  c.advance(stableStreamMs);
  assert.equal(f.ended(old, controlCut()), false);
  assert.equal(f.row, 1);
});

test("a waiting dial ends at once when its slot stops", async () => {
  const c = clock();
  const f = createFaultBackoff({ backoff: { ...steps, initialMs: 60_000, maxMs: 60_000 }, log: silent, name: "app-1" }, c.now);
  const a = welcomedAt(c.now());
  f.started(a);
  f.ended(a, overheadCut());
  const stop = new AbortController();
  const waiting = f.gate(stop.signal);
  assert.equal(await settledSoon(waiting), false);
  stop.abort();
  await waiting;
});

test("a stream ended for replica sets changing too fast is a fault too, said at most once a minute", () => {
  const c = clock();
  const said: string[] = [];
  const log = { ...silent, warn: (m: string) => void said.push(m) };
  const f = createFaultBackoff({ backoff: steps, log, name: "app-1" }, c.now);
  for (let i = 0; i < 5; i++) {
    const a = welcomedAt(c.now());
    f.started(a);
    assert.equal(f.ended(a, new ConnectError("the server sends changed replica sets faster than one a second", Code.ResourceExhausted)), false);
    c.advance(1_000);
  }
  assert.equal(f.row, 5);
  assert.equal(said.length, 1, said.join("\n"));
  assert.match(said[0]!, /^the server's replica set changes faster than the client can follow \(a server fault\): its next dials wait a backoff growing with such ends in a row, client-wide \(1 in a row, the next in 0\.0 s; option backoff\)$/);
});
