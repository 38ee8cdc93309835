/**
 * The fast path's hand-written reading of server frames against protobuf-es,
 * fuzzed (fast-check): every message it reads is the same object as
 * `fromBinary` gives (deep-equal, same prototypes, same key order); it
 * leaves to protobuf-es (undefined) only what it does not cover, whatever
 * protobuf-es refuses among it, and never throws. Frames are written by
 * protobuf-es, mutated, or built wire record by wire record with the
 * oddities a hostile server may send (fields in any order, twice, unknown,
 * of the wrong wire type, non-minimal and over-long varints, cut short).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { ServerFrameSchema, type ServerFrame } from "../gen/promproxy/v1/scrape_pb.ts";
import { createFrameReader } from "../src/client/grpc-fast/frame-codec.ts";
import { decodeServerFrameFast } from "../src/client/grpc-fast/server-frame-decoder.ts";
import { encodeServerFrameFast } from "../src/server/grpc-fast/server-frame-encoder.ts";

const u64 = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(0n, 1n, 127n, 128n, (1n << 53n) - 1n, 1n << 53n, (1n << 53n) + 1n, (1n << 63n) - 1n, (1n << 64n) - 1n));
const i64 = fc.oneof(fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), fc.constantFrom(0n, 10n, -1n, (1n << 63n) - 1n, -(1n << 63n)));
const i32 = fc.oneof(fc.integer({ min: -0x80000000, max: 0x7fffffff }), fc.constantFrom(0, 1, 999_999_999, -1, -0x80000000));
const u32 = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0, 80, 65535, 0xffffffff));
const str = fc.oneof(fc.string({ maxLength: 200, unit: "grapheme" }), fc.string({ maxLength: 30, unit: "binary" }), fc.constantFrom("", "\ufeffbom", "/metrics", "GET", "HEAD", "http"));
const headers = fc.array(fc.record({ name: str, value: str }), { maxLength: 5 });
const timeout = fc.option(fc.record({ seconds: i64, nanos: i32 }), { nil: undefined });

const frames: fc.Arbitrary<ServerFrame> = fc
  .oneof(
    fc.record({ scrapeId: u64, port: u32, path: str, scheme: str, headers, timeout, creditBytes: u64, method: str }).map((value) => ({ case: "order" as const, value })),
    fc.record({ scrapeId: u64, bytes: u64 }).map((value) => ({ case: "credit" as const, value })),
    fc.record({ scrapeId: u64, reason: str }).map((value) => ({ case: "cancel" as const, value })),
    fc.record({ nonce: u64 }).map((value) => ({ case: "ping" as const, value })),
    fc.record({ sessionId: str, replicaId: str, features: fc.array(str, { maxLength: 3 }) }).map((value) => ({ case: "welcome" as const, value })),
    fc.record({ replicaIds: fc.array(str, { maxLength: 3 }), replicasPerClient: u32 }).map((value) => ({ case: "replicaSet" as const, value })),
    fc.constant({ case: undefined, value: undefined }),
  )
  .map((frame) => create(ServerFrameSchema, { frame } as never));

// Wire records built one by one: any field number and wire type, varints in any of their encodings.

/** `v` as a varint of at least `minBytes` bytes (non-minimal encodings pad with 0x80 continuation bytes). */
function varint(v: bigint, minBytes = 1): number[] {
  const out: number[] = [];
  do {
    out.push(Number(v & 0x7fn));
    v >>= 7n;
  } while (v > 0n);
  while (out.length < minBytes) out.push(0);
  return out.map((b, i) => (i < out.length - 1 ? b | 0x80 : b));
}

type Rec = number[];
const fieldNo = fc.oneof(fc.integer({ min: 1, max: 9 }), fc.constantFrom(0, 15, 16, 2047, 536870911));
const wireType = fc.oneof(fc.constantFrom(0, 2), fc.integer({ min: 0, max: 7 }));
/** A varint value: small, large, past 64 bits, negative int32/int64 (10 bytes). */
const varintValue = fc.oneof(fc.bigInt({ min: 0n, max: 300n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 70n) - 1n }), fc.constantFrom(0xffffffffn, 0x100000000n, (1n << 64n) - 1n, 1n << 64n));
const varintBytes = fc.tuple(varintValue, fc.integer({ min: 1, max: 11 })).map(([v, min]) => varint(v, min));
const ascii = fc.string({ maxLength: 12 }).map((s) => [...Buffer.from(s)]);
const anyBytes = fc.uint8Array({ maxLength: 12 }).map((b) => [...b]);

