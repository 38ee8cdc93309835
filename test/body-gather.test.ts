/** The bytes an exporter hands over during a pending write, gathered to leave as one chunk (src/client/targets/body-gather.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createBodyGather } from "../src/client/targets/body-gather.ts";

test("body gather: small and large pieces come out as one buffer, in order; a single large piece is not copied; empty takes are undefined", () => {
  const g = createBodyGather();
  assert.equal(g.take(), undefined);
  const big = Buffer.alloc(5000, "B");
  g.add(Buffer.from("a"));
  g.add(Buffer.from("bc"));
  g.add(big);
  g.add(Buffer.from("d"));
  g.add(Buffer.alloc(0));
  assert.equal(g.bytes, 5004);
  assert.equal(g.take()?.toString(), "abc" + "B".repeat(5000) + "d");
  assert.equal(g.bytes, 0);
  g.add(big);
  assert.equal(g.take(), big, "one large piece: the piece itself");
  g.add(Buffer.from("x"));
  g.clear();
  assert.equal(g.take(), undefined);
});

test("body gather: 100 000 one-byte pieces (an exporter's 1-byte HTTP chunks) come out whole, copied as they come", () => {
  const g = createBodyGather();
  const src = Buffer.from("0123456789".repeat(10_000));
  for (let i = 0; i < src.byteLength; i++) g.add(src.subarray(i, i + 1));
  const out = g.take();
  assert.ok(out);
  assert.equal(out.byteLength, src.byteLength);
  assert.ok(out.equals(src));
  assert.notEqual(out.buffer, src.buffer, "a copy, not views of the socket's buffers");
});
