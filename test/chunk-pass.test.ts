// Chunk frames passed on piece by piece on the server's fast path (src/server/grpc-fast/chunk-pass.ts): the frame
// reader hands a message that does not fit its first piece to `onStart`, the chunk's start is read as protobuf-es
// wrote it, and any split of the stream gives the same body bytes, in order, as reading whole messages does.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { ClientFrameSchema } from "../gen/promproxy/v1/scrape_pb.ts";
import { readChunkStart } from "../src/server/grpc-fast/chunk-pass.ts";
import { createFrameReader } from "../src/server/grpc-fast/frame-reader.ts";
import { envelope, split } from "./fixtures/grpc-envelope.ts";

const chunk = (scrapeId: bigint, data: Uint8Array) => toBinary(ClientFrameSchema, create(ClientFrameSchema, { frame: { case: "chunk", value: { scrapeId, data } } }));
const head = (scrapeId: bigint) =>
  toBinary(ClientFrameSchema, create(ClientFrameSchema, { frame: { case: "head", value: { scrapeId, status: 200, headers: [{ name: "content-type", value: "text/plain" }] } } }));

test("readChunkStart finds the data of any chunk protobuf-es writes, from any prefix that holds its start", () => {
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.uint8Array({ minLength: 1, maxLength: 3000 }), fc.nat(), (id, data, cut) => {
      const m = chunk(id, data);
      const start = readChunkStart(m, m.byteLength);
      assert.ok(start);
      assert.equal(start.scrapeId, id);
      assert.equal(start.length, data.byteLength);
      assert.deepEqual(m.subarray(start.offset), data);
      // Any shorter first piece: the same start when it holds the headers, else undefined (the message is gathered).
      const first = m.subarray(0, cut % (m.byteLength + 1));
      const s = readChunkStart(first, m.byteLength);
      if (s) assert.deepEqual(s, start);
      else assert.ok(first.byteLength < start.offset);
    }),
    { numRuns: 500 },
  );
});

test("readChunkStart takes nothing protobuf-es would read otherwise: mutated messages give a start only when their data is exactly that", () => {
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 4 }), fc.nat({ max: 8 }), (id, data, edits, extra) => {
      const m = Uint8Array.from(chunk(id, data));
      for (const [at, v] of edits) m[at % m.byteLength] = v;
      // Sometimes m is only the first piece of a longer message: its start, if any, must describe that message.
      const length = m.byteLength + (extra % 3 === 0 ? 0 : extra);
      const s = readChunkStart(m, length);
      if (!s) return;
      assert.ok(s.offset <= m.byteLength);
      assert.equal(s.length, length - s.offset);
      if (length !== m.byteLength) return;
      const f = fromBinary(ClientFrameSchema, m);
      assert.equal(f.frame.case, "chunk");
      assert.equal(f.frame.value.scrapeId, s.scrapeId);
      assert.deepEqual(f.frame.value.data, m.subarray(s.offset));
    }),
    { numRuns: 2000 },
  );
  assert.equal(readChunkStart(head(1n), head(1n).byteLength), undefined);
  const withTrailer = Buffer.concat([chunk(1n, Buffer.from("abc")), Buffer.from([0x20, 0x01])]); // a field after the chunk
  assert.equal(readChunkStart(withTrailer, withTrailer.byteLength), undefined);
});

/** Reads a stream as the handler does: whole messages decoded, large chunks taken piece by piece. */
function readStream(pieces: Uint8Array[], take = true) {
  const out: { id: bigint; data: number[] }[] = [];
  const errors: ConnectError[] = [];
  const add = (id: bigint, data: Uint8Array) => {
    const last = out.at(-1);
    if (last && last.id === id) last.data.push(...data);
    else out.push({ id, data: [...data] });
  };
  let passed = 0;
  const r = createFrameReader({
    readMaxBytes: 1 << 20,
    onMessage: (m) => {
      const f = fromBinary(ClientFrameSchema, m);
      if (f.frame.case === "chunk") add(f.frame.value.scrapeId, f.frame.value.data);
    },
    onError: (e) => errors.push(e),
    onStart: take
      ? (first, length) => {
          const s = readChunkStart(first, length);
          if (!s) return undefined;
          passed++;
          const pass = (p: Uint8Array) => add(s.scrapeId, Uint8Array.from(p));
          if (first.byteLength > s.offset) pass(first.subarray(s.offset));
          return pass;
        }
      : undefined,
  });
  for (const p of pieces) r.push(p);
  r.end();
  return { out, errors, passed };
}

test("any split of a stream of chunks gives the same body bytes in order, taken piece by piece or gathered", () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ id: fc.bigInt({ min: 1n, max: 3n }), data: fc.uint8Array({ minLength: 1, maxLength: 2000 }) }), { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 60 }),
      (chunks, cuts) => {
        const bytes = envelope(chunks.map((c) => chunk(c.id, c.data)));
        const whole = readStream([bytes], false);
        const piecewise = readStream(split(bytes, cuts));
        assert.deepEqual(piecewise.errors, []);
        assert.deepEqual(piecewise.out, whole.out);
      },
    ),
    { numRuns: 300 },
  );
});

test("a stream cut inside a chunk taken piece by piece is an incomplete envelope; a throwing piece stops the reader", () => {
  const bytes = envelope([chunk(7n, Buffer.alloc(5000, 1))]);
  const cut = readStream([bytes.subarray(0, 100), bytes.subarray(100, 3000)]);
  assert.equal(cut.passed, 1);
  assert.equal(cut.errors.length, 1);
  assert.equal(cut.errors[0]!.code, Code.InvalidArgument);
  assert.match(cut.errors[0]!.message, /incomplete envelope/);

  const errors: ConnectError[] = [];
  let pieces = 0;
  const r = createFrameReader({
    readMaxBytes: 1 << 20,
    onMessage: () => assert.fail("no whole message"),
    onError: (e) => errors.push(e),
    onStart: () => () => {
      if (++pieces === 2) throw new ConnectError("chunk refused", Code.ResourceExhausted);
    },
  });
  for (let at = 0; at < bytes.byteLength; at += 1000) r.push(bytes.subarray(at, at + 1000));
  r.end();
  assert.equal(pieces, 2);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.message, "[resource_exhausted] chunk refused");
});
