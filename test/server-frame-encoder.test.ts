/**
 * The fast path's hand-written server frames (order, credit, cancel, ping)
 * against protobuf-es, fuzzed (fast-check): byte for byte the same message,
 * or `undefined` (left to protobuf-es) for what the encoder does not cover.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { ServerFrameSchema } from "../gen/promproxy/v1/scrape_pb.ts";
import { encodeServerFrameFast } from "../src/server/grpc-fast/server-frame-encoder.ts";
import type { ServerFrameInit } from "../src/server/session.ts";

const u64 = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(0n, 1n, 127n, 128n, (1n << 64n) - 1n));
const u32 = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0, 127, 128, 65535));
const str = fc.oneof(fc.string({ maxLength: 300, unit: "grapheme" }), fc.string({ maxLength: 40, unit: "binary" }), fc.constantFrom("", "\ud800", "a\udc00b"));
const header = fc.record({ name: str, value: str });
const withTypeName = header.map((h) => ({ $typeName: "promproxy.v1.Header" as const, ...h }));
const timeout = fc.option(
  fc.record({ seconds: fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }), nanos: fc.integer({ min: 0, max: 999_999_999 }) }, { requiredKeys: [] }),
  { nil: undefined },
);

const frames: fc.Arbitrary<ServerFrameInit> = fc.oneof(
  fc
    .record(
      { scrapeId: u64, port: u32, path: str, scheme: str, method: str, creditBytes: u64, headers: fc.array(fc.oneof(header, withTypeName), { maxLength: 5 }), timeout },
      { requiredKeys: [] },
    )
    .map((value) => ({ frame: { case: "order" as const, value } })),
  fc.record({ scrapeId: u64, bytes: u64 }, { requiredKeys: [] }).map((value) => ({ frame: { case: "credit" as const, value } })),
  fc.record({ scrapeId: u64, reason: str }, { requiredKeys: [] }).map((value) => ({ frame: { case: "cancel" as const, value } })),
  fc.record({ nonce: u64 }, { requiredKeys: [] }).map((value) => ({ frame: { case: "ping" as const, value } })),
);

function expected(frame: ServerFrameInit): Buffer {
  const body = toBinary(ServerFrameSchema, create(ServerFrameSchema, frame));
  const out = Buffer.alloc(5 + body.byteLength);
  out.writeUInt32BE(body.byteLength, 1);
  out.set(body, 5);
  return out;
}

test("orders, credit, cancels and pings written by hand equal protobuf-es's encoding", () => {
  fc.assert(
    fc.property(frames, (frame) => {
      const got = encodeServerFrameFast(frame);
      assert.ok(got, "covered");
      assert.deepEqual(got, expected(frame));
    }),
    { numRuns: 3000 },
  );
});

test("an order as the session builds it is covered; what the encoder does not cover is left to protobuf-es", () => {
  const order = {
    frame: {
      case: "order" as const,
      value: {
        scrapeId: 7n, port: 9100, path: "/metrics?name[]=up", scheme: "http", method: "",
        headers: [{ $typeName: "promproxy.v1.Header" as const, name: "accept", value: "text/plain;version=0.0.4" }],
        timeout: { seconds: 9n, nanos: 500_000_000 }, creditBytes: 2n << 20n,
      },
    },
  };
  assert.deepEqual(encodeServerFrameFast(order), expected(order));
  const unknown = [{ no: 99, wireType: 0, data: new Uint8Array([1]) }];
  for (const frame of [
    { frame: { case: "welcome" as const, value: { sessionId: "s" } } },
    { frame: { case: "order" as const, value: { scrapeId: 1n, timeout: { seconds: -1n } } } },
    { frame: { case: "order" as const, value: { scrapeId: 1n, timeout: { nanos: -1 } } } },
    { frame: { case: "order" as const, value: { scrapeId: 1n, port: 1.5 } } },
    { frame: { case: "order" as const, value: { scrapeId: 1n, $unknown: unknown } } },
    { frame: { case: "credit" as const, value: { scrapeId: -1n } } },
    { frame: { case: "ping" as const, value: { nonce: 1n << 64n } } },
    { $unknown: unknown, frame: { case: "ping" as const, value: { nonce: 1n } } },
    { frame: { case: undefined } },
  ] as ServerFrameInit[]) {
    assert.equal(encodeServerFrameFast(frame), undefined, JSON.stringify(frame, (_, v) => (typeof v === "bigint" ? String(v) : v)));
  }
});
