/**
 * Scenarios about what the client does not know: a path it does not serve
 * (End NOT_FOUND, which the server answers with 404), and frames and fields
 * from a newer protocol version (ignored).
 *
 * @internal
 */
import type { UnknownField } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { ScrapeErrorReason, ServerFrameSchema } from "../../../gen/promproxy/v1/scrape_pb.ts";
import { pathMatches } from "../../shared/paths.ts";
import { assertHealthy, connectClient, scrapeOk } from "../harness.ts";
import { check, notOffered, pass, sleep, type Scenario } from "../scenario.ts";
import { reasonName } from "../scrape-ledger.ts";

export const notFound: Scenario = {
  id: "not-found",
  title: "a path the client does not serve: End NOT_FOUND (404), no head",
  timeoutMs: 30_000,
  async run(ctx) {
    const { server, session } = await connectClient(ctx);
    const path = "/promproxy-conformance/not-found";
    const targets = session.hello.targets.length ? session.hello.targets : [{ port: 0, path: "" }];
    if (targets.some((t) => pathMatches(t.path, path))) return notOffered(`the client announces a target that serves ${path}`);
    const t = session.order({ path, creditBytes: 64 << 20 }); // ample: a client that serves it anyway ends, and is seen
    const r = await t.settled(10_000);
    const end = r.end;
    check(!r.head, () => `answered with a head (status ${r.head?.value.status}); want an End with NOT_FOUND and no head`);
    check(end?.error, "ended without an error");
    check(end.error.reason === ScrapeErrorReason.NOT_FOUND, `ended with ${reasonName(end.error.reason)}, want NOT_FOUND`);
    await scrapeOk(session);
    assertHealthy(server, session);
    const message = end.error.message.length > 100 ? `${end.error.message.slice(0, 100)}…` : end.error.message;
    return pass(`End NOT_FOUND: ${JSON.stringify(message)}; next scrape ok`);
  },
};

const varint = (n: number) => new BinaryWriter().uint32(n).finish();
const delimited = (bytes: Uint8Array) => new BinaryWriter().bytes(bytes).finish();
const fixed64 = () => new BinaryWriter().fixed64(0x0102030405060708n).finish();
const fixed32 = () => new BinaryWriter().fixed32(0x01020304).finish();

/** Fields of every wire type, numbered where no current message has a field. */
function unknownFields(base: number): UnknownField[] {
  return [
    { no: base, wireType: WireType.Varint, data: varint(300) },
    { no: base + 1, wireType: WireType.LengthDelimited, data: delimited(new TextEncoder().encode("from a newer server")) },
    { no: base + 2, wireType: WireType.Bit64, data: fixed64() },
    { no: base + 3, wireType: WireType.Bit32, data: fixed32() },
  ];
}

export const unknownFrames: Scenario = {
  id: "unknown-frames",
  title: "unknown frame kinds and unknown fields in known frames: ignored",
  timeoutMs: 30_000,
  async run(ctx) {
    const { server, session } = await connectClient(ctx, { welcome: { maxChunkBytes: 1024, unknownFields: unknownFields(90) } });
    // A frame kind of a newer version: a oneof member this client has never heard of, carrying a message.
    const futureKind = create(ServerFrameSchema, {});
    const inner = new BinaryWriter().tag(1, WireType.Varint).uint32(5).tag(2, WireType.LengthDelimited).string("future").finish();
    futureKind.$unknown = [{ no: 16, wireType: WireType.LengthDelimited, data: delimited(inner) }];
    session.send(futureKind);
    // A frame with only unknown fields of every wire type, and an empty frame.
    const onlyUnknown = create(ServerFrameSchema, {});
    onlyUnknown.$unknown = unknownFields(2000);
    session.send(onlyUnknown);
    session.send(create(ServerFrameSchema, {}));
    // Known frames with unknown fields: a ping, an order and its credits, a cancel for an unknown id.
    await session.ping(77n, 5_000, unknownFields(50));
    session.send({ frame: { case: "cancel", value: { scrapeId: 424_242n, reason: "conformance", $unknown: unknownFields(60) } } });
    const r = await scrapeOk(session, { creditBytes: 4096, grantBytes: 4096, unknownFields: unknownFields(70) });
    await sleep(200);
    assertHealthy(server, session);
    return pass(`ignored a new frame kind, unknown fields of 4 wire types in welcome, limits, ping, order, credit, cancel; scrape ok (${r.grants} credits)`);
  },
};
