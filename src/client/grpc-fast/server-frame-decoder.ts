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
import { isUtf8 } from "node:buffer";
import type { Duration } from "@bufbuild/protobuf/wkt";
import type { Header, ScrapeOrder, ServerFrame } from "../../../gen/promproxy/v1/scrape_pb.ts";

/** Gives up on a message: protobuf-es reads it instead. */
const notCovered = new Error("left to protobuf-es");

const VARINT = 0;
const LEN = 2;

/** Buffer's own UTF-8 decoding without toString's argument handling, where Node has it. */
const utf8Slice = (Buffer.prototype as { utf8Slice?: (start: number, end: number) => string }).utf8Slice;
const utf8: (buf: Buffer, start: number, end: number) => string =
  typeof utf8Slice === "function" ? (buf, start, end) => utf8Slice.call(buf, start, end) : (buf, start, end) => buf.toString("utf8", start, end);

/** A cursor over the bytes of one frame; `end` is the end of the message being read. */
class Reader {
  readonly buf: Buffer;
  pos = 0;
  end: number;
  constructor(buf: Buffer) {
    this.buf = buf;
    this.end = buf.byteLength;
  }
  /** A varint of at most 32 bits in at most 5 bytes (a tag, a length, a uint32). */
  u32(): number {
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    let v = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (pos >= end) throw notCovered;
      const b = buf[pos++] as number;
      v |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        return v;
      }
    }
    if (pos >= end) throw notCovered;
    const b = buf[pos++] as number;
    if (b > 0x0f) throw notCovered; // more than 32 bits, or more than 5 bytes
    this.pos = pos;
    return (v | (b << 28)) >>> 0;
  }
  /** A uint64 varint: at most 10 bytes, nothing beyond 64 bits. */
  u64(): bigint {
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    let v = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (pos >= end) throw notCovered;
      const b = buf[pos++] as number;
      v |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        return BigInt(v);
      }
    }
    let big = BigInt(v);
    for (let i = 4; i < 10; i++) {
      if (pos >= end) throw notCovered;
      const b = buf[pos++] as number;
      if (i === 9 && b > 1) throw notCovered; // more than 64 bits, or more than 10 bytes
      big |= BigInt(b & 0x7f) << BigInt(7 * i);
      if (b < 0x80) {
        this.pos = pos;
        return big;
      }
    }
    throw notCovered;
  }
  /** Enters a length-delimited field: returns the end of the enclosing message, to give back to `leave`. */
  enter(): number {
    const n = this.u32();
    if (n > this.end - this.pos) throw notCovered;
    const outer = this.end;
    this.end = this.pos + n;
    return outer;
  }
  leave(outer: number): void {
    this.end = outer;
  }
  /**
   * A string field, strictly valid UTF-8 (a BOM kept), as protobuf-es reads
   * proto3 strings. Node's decoder puts U+FFFD for whatever is not valid
   * UTF-8: only a string with one is checked byte by byte.
   */
  str(): string {
    const n = this.u32();
    const s = this.pos;
    if (n > this.end - s) throw notCovered;
    this.pos = s + n;
    if (n === 0) return "";
    const out = utf8(this.buf, s, s + n);
    if (out.includes("\ufffd") && !isUtf8(this.buf.subarray(s, s + n))) throw notCovered;
    return out;
  }
  /** The next tag (field number << 3 | wire type), with a field number above 0 and a known wire type. */
  tag(): number {
    const t = this.u32();
    if (t < 8 || (t & 7) > 5) throw notCovered;
    return t;
  }
}

/** Marks field `f` (1-31) as read in `seen`; a singular field read twice is protobuf-es's business (last wins, messages merge). */
function once(seen: number, f: number): number {
  const bit = 1 << f;
  if (seen & bit) throw notCovered;
  return seen | bit;
}

function header(r: Reader): Header {
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

function duration(r: Reader): Duration {
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

function order(r: Reader): ScrapeOrder {
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
function idAnd(r: Reader, second: number): { id: bigint; n: bigint; s: string } {
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
    const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const r = new Reader(buf);
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
