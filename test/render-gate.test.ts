/**
 * The registry's render budget (maxRenderPercent): renders shared while they
 * run, paid from a bucket of render time, and past it a recent render reused
 * or a wait. The clock and the event loop's busy time are fakes where the
 * figures matter; the waits that must really happen are a few ms.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createRenderGate } from "../src/client/targets/render-gate.ts";

/** A fake clock and busy-time meter; `work(ms, v)` is a render that costs `ms` of busy time. */
function fake() {
  const f = { t: 0, busy: 0, renders: 0 };
  const work = (ms: number, value: string) => async () => {
    f.renders++;
    f.busy += ms;
    f.t += ms;
    return value;
  };
  return { f, work, now: () => f.t, busyMs: () => f.busy };
}

test("scrapes arriving while a render of their format runs share it; another format renders for itself", async () => {
  const gate = createRenderGate<string>({ percent: 10 });
  let renders = 0;
  let release = () => {};
  const slow = () => {
    renders++;
    return new Promise<string>((resolve) => (release = () => resolve(`r${renders}`)));
  };
  const a = gate.render("text", slow);
  const b = gate.render("text", slow);
  const c = gate.render("om", async () => "om");
  await new Promise((r) => setImmediate(r)); // the render has begun
  release();
  assert.deepEqual(await Promise.all([a, b, c]), ["r1", "r1", "om"]);
  assert.equal(renders, 1);
  assert.equal(await gate.render("text", async () => "fresh"), "fresh", "a render that ended is not shared with later scrapes");
});

test("within the budget every scrape renders; past it a recent render of the format is reused, and renders resume as the bucket refills", async () => {
  const { f, work, now, busyMs } = fake();
  const gate = createRenderGate<string>({ percent: 10, now, busyMs }); // 100 ms of render time a second, one second's worth held
  assert.equal(await gate.render("text", work(40, "a")), "a");
  assert.equal(await gate.render("text", work(40, "b")), "b");
  assert.equal(await gate.render("text", work(40, "c")), "c", "the bucket is not empty yet (20 ms left): a render may start");
  assert.equal(f.renders, 3);
  assert.equal(await gate.render("text", work(40, "d")), "c", "the bucket is 20 ms in debt: the last render is reused");
  f.t += 100; // 10 ms refilled: still in debt
  assert.equal(await gate.render("text", work(40, "e")), "c");
  f.t += 100; // out of debt
  assert.equal(await gate.render("text", work(40, "f")), "f");
  assert.equal(f.renders, 4);
});

test("a render is reused for at most maxAgeMs; an older one, or none of that format, means waiting for the budget", async () => {
  const { f, work, now, busyMs } = fake();
  const gate = createRenderGate<string>({ percent: 50, maxAgeMs: 1_000, now, busyMs }); // 500 ms of render time a second
  assert.equal(await gate.render("text", work(520, "a")), "a"); // 20 ms in debt
  assert.equal(await gate.render("text", work(1, "b")), "a");
  // Another format has nothing recent to reuse: it waits 40 ms of real time (20 ms of debt at 50 %), then renders.
  // The wait's timer does not hold the host's process open; the test's own timer does.
  const started = performance.now();
  const alive = setInterval(() => {}, 1_000);
  assert.equal(await gate.render("om", work(1, "om")), "om");
  clearInterval(alive);
  assert.ok(performance.now() - started >= 30, "it waited for the budget");
  f.t += 1_500; // "a" is now too old to hand out; the bucket is full again anyway
  assert.equal(await gate.render("text", work(1, "c")), "c");
});

test("a render kept for reuse is dropped after maxAgeMs: nothing of the host's metrics stays held", async () => {
  const gate = createRenderGate<object>({ percent: 1, maxAgeMs: 20 }); // 10 ms of render time a second
  let held: WeakRef<object> | undefined;
  await gate.render("text", async () => {
    const spin = performance.now() + 30;
    while (performance.now() < spin); // 30 ms busy: 20 ms in debt
    const value = { big: new Uint8Array(1 << 20) };
    held = new WeakRef(value);
    return value;
  });
  await new Promise((r) => setTimeout(r, 60));
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
  assert.equal(held?.deref(), undefined, "the kept render was let go");
});

