/**
 * A server frame's repeated entries are counted before it is decoded (src/client/frame-entries.ts), on both
 * transports: an order with more than 64 headers, a welcome or replica set with more than maxReplicas ids, a welcome
 * with more than 64 features is refused with one clear line at the first entry over its cap, nothing of it built.
 * Before: the whole frame was decoded first (an outside review, round 16a: 2,000,000 empty headers in a 4 MiB order
 * stalled the host up to 0.9 s and grew it ~120 MB per frame). That the walk stopped early is shown by what follows
 * the entry over the cap: bytes protobuf-es refuses, which a reader going on would have met and said so.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { ServerFrameSchema, type ServerFrame } from "../gen/promproxy/v1/scrape_pb.ts";
import { frameEntriesCheck } from "../src/client/frame-entries.ts";
import { createFrameReader } from "../src/client/grpc-fast/frame-codec.ts";
import { wholeEnvelopes } from "../src/client/whole-envelopes.ts";
import { envelope } from "./fixtures/grpc-envelope.ts";

const varint = (v: number) => {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
};
/** A length-delimited field `no` around `inner`. */
const field = (no: number, inner: Uint8Array | number[]) => Buffer.from([(no << 3) | 2, ...varint(inner.length), ...inner]);
/** `n` copies of `one`. */
const times = (one: number[], n: number) => {
  const b = Buffer.alloc(one.length * n);
  for (let i = 0; i < n; i++) b.set(one, i * one.length);
  return b;
};
const emptyEntry = (no: number) => [(no << 3) | 2, 0];
/** Bytes protobuf-es refuses (a tag of field 0): a reader that gets here says so. */
const poison = Buffer.from([0x00, 0x00, 0x00]);
const order = (inner: Buffer) => field(2, Buffer.concat([Buffer.from([0x08, 0x01]), field(3, Buffer.from("/metrics")), inner]));
const welcome = (inner: Buffer) => field(1, Buffer.concat([field(1, Buffer.from("s")), inner]));
const replicaSet = (inner: Buffer) => field(6, inner);

/** What the fast path's reader does with one frame body: the frames it hands on, or the error it ends with. */
function fast(body: Uint8Array, maxReplicas = 64): { frames: ServerFrame[]; error?: ConnectError } {
  const frames: ServerFrame[] = [];
  try {
    createFrameReader({ readLimit: 64 << 20, entries: { maxReplicas }, onFrame: (f) => frames.push(f) }).push(envelope([body]));
  } catch (e) {
    assert.ok(e instanceof ConnectError, String(e));
    return { frames, error: e };
  }
  return { frames };
}

/** What the Connect transport's whole envelopes hand on to connect-es for one frame body, or the error they end with. */
async function connect(body: Uint8Array, maxReplicas = 64): Promise<{ out: Buffer[]; error?: ConnectError }> {
  async function* one() {
    yield Buffer.from(envelope([body]));
  }
  const out: Buffer[] = [];
  try {
    for await (const b of wholeEnvelopes(one()[Symbol.asyncIterator](), 64 << 20, () => 0, frameEntriesCheck({ maxReplicas }))) out.push(b);
  } catch (e) {
    assert.ok(e instanceof ConnectError, String(e));
    return { out, error: e };
  }
  return { out };
}

