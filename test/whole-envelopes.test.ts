/**
 * The Connect transport's body, read in whole gRPC envelopes (src/client/whole-envelopes.ts): pieces gathered at
 * a cost in their size, whole envelopes handed on, an envelope over the read limit handed on at its prefix, and
 * what is left at the end handed on for connect-es to call incomplete.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { wholeEnvelopes } from "../src/client/whole-envelopes.ts";

const envelope = (n: number, fill = 0x61) => {
  const b = Buffer.alloc(5 + n, fill);
  b[0] = 0;
  b.writeUInt32BE(n, 1);
  return b;
};
async function* pieces(parts: Buffer[]) {
  for (const p of parts) yield p;
}
async function all(parts: Buffer[], readLimit = 1 << 20) {
  const paced: number[] = [];
  const envelopes: number[] = [];
  const out: Buffer[] = [];
  const it = wholeEnvelopes(pieces(parts)[Symbol.asyncIterator](), readLimit, (bytes, n) => (paced.push(bytes), envelopes.push(n), 0));
  for await (const b of it) out.push(b);
  return { out, paced, envelopes };
}
const bytesOf = (b: Buffer) => [...b];

test("an envelope dripped a byte at a time comes out whole, once, and every piece is told to the pacer", async () => {
  const e = envelope(1_000);
  const { out, paced } = await all([...e].map((x) => Buffer.from([x])));
  assert.equal(out.length, 1);
  assert.deepEqual(bytesOf(out[0]!), bytesOf(e));
  assert.equal(paced.length, e.byteLength);
});

test("several envelopes in one piece, and one split across pieces, come out as whole envelopes in order", async () => {
  const [a, b, c] = [envelope(3, 1), envelope(0), envelope(10, 3)];
  const joined = Buffer.concat([a, b, c]);
  const { out } = await all([joined.subarray(0, 9), joined.subarray(9, 12), joined.subarray(12)]);
  assert.deepEqual(bytesOf(Buffer.concat(out)), bytesOf(joined));
  for (const piece of out) {
    let pos = 0;
    while (pos < piece.byteLength) pos += 5 + piece.readUInt32BE(pos + 1);
    assert.equal(pos, piece.byteLength, "each piece handed on ends at an envelope's end");
  }
});

test("the pacer is told, per piece, the envelopes that piece completed: charged once for the frames it brings", async () => {
  const many = Buffer.concat(Array.from({ length: 100 }, () => envelope(0)));
  const e = envelope(10);
  const { out, paced, envelopes } = await all([many, e.subarray(0, 7), e.subarray(7), Buffer.concat([e, e.subarray(0, 3)]), e.subarray(3)]);
  assert.equal(Buffer.concat(out).byteLength, many.byteLength + 3 * e.byteLength);
  assert.deepEqual(paced, [500, 7, 8, 18, 12]);
  assert.deepEqual(envelopes, [100, 0, 1, 1, 1]);
});

test("an envelope announcing more than the read limit is handed on at its prefix, and what follows as it comes", async () => {
  const prefix = Buffer.from([0, 0, 0x10, 0, 0]); // 1 MiB announced, limit 64 KiB
  const { out } = await all([prefix.subarray(0, 2), prefix.subarray(2), Buffer.from("xy"), Buffer.from("z")], 64 * 1024);
  assert.deepEqual(out.map(bytesOf), [[...prefix], [..."xy"].map((ch) => ch.charCodeAt(0)), [0x7a]]);
});

test("an incomplete envelope at the end is handed on as it is (connect-es says it is incomplete)", async () => {
  const e = envelope(100);
  const { out } = await all([e.subarray(0, 50)]);
  assert.deepEqual(out.map(bytesOf), [bytesOf(e.subarray(0, 50))]);
  assert.deepEqual((await all([])).out, []);
});
