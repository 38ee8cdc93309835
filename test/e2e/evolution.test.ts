/**
 * The protocol as a product: frames and fields from a newer peer are ignored,
 * and the stream works over both gRPC and the Connect protocol on one port.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { ClientFrameSchema } from "../../gen/promproxy/v1/scrape_pb.ts";
import { proxyGet, startServer } from "../helpers.ts";
import { connectRaw } from "./raw-client.ts";

/** A client frame of a kind this server does not know: oneof field 99, plus an unknown field in a known frame. */
function futureFrames() {
  const unknownKind = create(ClientFrameSchema);
  unknownKind.$unknown = [{ no: 99, wireType: WireType.LengthDelimited, data: new Uint8Array([5, 10, 3, 102, 111, 111]) /* length, then a message with field 1 = "foo" */ }];
  const pong = create(ClientFrameSchema, { frame: { case: "pong", value: { nonce: 7n } } });
  if (pong.frame.case === "pong") pong.frame.value.$unknown = [{ no: 42, wireType: WireType.Varint, data: new Uint8Array([1]) }];
  return [unknownKind, pong];
}

for (const protocol of ["grpc", "connect"] as const) {
  test(`over ${protocol}: a client from the future sends unknown frames and fields; the stream survives and serves`, { timeout: 30_000 }, async () => {
    const s = await startServer();
    const raw = await connectRaw(s.url, { name: "future", features: ["time-travel"] }, { protocol });
    try {
      assert.deepEqual(raw.welcome.features, [], "unknown features are not echoed");
      for (const f of futureFrames()) raw.send(f);
      const res = proxyGet(s.port, "http://future/metrics");
      const order = await raw.next("order");
      raw.head(order.scrapeId, 200, { "content-type": "text/plain; version=0.0.4" });
      raw.chunk(order.scrapeId, "future_up 1\n");
      raw.end(order.scrapeId);
      const r = await res;
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), "future_up 1\n");
      assert.equal(s.server.clients().length, 1, "still connected");
    } finally {
      raw.abort();
      await raw.ended;
      await s.close();
    }
  });
}