test("a failed render fails the scrapes sharing it, is not reused, and the next scrape renders again", async () => {
  const { work, now, busyMs } = fake();
  const gate = createRenderGate<string>({ percent: 10, now, busyMs });
  const boom = async () => {
    throw new Error("collect failed");
  };
  const [a, b] = [gate.render("text", boom), gate.render("text", boom)];
  await assert.rejects(a, /collect failed/);
  await assert.rejects(b, /collect failed/);
  assert.equal(await gate.render("text", work(1, "ok")), "ok");
  const sync = () => {
    throw new Error("thrown at once");
  };
  await assert.rejects(gate.render("om", sync as () => Promise<string>), /thrown at once/);
  assert.equal(await gate.render("om", work(1, "om")), "om", "a render that threw at once leaves nothing pending");
});

test("at 100 % every scrape renders, even at the same time", async () => {
  const gate = createRenderGate<number>({ percent: 100 });
  let n = 0;
  const r = await Promise.all([1, 2, 3].map(() => gate.render("text", async () => ++n)));
  assert.deepEqual(r, [1, 2, 3]);
});

test("work off the event loop (a gzip on the thread pool) is charged too", async () => {
  const { f, now, busyMs } = fake();
  const gate = createRenderGate<{ v: string; gzipMs: number }>({ percent: 10, now, busyMs, offLoopMs: (r) => r.gzipMs });
  const render = (v: string) => async () => {
    f.renders++;
    f.busy += 10;
    return { v, gzipMs: 100 }; // 10 ms on the loop, 100 ms of gzip beside it: 110 ms of a 100 ms bucket
  };
  assert.equal((await gate.render("text+gzip", render("a"))).v, "a");
  assert.equal((await gate.render("text+gzip", render("b"))).v, "a", "the gzip's cost spent the bucket: the render is reused");
  assert.equal(f.renders, 1);
});

test("a scrape waits for the budget at most maxWaitMs, then renders (a render charged for a busy host's own work must not park scrapes)", async () => {
  const { f, work, now, busyMs } = fake();
  const gate = createRenderGate<string>({ percent: 10, maxWaitMs: 30, now, busyMs });
  assert.equal(await gate.render("text", work(1_000, "slow")), "slow"); // 900 ms in debt: 9 s to repay at 10 %
  const alive = setInterval(() => {}, 1_000);
  const started = performance.now();
  assert.equal(await gate.render("om", work(1, "om")), "om", "no recent render of its format: it waits, but only 30 ms");
  const waited = performance.now() - started;
  clearInterval(alive);
  assert.ok(waited >= 20 && waited < 5_000, `waited ${waited.toFixed(0)} ms`);
  assert.equal(f.renders, 2);
});

/**
 * Orders every 100 ms for `seconds`, in `formats` taken in turn, against a gate at 10 % with renders of `costMs`
 * busy time each; the clock and the gate's waits are fakes. The renders run.
 */
async function rotate(formats: string[], costMs: number, seconds: number) {
  const f = { t: 0, busy: 0, renders: 0 };
  const timers: { at: number; fire: () => void }[] = [];
  const sleep = (ms: number) => new Promise<void>((fire) => timers.push({ at: f.t + ms, fire }));
  const gate = createRenderGate<string>({ percent: 10, now: () => f.t, busyMs: () => f.busy, sleep });
  const settle = () => new Promise((r) => setImmediate(r));
  const scrapes: Promise<string>[] = [];
  for (let step = 0; step < seconds * 10; step++) {
    for (let ms = 0; ms < 100; ms += 10) {
      f.t = step * 100 + ms;
      for (const due of timers.filter((d) => d.at <= f.t)) {
        timers.splice(timers.indexOf(due), 1);
        due.fire();
      }
      await settle();
    }
    f.t = (step + 1) * 100;
    scrapes.push(
      gate.render(formats[step % formats.length] as string, async () => {
        f.renders++;
        f.busy += costMs;
        return "body";
      }),
    );
    await settle();
  }
  // Then time runs on until every scrape has its render (a wait may be followed by another).
  for (let i = 0; i < 100 && timers.length > 0; i++) {
    f.t += 1_000;
    for (const due of timers.splice(0)) due.fire();
    await settle();
  }
  await Promise.all(scrapes);
  return f.renders;
}

