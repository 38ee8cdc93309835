/**
 * Hand-written protobuf reading of the server frames every scrape and
 * heartbeat brings (an order, a credit, a cancel, a ping), giving messages
 * equal to protobuf-es's `fromBinary` down to their shape: plain objects
 * with `$typeName`, fields in declaration order, an unset timeout left out
 * and a set one added last, bigint ids, a `{case, value}` oneof. Anything it
 * does not cover (other frame kinds, unknown fields, a field of the wrong
 * wire type, a singular field twice, a second frame in one message, a
 * varint beyond 64 bits, a 32-bit field's varint beyond 5 bytes (a negative
 * nanos) or 32 bits, invalid UTF-8, a length past its message's end, truncation) is left to
 * protobuf-es: `undefined`, so that its rules and its errors stay the only
 * ones. One pass over the bytes, nothing kept beyond the message it builds.
 * Fuzzed against protobuf-es in test/server-frame-decoder.test.ts.
 *
 * @internal
 */
import type { Duration } from "@bufbuild/protobuf/wkt";
import type { Header, ScrapeOrder, ServerFrame } from "../../../gen/promproxy/v1/scrape_pb.ts";
import { LEN, notCovered, ProtoReader, VARINT } from "../../shared/proto-reader.ts";

/** Marks field `f` (1-31) as read in `seen`; a singular field read twice is protobuf-es's business (last wins, messages merge). */
function once(seen: number, f: number): number {
  const bit = 1 << f;
  if (seen & bit) throw notCovered;
  return seen | bit;
}

function header(r: ProtoReader): Header {
  const outer = r.enter();
  const h: Header = { $typeName: "promproxy.v1.Header", name: "", value: "" };
  let seen = 0;
  while (r.pos < r.end) {
    const t = r.tag();
    if (t === ((1 << 3) | LEN)) h.name = r.str();
    else if (t === ((2 << 3) | LEN)) h.value = r.str();
    else throw notCovered;
    seen = once(seen, t >>> 3);
  }
  r.leave(outer);
  return h;
}

function duration(r: ProtoReader): Duration {
  const outer = r.enter();
  const d: Duration = { $typeName: "google.protobuf.Duration", seconds: 0n, nanos: 0 };
  let seen = 0;
  while (r.pos < r.end) {
    const t = r.tag();
    if (t === ((1 << 3) | VARINT)) d.seconds = BigInt.asIntN(64, r.u64());
    else if (t === ((2 << 3) | VARINT)) d.nanos = r.u32() | 0; // a negative int32 takes 10 bytes: left to protobuf-es by u32
    else throw notCovered;
    seen = once(seen, t >>> 3);
  }
  r.leave(outer);
  return d;
}

function order(r: ProtoReader): ScrapeOrder {
  const outer = r.enter();
  const o: ScrapeOrder = { $typeName: "promproxy.v1.ScrapeOrder", scrapeId: 0n, port: 0, path: "", scheme: "", headers: [], creditBytes: 0n, method: "" };
  let timeout: Duration | undefined;
  let seen = 0;
  while (r.pos < r.end) {
    const t = r.tag();
    switch (t) {
      case (1 << 3) | VARINT:
        o.scrapeId = r.u64();
        break;
      case (2 << 3) | VARINT:
        o.port = r.u32();
        break;
      case (3 << 3) | LEN:
        o.path = r.str();
        break;
      case (4 << 3) | LEN:
        o.scheme = r.str();
        break;
      case (5 << 3) | LEN:
        o.headers.push(header(r));
        continue; // repeated
      case (6 << 3) | LEN:
        timeout = duration(r);
        break;
      case (7 << 3) | VARINT:
        o.creditBytes = r.u64();
        break;
      case (8 << 3) | LEN:
        o.method = r.str();
        break;
      default:
        throw notCovered;
    }
    seen = once(seen, t >>> 3);
  }
  r.leave(outer);
  if (timeout) o.timeout = timeout; // protobuf-es adds a message field when it reads it: after the others
  return o;
}

/** A message of one uint64 field 1 and one field 2 of wire type `second` (credit: uint64 bytes; cancel: string reason), or of field 1 alone (ping). */
function idAnd(r: ProtoReader, second: number): { id: bigint; n: bigint; s: string } {
  const outer = r.enter();
  const v = { id: 0n, n: 0n, s: "" };
  let seen = 0;
  while (r.pos < r.end) {
    const t = r.tag();
    if (t === ((1 << 3) | VARINT)) v.id = r.u64();
    else if (t === ((2 << 3) | second) && second === VARINT) v.n = r.u64();
    else if (t === ((2 << 3) | second) && second === LEN) v.s = r.str();
    else throw notCovered;
    seen = once(seen, t >>> 3);
  }
  r.leave(outer);
  return v;
}

/** No second field: a ping. */
const none = -1;

/** The server frame in `bytes`, or undefined for one left to protobuf-es. Never throws. */
export function decodeServerFrameFast(bytes: Uint8Array): ServerFrame | undefined {
  try {
    const r = new ProtoReader(bytes);
    if (r.end === 0) return { $typeName: "promproxy.v1.ServerFrame", frame: { case: undefined } };
    let frame: ServerFrame["frame"];
    switch (r.tag()) {
      case (2 << 3) | LEN:
        frame = { case: "order", value: order(r) };
        break;
      case (3 << 3) | LEN: {
        const v = idAnd(r, VARINT);
        frame = { case: "credit", value: { $typeName: "promproxy.v1.Credit", scrapeId: v.id, bytes: v.n } };
        break;
      }
      case (4 << 3) | LEN: {
        const v = idAnd(r, LEN);
        frame = { case: "cancel", value: { $typeName: "promproxy.v1.Cancel", scrapeId: v.id, reason: v.s } };
        break;
      }
      case (5 << 3) | LEN: {
        const v = idAnd(r, none);
        frame = { case: "ping", value: { $typeName: "promproxy.v1.Ping", nonce: v.id } };
        break;
      }
      default:
        return undefined;
    }
    // One frame per message: anything after it (a second oneof member, an unknown field) is protobuf-es's business.
    if (r.pos !== r.end) return undefined;
    return { $typeName: "promproxy.v1.ServerFrame", frame };
  } catch {
    return undefined;
  }
}
