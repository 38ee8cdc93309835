import assert from "node:assert/strict";
import { test } from "node:test";
import { withGetters } from "../src/shared/with-getters.ts";

test("withGetters: each object reads its own live values; the getters are inherited, not own properties", () => {
  const make = (start: number) => {
    let n = start;
    return withGetters({ bump: () => void n++ }, { count: () => n, twice: () => n * 2 });
  };
  const a = make(1);
  const b = make(10);
  a.bump();
  assert.equal(a.count, 2);
  assert.equal(a.twice, 4);
  assert.equal(b.count, 10);
  b.bump();
  assert.equal(b.twice, 22);
  assert.deepEqual(Object.keys(a), ["bump"]);
  assert.equal("count" in { ...a }, false);
  assert.equal(Object.getPrototypeOf(a), Object.getPrototypeOf(b));
  assert.equal(typeof a.toString, "function"); // still an Object
});

test("withGetters: objects with other getter names get their own prototype", () => {
  const a = withGetters({}, { x: () => 1 });
  const b = withGetters({}, { y: () => 2 });
  assert.notEqual(Object.getPrototypeOf(a), Object.getPrototypeOf(b));
  assert.equal((a as { y?: number }).y, undefined);
  assert.equal(b.y, 2);
});
