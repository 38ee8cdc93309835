// The fast path's incremental gRPC frame reader, fuzzed against protobuf-es: any split of a valid byte stream
// yields the same messages; garbage never escapes the reader's error path.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { ClientFrameSchema, type ClientFrame } from "../gen/promproxy/v1/scrape_pb.ts";
import { createFrameReader } from "../src/server/grpc-fast/frame-reader.ts";
import { encodeGrpcMessage } from "../src/server/grpc-fast/frame-writer.ts";
import { decodeClientFrame } from "../src/server/grpc-fast/messages.ts";
import { parseGrpcTimeout } from "../src/server/grpc-fast/timeout.ts";
import { envelope, split } from "./fixtures/grpc-envelope.ts";

const frameArb: fc.Arbitrary<ClientFrame> = fc.oneof(
  fc.record({ name: fc.string({ maxLength: 40 }), version: fc.string({ maxLength: 10 }) }).map((h) => create(ClientFrameSchema, { frame: { case: "hello", value: h } })),
  fc.record({ id: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }), data: fc.uint8Array({ maxLength: 3000 }) }).map(({ id, data }) =>
    create(ClientFrameSchema, { frame: { case: "chunk", value: { scrapeId: id, data } } }),
  ),
  fc.record({ id: fc.bigInt({ min: 0n, max: 1000n }), status: fc.integer({ min: 0, max: 999 }) }).map(({ id, status }) =>
    create(ClientFrameSchema, { frame: { case: "head", value: { scrapeId: id, status, headers: [{ name: "content-type", value: "text/plain" }] } } }),
  ),
  fc.constant(create(ClientFrameSchema, {})),
);

function readAll(pieces: Uint8Array[], readMaxBytes = 1 << 20) {
  const messages: Uint8Array[] = [];
  const errors: ConnectError[] = [];
  const r = createFrameReader({ readMaxBytes, onMessage: (m) => messages.push(Uint8Array.from(m)), onError: (e) => errors.push(e) });
  for (const p of pieces) r.push(p);
  r.end();
  return { messages, errors };
}

test("any split of a valid stream yields the same messages as protobuf-es encoded", () => {
  fc.assert(
    fc.property(fc.array(frameArb, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 40 }), (frames, cuts) => {
      const encoded = frames.map((f) => toBinary(ClientFrameSchema, f));
      const { messages, errors } = readAll(split(envelope(encoded), cuts));
      assert.deepEqual(errors, []);
      assert.equal(messages.length, frames.length);
      messages.forEach((m, i) => assert.ok(equals(ClientFrameSchema, fromBinary(ClientFrameSchema, m), frames[i]!)));
    }),
    { numRuns: 300 },
  );
});

test("garbage ends in at most one ConnectError through onError, never a throw, and nothing after it", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }), fc.integer({ min: 0, max: 100 }), (pieces, max) => {
      const { messages, errors } = readAll(pieces, max);
      assert.ok(errors.length <= 1);
      for (const e of errors) assert.ok(e instanceof ConnectError);
      for (const m of messages) assert.ok(m.byteLength <= max);
      // As the handler uses it: decoding inside onMessage; a bad message ends the reader with the decoder's error.
      const seen: ConnectError[] = [];
      const r = createFrameReader({ readMaxBytes: max, onMessage: (m) => void decodeClientFrame(m), onError: (e) => seen.push(e) });
      for (const p of pieces) r.push(p);
      r.end();
      assert.ok(seen.length <= 1 && seen.every((e) => e instanceof ConnectError));
    }),
    { numRuns: 500 },
  );
});

test("the read limit: a message of readMaxBytes passes, one byte more is refused from its prefix alone", () => {
  const ok = readAll([envelope([new Uint8Array(100)])], 100);
  assert.equal(ok.messages.length, 1);
  const seen: ConnectError[] = [];
  const r = createFrameReader({ readMaxBytes: 100, onMessage: () => assert.fail("no message"), onError: (e) => seen.push(e) });
  r.push(Uint8Array.of(0, 0, 0, 0, 101)); // the prefix alone: nothing of the body buffered
  assert.equal(seen[0]?.code, Code.ResourceExhausted);
  assert.match(seen[0]!.rawMessage, /message size 101 is larger than configured readMaxBytes 100/);
});

test("a compressed flag, an unknown flag and a stream cut inside a message each get their own error", () => {
  assert.equal(readAll([Uint8Array.of(1, 0, 0, 0, 1, 7)]).errors[0]?.code, Code.Internal);
  assert.match(readAll([Uint8Array.of(1, 0, 0, 0, 1, 7)]).errors[0]!.rawMessage, /compressed/);
  assert.match(readAll([Uint8Array.of(0x80, 0, 0, 0, 0)]).errors[0]!.rawMessage, /invalid message flags 0x80/);
  assert.equal(readAll([Uint8Array.of(0, 0, 0)]).errors[0]?.code, Code.InvalidArgument);
  assert.equal(readAll([Uint8Array.of(0, 0, 0, 0, 3, 1)]).errors[0]?.code, Code.InvalidArgument);
  assert.deepEqual(readAll([Uint8Array.of(0, 0, 0, 0, 0)]).messages, [new Uint8Array(0)]);
});

test("a message in one piece is a view of that piece, not a copy", () => {
  const bytes = envelope([Uint8Array.of(1, 2, 3)]);
  let got: Uint8Array | undefined;
  createFrameReader({ readMaxBytes: 10, onMessage: (m) => (got = m), onError: assert.fail }).push(bytes);
  assert.equal(got?.buffer, bytes.buffer);
});

test("grpc-message is percent-encoded as the gRPC spec says, and decodes back", () => {
  assert.equal(encodeGrpcMessage("name \"a\" 100% ok"), "name \"a\" 100%25 ok");
  assert.equal(encodeGrpcMessage("é\n"), "%C3%A9%0A");
  fc.assert(
    fc.property(fc.string({ unit: "grapheme", maxLength: 50 }), (s) => {
      const e = encodeGrpcMessage(s);
      assert.match(e, /^[\x20-\x7e]*$/);
      assert.equal(decodeURIComponent(e), s);
    }),
  );
});

test("grpc-timeout: every unit, and malformed values refused", () => {
  assert.equal(parseGrpcTimeout(undefined), undefined);
  assert.equal(parseGrpcTimeout("2S"), 2000);
  assert.equal(parseGrpcTimeout("1H"), 3_600_000);
  assert.equal(parseGrpcTimeout("3m"), 3);
  assert.equal(parseGrpcTimeout("5000u"), 5);
  for (const bad of ["", "S", "123456789S", "1s", "-1S", "1.5S"]) {
    assert.throws(() => parseGrpcTimeout(bad), (e: unknown) => e instanceof ConnectError && e.code === Code.InvalidArgument);
  }
});
