/**
 * The fast path's frame codec against protobuf-es, fuzzed (fast-check):
 * server frames split anywhere decode to the same messages, garbage only ever
 * ends in a ConnectError, and the hand-written chunk frames are byte for byte
 * what protobuf-es writes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, equals, toBinary } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { ClientFrameSchema, ScrapeErrorReason, ServerFrameSchema, type ServerFrame } from "../gen/promproxy/v1/scrape_pb.ts";
import { chunkFrameHeader, createFrameReader, encodeFrame, frameBuffers } from "../src/client/grpc-fast/frame-codec.ts";
import { envelope, split } from "./fixtures/grpc-envelope.ts";

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const text = fc.string({ maxLength: 40, unit: "binary" });
const serverFrame: fc.Arbitrary<ServerFrame> = fc
  .oneof(
    u64.map((nonce) => ({ case: "ping" as const, value: { nonce } })),
    fc.record({ scrapeId: u64, bytes: u64 }).map((value) => ({ case: "credit" as const, value })),
    fc.record({ scrapeId: u64, reason: text }).map((value) => ({ case: "cancel" as const, value })),
    fc
      .record({ scrapeId: u64, port: fc.integer({ min: 0, max: 65535 }), path: text, method: text, creditBytes: u64, headers: fc.array(fc.record({ name: text, value: text }), { maxLength: 3 }) })
      .map((value) => ({ case: "order" as const, value })),
    fc.record({ sessionId: text, replicaId: text, features: fc.array(text, { maxLength: 3 }) }).map((value) => ({ case: "welcome" as const, value })),
    fc.constant({ case: undefined, value: undefined }),
  )
  .map((frame) => create(ServerFrameSchema, { frame } as never));

/** One server frame with its gRPC prefix. */
const framed = (f: ServerFrame) => envelope([toBinary(ServerFrameSchema, f)]);

test("server frames split at arbitrary points decode to the same messages as protobuf-es", () => {
  fc.assert(
    fc.property(fc.array(serverFrame, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 30 }), (frames, cuts) => {
      const got: ServerFrame[] = [];
      const reader = createFrameReader({ readLimit: 1 << 20, onFrame: (f) => got.push(f) });
      for (const piece of split(envelope(frames.map((f) => toBinary(ServerFrameSchema, f))), cuts)) reader.push(piece);
      assert.equal(got.length, frames.length);
      frames.forEach((f, i) => assert.ok(equals(ServerFrameSchema, f, got[i] as ServerFrame), `frame ${i}`));
      assert.ok(reader.idle);
    }),
    { numRuns: 500 },
  );
});

test("garbage never throws anything but a ConnectError, and nothing after it is read", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 10 }), fc.integer({ min: 0, max: 400 }), (bytes, cuts, limit) => {
      const reader = createFrameReader({ readLimit: limit, onFrame: () => {} });
      for (const piece of split(Buffer.from(bytes), cuts)) {
        try {
          reader.push(piece);
        } catch (e) {
          assert.ok(e instanceof ConnectError, `${String(e)}`);
          return;
        }
      }
    }),
    { numRuns: 2000 },
  );
});

