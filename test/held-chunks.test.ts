/**
 * The relay's first-turn hold (src/server/listen/held-chunks.ts, turn-cork.ts's atTurnEnd): lists are used again
 * with their slots emptied, at most 64 of at most 1024 slots kept; every write of a turn runs at its end, in order,
 * with the slots of a busy turn used again the next; one that throws holds none of the others back.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { holdChunks, releaseChunks } from "../src/server/listen/held-chunks.ts";
import { atTurnEnd } from "../src/server/listen/turn-cork.ts";

const chunk = (n: number) => new Uint8Array(n);

test("a list given back is taken again, emptied: no chunk of the last scrape is kept or seen", () => {
  const a = holdChunks(chunk(1));
  for (let i = 2; i <= 40; i++) a.items[a.n++] = chunk(i);
  releaseChunks(a);
  assert.equal(a.n, 0);
  assert.ok(a.items.every((c) => c === undefined), "the chunks are no longer referenced");
  const b = holdChunks(chunk(7));
  assert.equal(b, a, "the same list, its slots kept");
  assert.equal(b.n, 1);
  assert.equal(b.items[0]!.byteLength, 7);
  releaseChunks(b);
});

test("at most 64 lists are kept, and none of more than 1024 slots", () => {
  const big = holdChunks(chunk(1));
  for (let i = 0; i < 1024; i++) big.items[big.n++] = chunk(1);
  releaseChunks(big); // 1025 slots: left to the collector
  assert.notEqual(holdChunks(chunk(1)), big);
  const lists = Array.from({ length: 100 }, () => holdChunks(chunk(1)));
  for (const l of lists) releaseChunks(l);
  const again = new Set(Array.from({ length: 100 }, () => holdChunks(chunk(1))));
  assert.equal([...again].filter((l) => lists.includes(l)).length, 64);
});

test("atTurnEnd: every write of the turn runs at its end, in order, and a later turn's too", async () => {
  const ran: number[] = [];
  for (let i = 0; i < 2000; i++) atTurnEnd(() => ran.push(i));
  assert.equal(ran.length, 0, "not before the turn ends");
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(ran, Array.from({ length: 2000 }, (_, i) => i));
  atTurnEnd(() => ran.push(-1));
  atTurnEnd(() => atTurnEnd(() => ran.push(-2))); // one added while they run runs in the same end
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(ran.slice(2000), [-1, -2]);
});

test("atTurnEnd: a write that throws does not keep the turn's other writes back; its error is thrown after them", async () => {
  // In a process of its own: the error leaves a setImmediate callback, an uncaught exception.
  const turnCork = fileURLToPath(new URL("../src/server/listen/turn-cork.ts", import.meta.url));
  const script = `
    const { atTurnEnd } = await import(${JSON.stringify(turnCork)});
    const ran = [];
    process.on("uncaughtException", (e) => { ran.push("thrown: " + e.message); setImmediate(() => console.log(JSON.stringify(ran))); });
    atTurnEnd(() => ran.push(1));
    atTurnEnd(() => { throw new Error("boom"); });
    atTurnEnd(() => ran.push(3));
    atTurnEnd(() => { throw new Error("second"); });
    atTurnEnd(() => ran.push(5));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], { timeout: 20_000 });
  assert.deepEqual(JSON.parse(stdout), [1, 3, 5, "thrown: boom"]);
});
