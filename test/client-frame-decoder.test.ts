/**
 * The fast path's hand-written reading of client frames against protobuf-es,
 * fuzzed (fast-check): every message it reads gives the same object as
 * `fromBinary`; it leaves to protobuf-es (undefined) only what it does not
 * cover, and never throws.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { ClientFrameSchema, type ClientFrame } from "../gen/promproxy/v1/scrape_pb.ts";
import { decodeClientFrameFast } from "../src/server/grpc-fast/client-frame-decoder.ts";

const u64 = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(0n, 1n, 127n, 128n, (1n << 53n) + 1n, (1n << 64n) - 1n));
const u32 = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0, 200, 599));
const str = fc.oneof(fc.string({ maxLength: 200, unit: "grapheme" }), fc.string({ maxLength: 30, unit: "binary" }), fc.constantFrom("", "\ufeffbom"));
const headers = fc.array(fc.record({ name: str, value: str }), { maxLength: 4 });
const data = fc.uint8Array({ maxLength: 300 });
const error = fc.option(fc.record({ reason: fc.integer({ min: 0, max: 7 }), message: str }), { nil: undefined });

const frames: fc.Arbitrary<ClientFrame> = fc
  .oneof(
    fc.record({ scrapeId: u64, status: u32, headers }).map((value) => ({ case: "head" as const, value })),
    fc.record({ scrapeId: u64, data }).map((value) => ({ case: "chunk" as const, value })),
    fc.record({ scrapeId: u64, error }).map((value) => ({ case: "end" as const, value })),
    fc.record({ nonce: u64 }).map((value) => ({ case: "pong" as const, value })),
    fc.record({ scrapeId: u64, status: u32, headers, data, error }).map((value) => ({ case: "result" as const, value })),
    fc.constant({ case: undefined, value: undefined }),
  )
  .map((frame) => create(ClientFrameSchema, { frame } as never));

function protobufEs(bytes: Uint8Array): ClientFrame | Error {
  try {
    return fromBinary(ClientFrameSchema, bytes);
  } catch (e) {
    return e as Error;
  }
}

/** Equal as protobuf-es sees messages, with the same own fields (an unset message left out, as it does). */
function same(got: ClientFrame, expected: ClientFrame) {
  assert.ok(equals(ClientFrameSchema, got, expected), "equals()");
  assert.deepEqual(Buffer.from(toBinary(ClientFrameSchema, got)), Buffer.from(toBinary(ClientFrameSchema, expected)));
  assert.deepEqual(Object.keys(got.frame.value ?? {}), Object.keys(expected.frame.value ?? {}));
  const g = got.frame.value as Record<string, unknown> | undefined;
  const e = expected.frame.value as Record<string, unknown> | undefined;
  for (const k of Object.keys(e ?? {})) assert.deepEqual(g?.[k], e?.[k], k);
}

test("every frame protobuf-es writes is read into the same message", () => {
  fc.assert(
    fc.property(frames, (frame) => {
      const bytes = toBinary(ClientFrameSchema, frame);
      const got = decodeClientFrameFast(bytes);
      assert.ok(got, "covered");
      same(got, fromBinary(ClientFrameSchema, bytes));
    }),
    { numRuns: 3000 },
  );
});

test("mutated and random bytes: the same message as protobuf-es, or left to it; never a throw", () => {
  const mutated = fc
    .tuple(frames, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat())
    .map(([frame, edits, cut]) => {
      const bytes = Buffer.from(toBinary(ClientFrameSchema, frame));
      for (const [at, b] of edits) if (bytes.length > 0) bytes[at % bytes.length] = b;
      return cut % 5 === 0 ? bytes.subarray(0, cut % (bytes.length + 1)) : bytes;
    });
  fc.assert(
    fc.property(fc.oneof(mutated, fc.uint8Array({ maxLength: 60 })), (bytes) => {
      const got = decodeClientFrameFast(bytes);
      if (got === undefined) return;
      const expected = protobufEs(bytes);
      assert.ok(!(expected instanceof Error), `read what protobuf-es refuses: ${String(expected)}`);
      same(got, expected);
    }),
    { numRuns: 5000 },
  );
});

test("a hello, unknown fields, invalid UTF-8 and repeated messages are left to protobuf-es", () => {
  const hello = toBinary(ClientFrameSchema, create(ClientFrameSchema, { frame: { case: "hello", value: { name: "app" } } }));
  assert.equal(decodeClientFrameFast(hello), undefined);
  const withUnknown = Buffer.from([0x1a, 0x04, 0x08, 0x01, 0x78, 0x01]); // chunk {scrape_id: 1, field 15: 1}
  assert.equal(decodeClientFrameFast(withUnknown), undefined);
  const badUtf8 = Buffer.from([0x12, 0x06, 0x1a, 0x04, 0x0a, 0x02, 0xc3, 0x28]); // head {headers: [{name: invalid}]}
  assert.equal(decodeClientFrameFast(badUtf8), undefined);
  assert.ok(protobufEs(badUtf8) instanceof Error, "protobuf-es refuses it");
  const twoFrames = Buffer.concat([Buffer.from([0x22, 0x02, 0x08, 0x01]), Buffer.from([0x22, 0x02, 0x08, 0x02])]); // end, end
  assert.equal(decodeClientFrameFast(twoFrames), undefined);
});