function record(no: number, wt: number, payload: number[], lenPad = 1): Rec {
  const tag = varint(BigInt(no) * 8n + BigInt(wt));
  return wt === 2 ? [...tag, ...varint(BigInt(payload.length), lenPad), ...payload] : [...tag, ...payload];
}

/** A message body of records: each a field with a payload of its wire type, or of any other; nested where `inner` says. */
function body(inner: fc.Arbitrary<number[]>): fc.Arbitrary<number[]> {
  const rec = fc.oneof(
    { weight: 6, arbitrary: fc.tuple(fieldNo, varintBytes).map(([n, p]) => record(n, 0, p)) },
    { weight: 6, arbitrary: fc.tuple(fieldNo, fc.oneof(ascii, anyBytes, inner), fc.integer({ min: 1, max: 3 })).map(([n, p, pad]) => record(n, 2, p, pad)) },
    { weight: 1, arbitrary: fc.tuple(fieldNo, wireType, anyBytes).map(([n, w, p]) => record(n, w, p)) },
  );
  return fc.array(rec, { maxLength: 8 }).map((rs) => rs.flat());
}
const leaf = body(fc.constant([]));
const orderBody = body(leaf);
const built = fc
  .tuple(fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: 6 }) }, { weight: 1, arbitrary: fieldNo }), fc.oneof(orderBody, leaf), fc.array(fc.tuple(fieldNo, leaf), { maxLength: 1 }))
  .map(([no, b, more]) => Uint8Array.from([...record(no, 2, b), ...more.flatMap(([n, m]) => record(n, 2, m))]));

/**
 * Well-formed records of the right wire types in any order, each field once
 * (headers up to 3 times), varints padded up to their most bytes (10 for 64
 * bits, 5 for 32 bits and lengths).
 */
const pad = fc.integer({ min: 1, max: 5 });
const v = (max: bigint) =>
  fc.tuple(fc.oneof(fc.bigInt({ min: 0n, max }), fc.constant(0n)), fc.integer({ min: 1, max: max > 0xffffffffn ? 10 : 5 })).map(([x, p]) => varint(x, Math.max(p, varint(x).length)));
const s = fc.tuple(fc.oneof(ascii, fc.string({ maxLength: 12, unit: "grapheme" }).map((x) => [...Buffer.from(x)])), pad);
const fields = (recs: fc.Arbitrary<number[]>[]) => fc.tuple(...recs.map((r) => fc.option(r, { nil: undefined }))).chain((rs) => fc.shuffledSubarray(rs.filter((r) => r !== undefined))).map((rs) => rs.flat());
const headerRec = fields([s.map(([b, p]) => record(1, 2, b, p)), s.map(([b, p]) => record(2, 2, b, p))]);
const durationRec = fields([v((1n << 64n) - 1n).map((b) => record(1, 0, b)), v(0xffffffffn).map((b) => record(2, 0, b))]);
const orderRec = fields([
  v((1n << 64n) - 1n).map((b) => record(1, 0, b)),
  v(0xffffffffn).map((b) => record(2, 0, b)),
  s.map(([b, p]) => record(3, 2, b, p)),
  s.map(([b, p]) => record(4, 2, b, p)),
  fc.tuple(headerRec, pad).map(([b, p]) => record(5, 2, b, p)),
  fc.tuple(headerRec, pad).map(([b, p]) => record(5, 2, b, p)),
  fc.tuple(headerRec, pad).map(([b, p]) => record(5, 2, b, p)),
  fc.tuple(durationRec, pad).map(([b, p]) => record(6, 2, b, p)),
  v((1n << 64n) - 1n).map((b) => record(7, 0, b)),
  s.map(([b, p]) => record(8, 2, b, p)),
]);
const idsRec = (second: fc.Arbitrary<number[]>) => fields([v((1n << 64n) - 1n).map((b) => record(1, 0, b)), second]);
const wellFormed = fc
  .oneof(
    fc.tuple(orderRec, pad).map(([b, p]) => record(2, 2, b, p)),
    fc.tuple(idsRec(v((1n << 64n) - 1n).map((b) => record(2, 0, b))), pad).map(([b, p]) => record(3, 2, b, p)),
    fc.tuple(idsRec(s.map(([b, p]) => record(2, 2, b, p))), pad).map(([b, p]) => record(4, 2, b, p)),
    fc.tuple(idsRec(fc.constant([])), pad).map(([b, p]) => record(5, 2, b, p)),
  )
  .map((b) => Uint8Array.from(b));

function protobufEs(bytes: Uint8Array): ServerFrame | Error {
  try {
    return fromBinary(ServerFrameSchema, bytes);
  } catch (e) {
    return e as Error;
  }
}