test("a frame over the read limit, a compressed flag or a reserved flag is refused at its prefix", () => {
  const refused = (bytes: number[], limit = 100) => {
    const reader = createFrameReader({ readLimit: limit, onFrame: () => assert.fail("no frame may come out") });
    try {
      reader.push(Uint8Array.from(bytes));
    } catch (e) {
      assert.ok(e instanceof ConnectError);
      return e;
    }
    return assert.fail("refused");
  };
  assert.match(refused([0, 0, 0, 0, 101]).rawMessage, /frame of 101 bytes larger than the client's read limit of 100 bytes/);
  assert.match(refused([1, 0, 0, 0, 2, 8, 1]).rawMessage, /compressed/);
  assert.match(refused([0x80, 0, 0, 0, 0]).rawMessage, /flags 0x80/);
  // At the limit: read.
  const got: ServerFrame[] = [];
  const at = framed(create(ServerFrameSchema, { frame: { case: "cancel", value: { scrapeId: 1n, reason: "x".repeat(90) } } }));
  createFrameReader({ readLimit: at.byteLength - 5, onFrame: (f) => got.push(f) }).push(at);
  assert.equal(got.length, 1);
});

test("end and pong frames written by hand equal protobuf-es's encoding", () => {
  fc.assert(
    fc.property(u64, (id) => {
      for (const frame of [{ frame: { case: "end" as const, value: { scrapeId: id } } }, { frame: { case: "pong" as const, value: { nonce: id } } }]) {
        const body = toBinary(ClientFrameSchema, create(ClientFrameSchema, frame));
        const got = Buffer.concat(frameBuffers(frame));
        assert.equal(got.readUInt32BE(1), body.byteLength);
        assert.deepEqual(got.subarray(5), Buffer.from(body));
      }
    }),
    { numRuns: 500 },
  );
  const withError = { frame: { case: "end" as const, value: { scrapeId: 3n, error: { reason: ScrapeErrorReason.TIMEOUT, message: "slow" } } } };
  assert.deepEqual(Buffer.concat(frameBuffers(withError)).subarray(5), Buffer.from(toBinary(ClientFrameSchema, create(ClientFrameSchema, withError))));
});

test("head frames written by hand equal protobuf-es's encoding", () => {
  const str = fc.oneof(fc.string({ maxLength: 300, unit: "grapheme" }), fc.string({ maxLength: 40, unit: "binary" }), fc.constantFrom("\ud800", "a\udc00b"));
  fc.assert(
    fc.property(u64, fc.integer({ min: 0, max: 0xffffffff }), fc.array(fc.record({ name: str, value: str }), { maxLength: 5 }), (scrapeId, status, headers) => {
      const frame = { frame: { case: "head" as const, value: { scrapeId, status, headers } } };
      const body = toBinary(ClientFrameSchema, create(ClientFrameSchema, frame));
      const got = Buffer.concat(frameBuffers(frame));
      assert.equal(got.readUInt32BE(1), body.byteLength);
      assert.deepEqual(got.subarray(5), Buffer.from(body));
    }),
    { numRuns: 1000 },
  );
});

test("chunk frames written around the target's bytes equal protobuf-es's encoding, without copying the bytes", () => {
  fc.assert(
    fc.property(u64, fc.uint8Array({ maxLength: 600 }), (scrapeId, data) => {
      const frame = { frame: { case: "chunk" as const, value: { scrapeId, data } } };
      const bufs = frameBuffers(frame);
      assert.deepEqual(Buffer.concat(bufs), encodeFrame(frame));
      const expected = toBinary(ClientFrameSchema, create(ClientFrameSchema, frame));
      assert.equal(encodeFrame(frame).readUInt32BE(1), expected.byteLength);
      if (data.byteLength > 0) assert.equal(bufs[1], data, "the data is the caller's own buffer");
    }),
    { numRuns: 500 },
  );
  // Large lengths (multi-byte varints up to 1 MiB).
  for (const n of [127, 128, 16383, 16384, (1 << 20) - 64, 1 << 20]) {
    const data = new Uint8Array(n);
    assert.deepEqual(Buffer.concat(frameBuffers({ frame: { case: "chunk", value: { scrapeId: 300n, data } } })), encodeFrame({ frame: { case: "chunk", value: { scrapeId: 300n, data } } }));
    assert.equal(chunkFrameHeader(300n, n).byteLength < 20, true);
  }
});

test("result frames written around the target's bytes equal protobuf-es's encoding, without copying the bytes", () => {
  const str = fc.oneof(fc.string({ maxLength: 200, unit: "grapheme" }), fc.string({ maxLength: 40, unit: "binary" }), fc.constantFrom("\ud800", "a\udc00b"));
  fc.assert(
    fc.property(u64, fc.integer({ min: 0, max: 0xffffffff }), fc.array(fc.record({ name: str, value: str }), { maxLength: 4 }), fc.uint8Array({ maxLength: 600 }), (scrapeId, status, headers, data) => {
      const frame = { frame: { case: "result" as const, value: { scrapeId, status, headers, data } } };
      const bufs = frameBuffers(frame);
      const body = toBinary(ClientFrameSchema, create(ClientFrameSchema, frame));
      const got = Buffer.concat(bufs);
      assert.equal(got.readUInt32BE(1), body.byteLength);
      assert.deepEqual(got.subarray(5), Buffer.from(body));
      if (data.byteLength > 0) assert.equal(bufs[1], data, "the data is the caller's own buffer");
    }),
    { numRuns: 1000 },
  );
  for (const n of [127, 128, 16383, 16384, (1 << 20) - 64]) {
    const frame = { frame: { case: "result" as const, value: { scrapeId: 300n, status: 200, headers: [{ name: "content-type", value: "text/plain" }], data: new Uint8Array(n) } } };
    assert.deepEqual(Buffer.concat(frameBuffers(frame)), encodeFrame(frame));
  }
  const withError = { frame: { case: "result" as const, value: { scrapeId: 3n, status: 200, data: Buffer.from("ab"), error: { reason: ScrapeErrorReason.TIMEOUT, message: "slow" } } } };
  assert.deepEqual(Buffer.concat(frameBuffers(withError)), encodeFrame(withError));
});

test("a server's unknown fields are not kept: a welcome packed with 30,000 of them reads as the welcome alone", () => {
  const welcome = toBinary(ServerFrameSchema, create(ServerFrameSchema, { frame: { case: "welcome", value: { sessionId: "s", replicaId: "r" } } }));
  // Field 99 (varint 0) 30,000 times: 3 bytes each on the wire, an object each if kept.
  const unknown = Buffer.alloc(30_000 * 3);
  for (let i = 0; i < 30_000; i++) unknown.set([0x98, 0x06, 0x00], i * 3);
  const got: ServerFrame[] = [];
  const reader = createFrameReader({ readLimit: 1 << 20, onFrame: (f) => got.push(f) });
  reader.push(envelope([Buffer.concat([welcome, unknown])]));
  assert.equal(got.length, 1);
  assert.equal(got[0]!.frame.case, "welcome");
  assert.equal((got[0] as { $unknown?: unknown[] }).$unknown, undefined, "nothing of them kept");
});