const cases = [
  { what: "an order with 64,000 empty headers", body: order(times(emptyEntry(5), 64_000)), code: Code.Internal, line: /^protocol error: the server sent an order with more than 64 headers$/ },
  { what: "a replica set frame with 64,000 empty ids", body: replicaSet(times(emptyEntry(1), 64_000)), code: Code.FailedPrecondition, line: /^the server's replica set frame announces a replica set of over 64 replicas, more than this client holds \(maxReplicas 64\)$/ },
  { what: "a welcome with 64,000 empty replica ids", body: welcome(times(emptyEntry(8), 64_000)), code: Code.FailedPrecondition, line: /^the server's welcome announces a replica set of over 64 replicas/ },
  { what: "a welcome with 64,000 empty features", body: welcome(times(emptyEntry(5), 64_000)), code: Code.FailedPrecondition, line: /^the server's welcome lists more than 64 features$/ },
];

for (const c of cases) {
  test(`fast path: ${c.what} is refused with one clear line before anything is decoded`, () => {
    const r = fast(c.body);
    assert.equal(r.frames.length, 0);
    assert.equal(r.error?.code, c.code, r.error?.message);
    assert.match(r.error?.rawMessage ?? "", c.line);
  });

  test(`connect transport: ${c.what} is refused before connect-es gets it`, async () => {
    const r = await connect(c.body);
    assert.equal(r.out.length, 0);
    assert.equal(r.error?.code, c.code, r.error?.message);
    assert.match(r.error?.rawMessage ?? "", c.line);
  });
}

test("the walk stops at the first entry over the cap: what follows it (bytes protobuf-es refuses) is never read", async () => {
  const bodies = [
    order(Buffer.concat([times(emptyEntry(5), 65), poison, times(emptyEntry(5), 64_000)])),
    replicaSet(Buffer.concat([times(emptyEntry(1), 65), poison, times(emptyEntry(1), 64_000)])),
  ];
  for (const body of bodies) {
    assert.throws(() => fromBinary(ServerFrameSchema, body), /illegal tag/, "protobuf-es refuses the bytes after the cap");
    assert.doesNotMatch(fast(body).error?.rawMessage ?? "", /parse|illegal/);
    assert.match(fast(body).error?.rawMessage ?? "", /more than 64 headers|over 64 replicas/);
    assert.match((await connect(body)).error?.rawMessage ?? "", /more than 64 headers|over 64 replicas/);
  }
});

test("at the caps, frames are read as before; a smaller maxReplicas is the replica ids' cap", async () => {
  const header = [0x2a, 0x06, 0x0a, 0x01, 0x61, 0x12, 0x01, 0x62]; // a: b
  const atCap = order(times(header, 64));
  const read = fast(atCap).frames;
  assert.equal(read.length, 1);
  const f = read[0]?.frame;
  assert.equal(f?.case === "order" && f.value.headers.length, 64);
  assert.equal((await connect(atCap)).out.length, 1);
  const ids = (n: number) => replicaSet(Buffer.concat(Array.from({ length: n }, (_, i) => field(1, Buffer.from(`replica-${String(i).padStart(4, "0")}`)))));
  assert.equal(fast(ids(30), 30).frames.length, 1);
  assert.match(fast(ids(31), 30).error?.rawMessage ?? "", /of over 30 replicas/);
  assert.match((await connect(ids(31), 30)).error?.rawMessage ?? "", /of over 30 replicas/);
});

test("the walk reads as protobuf-es does: a known field of the wrong wire type does not hide the entries after it", () => {
  // scrape_id tagged as length-delimited: protobuf-es reads a varint there anyway (the 'length'), then the headers.
  const hidden = times(emptyEntry(5), 2_000);
  const body = field(2, Buffer.concat([Buffer.from([0x0a, ...varint(hidden.length)]), hidden]));
  const decoded = fromBinary(ServerFrameSchema, body);
  assert.equal(decoded.frame.case === "order" && decoded.frame.value.headers.length, 2_000, "protobuf-es reads them");
  assert.match(fast(body).error?.rawMessage ?? "", /more than 64 headers/);
  // The order tagged as a varint: protobuf-es reads a message field by its declared type too.
  const asVarint = Buffer.concat([Buffer.from([0x10]), field(2, times(emptyEntry(5), 2_000)).subarray(1)]);
  assert.equal(fromBinary(ServerFrameSchema, asVarint).frame.case, "order");
  assert.match(fast(asVarint).error?.rawMessage ?? "", /more than 64 headers/);
});

test("any order frame: refused by the walk exactly when protobuf-es would decode more than 64 headers", () => {
  const check = frameEntriesCheck({ maxReplicas: 64 });
  const header = fc.record({ name: fc.string({ maxLength: 6 }), value: fc.string({ maxLength: 6 }) });
  fc.assert(
    fc.property(fc.array(header, { maxLength: 150 }), fc.array(fc.nat({ max: 10 }), { maxLength: 3 }), (headers, ids) => {
      // Several order fields in one frame merge: their headers count together.
      const parts = [headers.slice(0, 70), headers.slice(70)].map((h, i) => toBinary(ServerFrameSchema, create(ServerFrameSchema, { frame: { case: "order", value: { scrapeId: BigInt(ids[i] ?? 0), headers: h } } })));
      const body = Buffer.concat(parts);
      const decoded = fromBinary(ServerFrameSchema, body);
      const n = decoded.frame.case === "order" ? decoded.frame.value.headers.length : 0;
      let refused = false;
      try {
        check(body);
      } catch (e) {
        assert.ok(e instanceof ConnectError);
        refused = true;
      }
      assert.equal(refused, n > 64 && body.byteLength >= 256, `${n} headers in ${body.byteLength} bytes`);
    }),
    { numRuns: 300 },
  );
});

test("bytes changed at random: whatever protobuf-es decodes past a cap, the walk refuses (it never loses count)", () => {
  const check = frameEntriesCheck({ maxReplicas: 64 });
  const str = fc.string({ maxLength: 4 });
  const frame = fc.oneof(
    fc.array(fc.record({ name: str, value: str }), { minLength: 50, maxLength: 90 }).map((headers) => create(ServerFrameSchema, { frame: { case: "order", value: { scrapeId: 7n, path: "/m", headers } } })),
    fc.tuple(fc.array(str, { minLength: 50, maxLength: 90 }), fc.array(str, { maxLength: 90 })).map(([features, replicaIds]) => create(ServerFrameSchema, { frame: { case: "welcome", value: { sessionId: "s", features, replicaIds } } })),
    fc.array(str, { minLength: 50, maxLength: 90 }).map((replicaIds) => create(ServerFrameSchema, { frame: { case: "replicaSet", value: { replicaIds } } })),
  );
  const edit = fc.record({ at: fc.nat(), byte: fc.nat({ max: 255 }), insert: fc.boolean() });
  fc.assert(
    fc.property(frame, fc.array(edit, { maxLength: 4 }), (f, edits) => {
      let bytes = [...toBinary(ServerFrameSchema, f)];
      for (const e of edits) {
        const at = e.at % (bytes.length + 1);
        bytes = e.insert ? [...bytes.slice(0, at), e.byte, ...bytes.slice(at)] : [...bytes.slice(0, at), e.byte, ...bytes.slice(at + 1)];
      }
      const body = Uint8Array.from(bytes);
      let decoded: ServerFrame;
      try {
        decoded = fromBinary(ServerFrameSchema, body, { readUnknownFields: false });
      } catch {
        return; // refused by protobuf-es (after building at most what the walk counted before the same place)
      }
      const v = decoded.frame;
      const over =
        (v.case === "order" && v.value.headers.length > 64) ||
        (v.case === "welcome" && (v.value.features.length > 64 || v.value.replicaIds.length > 64)) ||
        (v.case === "replicaSet" && v.value.replicaIds.length > 64);
      if (!over || body.byteLength < 256) return;
      assert.throws(() => check(body), ConnectError, `protobuf-es decoded a ${v.case} over its cap from ${Buffer.from(body).toString("hex")}`);
    }),
    { numRuns: 3000 },
  );
});