/** The keys of every object in `v`, depth first: protobuf-es's shape, key order included. */
function shape(v: unknown): string[] {
  if (typeof v !== "object" || v === null || v instanceof Uint8Array) return [typeof v];
  return Object.entries(v).flatMap(([k, x]) => [k, ...shape(x)]);
}

function same(got: ServerFrame, expected: ServerFrame) {
  assert.deepStrictEqual(got, expected);
  assert.deepStrictEqual(shape(got), shape(expected));
}

/** Reads `bytes` both ways: the same message, or left to protobuf-es; never a throw. Returns whether it was covered. */
function check(bytes: Uint8Array): boolean {
  const got = decodeServerFrameFast(bytes);
  if (got === undefined) return false;
  const expected = protobufEs(bytes);
  assert.ok(!(expected instanceof Error), `read what protobuf-es refuses: ${String(expected)}`);
  same(got, expected);
  return true;
}

test("every order, credit, cancel and ping protobuf-es writes is read into the same message", () => {
  fc.assert(
    fc.property(frames, (frame) => {
      const bytes = toBinary(ServerFrameSchema, frame);
      const hot = ["order", "credit", "cancel", "ping", undefined].includes(frame.frame.case);
      // Negative nanos are written in 10 bytes: left to protobuf-es.
      const negativeNanos = frame.frame.case === "order" && (frame.frame.value.timeout?.nanos ?? 0) < 0;
      assert.equal(check(bytes), hot && !negativeNanos, `covered: ${frame.frame.case}`);
    }),
    { numRuns: 3000 },
  );
});

test("every frame the server's hand encoder writes is read by hand into what protobuf-es reads", () => {
  let encoded = 0;
  fc.assert(
    fc.property(frames, (frame) => {
      const withPrefix = encodeServerFrameFast(frame);
      if (withPrefix === undefined) return;
      encoded++;
      const negativeNanos = frame.frame.case === "order" && (frame.frame.value.timeout?.nanos ?? 0) < 0;
      assert.equal(check(withPrefix.subarray(5)), !negativeNanos);
    }),
    { numRuns: 2000 },
  );
  assert.ok(encoded > 500, `only ${encoded} frames written by hand`);
});

test("mutated and random bytes: the same message as protobuf-es, or left to it; never a throw", () => {
  const mutated = fc
    .tuple(frames, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat())
    .map(([frame, edits, cut]) => {
      const bytes = Buffer.from(toBinary(ServerFrameSchema, frame));
      for (const [at, b] of edits) if (bytes.length > 0) bytes[at % bytes.length] = b;
      return cut % 5 === 0 ? bytes.subarray(0, cut % (bytes.length + 1)) : bytes;
    });
  fc.assert(fc.property(fc.oneof(mutated, fc.uint8Array({ maxLength: 60 })), (bytes) => void check(bytes)), { numRuns: 5000 });
});

test("frames built record by record (any order, repeated, unknown, wrong wire types, odd varints): the same as protobuf-es or left to it", () => {
  let covered = 0;
  fc.assert(
    fc.property(built, fc.nat(), (bytes, cut) => {
      if (check(bytes)) covered++;
      void check(bytes.subarray(0, cut % (bytes.byteLength + 1)));
    }),
    { numRuns: 8000 },
  );
  assert.ok(covered > 100, `only ${covered} built frames were read by hand`);
});

test("well-formed frames with fields in any order, padded varints and lengths: read by hand into what protobuf-es reads", () => {
  fc.assert(
    fc.property(wellFormed, fc.nat(), (bytes, cut) => {
      assert.ok(check(bytes), "covered");
      void check(bytes.subarray(0, cut % (bytes.byteLength + 1)));
    }),
    { numRuns: 5000 },
  );
});