test("four formats rotated past the budget render no more than one format does: one render past the budget a second for the whole gate", async () => {
  const formats = ["om", "om+gzip", "text", "text+gzip"];
  // Renders of 50 ms at 10 %: the budget pays two a second. One format: those, and the latest one reused meanwhile.
  const one = await rotate(["text"], 50, 30);
  const four = await rotate(formats, 50, 30);
  // Renders of a second's budget each (100 ms), and of three (300 ms): every render past the first ones is forced.
  const oneHeavy = await rotate(["text"], 100, 30);
  const fourHeavy = await rotate(formats, 100, 30);
  const oneHeavier = await rotate(["text"], 300, 30);
  const fourHeavier = await rotate(formats, 300, 30);
  const line = `renders in 30 s of orders every 100 ms, one format / four: 50 ms ${one} / ${four}, 100 ms ${oneHeavy} / ${fourHeavy}, 300 ms ${oneHeavier} / ${fourHeavier}`;
  // Before: four formats rendered once a second each past the budget, all in turn: 55, 53 and 52 renders where one
  // format had 62, 31 and 15 (round 16a: host CPU 9-15 % with one format, 25-38 % with four).
  assert.ok(four <= one + 3, line);
  assert.ok(fourHeavy <= oneHeavy + 6, line); // a few more at first: formats that start together while the bucket is not empty
  // The documented bound: the budget (100 ms a second, a second's worth held) plus one render a second at most.
  for (const [n, ms] of [[four, 50], [fourHeavy, 100], [fourHeavier, 300]] as const) assert.ok(n * ms <= (30 + 1) * 100 + (30 + 1) * ms, line);
  assert.ok(fourHeavier <= 30 + 3, line);
});

test("four formats ordered at once on a full bucket: one render starts, the others wait for its cost, then take the budget's turns; cheap renders still run side by side", async () => {
  const f = { t: 0, busy: 0, renders: 0, running: 0, most: 0 };
  const timers: { at: number; fire: () => void }[] = [];
  const sleep = (ms: number) => new Promise<void>((fire) => timers.push({ at: f.t + ms, fire }));
  const gate = createRenderGate<string>({ percent: 10, now: () => f.t, busyMs: () => f.busy, sleep });
  const settle = async () => {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };
  /** A render of `ms` busy time that yields once (a collector awaiting), so that renders started together overlap. */
  const work = (ms: number, v: string) => async () => {
    f.renders++;
    f.most = Math.max(f.most, ++f.running);
    await new Promise((r) => setImmediate(r));
    f.busy += ms;
    f.t += ms;
    f.running--;
    return v;
  };
  const formats = ["om", "om+gzip", "text", "text+gzip"];
  // 750 ms renders (a 2 MB registry) on a full bucket of 100 ms (10 %): before, all four started in the same tick.
  const scrapes = formats.map((k) => gate.render(k, work(750, k)));
  await settle();
  assert.equal(f.renders, 1, "one render started; the others wait for its cost");
  for (let i = 0; i < 20 && timers.length > 0; i++) {
    f.t += 1_000;
    for (const due of timers.splice(0)) due.fire();
    await settle();
  }
  assert.deepEqual(await Promise.all(scrapes), formats, "every scrape got its own format");
  assert.equal(f.renders, 4);
  assert.equal(f.most, 1, "never two 750 ms renders at once");

  // Renders of 5 ms, their cost known: four at once fit the bucket together, and run side by side.
  const cheap = createRenderGate<string>({ percent: 10, now: () => f.t, busyMs: () => f.busy, sleep });
  assert.equal(await cheap.render("text", work(5, "first")), "first");
  f.most = 0;
  assert.deepEqual(await Promise.all(formats.map((k) => cheap.render(k, work(5, k)))), formats);
  assert.equal(f.most, 4);
});