test("oddities are left to protobuf-es: a second frame, a field twice, an unknown field, a wrong wire type, a varint past 64 bits", () => {
  const cases: [string, number[]][] = [
    ["ping, ping", [0x2a, 0x02, 0x08, 0x01, 0x2a, 0x02, 0x08, 0x02]],
    ["ping, credit", [0x2a, 0x02, 0x08, 0x01, 0x1a, 0x02, 0x08, 0x02]],
    ["ping {nonce 1, nonce 2}", [0x2a, 0x04, 0x08, 0x01, 0x08, 0x02]],
    ["ping {field 15}", [0x2a, 0x04, 0x08, 0x01, 0x78, 0x01]],
    ["ping {nonce as bytes}", [0x2a, 0x03, 0x0a, 0x01, 0x01]],
    ["ping {nonce of 11 bytes}", [0x2a, 0x0c, 0x08, ...Array(10).fill(0xff), 0x01]],
    ["ping {nonce past 64 bits}", [0x2a, 0x0b, 0x08, ...Array(9).fill(0xff), 0x03]],
    ["order {timeout, timeout}", [0x12, 0x08, 0x32, 0x02, 0x08, 0x01, 0x32, 0x02, 0x10, 0x01]],
    ["order {port past 32 bits}", [0x12, 0x06, 0x10, 0x80, 0x80, 0x80, 0x80, 0x10]],
    ["cancel {reason: invalid UTF-8}", [0x22, 0x04, 0x12, 0x02, 0xc3, 0x28]],
    ["order {headers [{name: a length past the header}]}", [0x12, 0x06, 0x2a, 0x04, 0x0a, 0x03, 0x61, 0x62, 0x63]],
    ["welcome", [0x0a, 0x00]],
    ["replica_set", [0x32, 0x00]],
    ["field 15", [0x7a, 0x00]],
  ];
  for (const [what, bytes] of cases) {
    assert.equal(decodeServerFrameFast(Uint8Array.from(bytes)), undefined, what);
    void protobufEs(Uint8Array.from(bytes)); // whatever it makes of them: its business
  }
  // A 10-byte nonce up to 2^64 - 1, a non-minimal length and varint, the empty frame: read by hand.
  for (const bytes of [[0x2a, 0x0b, 0x08, ...Array(9).fill(0xff), 0x01], [0x2a, 0x83, 0x80, 0x00, 0x08, 0x81, 0x00], []]) assert.ok(check(Uint8Array.from(bytes)), String(bytes));
});

test("through the frame reader: the same messages, and the same ConnectError for a frame protobuf-es refuses", () => {
  const order = create(ServerFrameSchema, { frame: { case: "order", value: { scrapeId: 7n, path: "/metrics", scheme: "http", headers: [{ name: "accept", value: "text/plain" }], timeout: { seconds: 10n }, creditBytes: 65536n } } });
  const bad = Uint8Array.from([0x22, 0x04, 0x12, 0x02, 0xc3, 0x28]); // cancel with an invalid UTF-8 reason
  const got: ServerFrame[] = [];
  const reader = createFrameReader({ readLimit: 1 << 20, onFrame: (f) => got.push(f) });
  const env = (b: Uint8Array) => Buffer.concat([Buffer.from([0, 0, 0, 0, b.byteLength]), b]);
  const bytes = toBinary(ServerFrameSchema, order);
  reader.push(env(bytes));
  same(got[0] as ServerFrame, fromBinary(ServerFrameSchema, bytes));
  const expected = protobufEs(bad) as Error;
  assert.ok(expected instanceof Error);
  assert.throws(() => reader.push(env(bad)), (e: unknown) => e instanceof ConnectError && e.rawMessage === `parse binary: ${expected.message}`);
});

test("a large order (100,000 headers) is read in one pass into the same message", () => {
  const value = { scrapeId: 1n, path: "/metrics", headers: Array.from({ length: 100_000 }, (_, i) => ({ name: `h${i}`, value: "v" })) };
  const bytes = toBinary(ServerFrameSchema, create(ServerFrameSchema, { frame: { case: "order", value } }));
  assert.ok(check(bytes));
});

test("strings of any bytes: read as protobuf-es reads them (strict UTF-8, a BOM kept), or left to it when invalid", () => {
  const cancel = (reason: number[]) => Uint8Array.from([0x22, ...varint(BigInt(reason.length + 2)), 0x12, ...varint(BigInt(reason.length)), ...reason]);
  const tricky = [
    [0xef, 0xbf, 0xbd], // U+FFFD itself: valid
    [0xef, 0xbb, 0xbf, 0x61], // a BOM
    [0xed, 0xa0, 0x80], // a surrogate
    [0xc0, 0x80], // overlong NUL
    [0xe0, 0x80, 0xaf], // overlong
    [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
    [0xf0, 0x9f, 0x98], // cut short
    [0x61, 0xef, 0xbf, 0xbd, 0xff], // a U+FFFD and an invalid byte
  ];
  for (const t of tricky) {
    const covered = check(cancel(t));
    assert.equal(covered, !(protobufEs(cancel(t)) instanceof Error), String(t));
  }
  const bytes = fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.array(fc.constantFrom(...tricky), { maxLength: 4 }).map((ts) => Uint8Array.from(ts.flat())));
  fc.assert(
    fc.property(bytes, (b) => {
      const covered = check(cancel([...b]));
      assert.equal(covered, !(protobufEs(cancel([...b])) instanceof Error));
    }),
    { numRuns: 5000 },
  );
});
