/**
 * Hand-written protobuf reading of the client frames every scrape sends (a
 * head, chunk, end or result; a pong), giving messages equal to protobuf-es's
 * `fromBinary` (the same fields and values, unset messages left out, bytes
 * as views of the input, no copy; plain objects, not its prototypes). Anything
 * it does not cover (a hello, unknown or repeated fields, a wrong wire type,
 * invalid UTF-8, a malformed or truncated message) is left to protobuf-es:
 * `undefined`, so that its rules and its errors stay the only ones; a head
 * or result with more headers than frame-bounds.ts allows is refused at the
 * first one over (a ConnectError, InvalidArgument). Fuzzed
 * against protobuf-es in test/client-frame-decoder.test.ts.
 *
 * @internal
 */
import type { ClientFrame, Header, ScrapeError, ScrapeErrorReason } from "../../../gen/promproxy/v1/scrape_pb.ts";
import { LEN, NotCovered, notCovered, ProtoReader, VARINT } from "../../shared/proto-reader.ts";
import { headersOverBound, maxResultHeaders } from "../frame-bounds.ts";

function header(r: ProtoReader): Header {
  const s = r.len();
  const h = new ProtoReader(r.buf, s, r.pos);
  const out: Header = { $typeName: "promproxy.v1.Header", name: "", value: "" };
  while (h.pos < h.end) {
    const t = h.tag();
    const f = t >>> 3;
    const w = t & 7;
    if (w !== LEN || (f !== 1 && f !== 2)) throw notCovered;
    if (f === 1) out.name = h.str();
    else out.value = h.str();
  }
  return out;
}

function scrapeError(r: ProtoReader): ScrapeError {
  const s = r.len();
  const m = new ProtoReader(r.buf, s, r.pos);
  const out: ScrapeError = { $typeName: "promproxy.v1.ScrapeError", reason: 0, message: "" };
  while (m.pos < m.end) {
    const t = m.tag();
    const f = t >>> 3;
    const w = t & 7;
    if (f === 1 && w === VARINT) {
      const v = m.u32();
      if (v > 0x7fffffff) throw notCovered; // a negative int32 takes 10 bytes: protobuf-es's business
      out.reason = v as ScrapeErrorReason;
    } else if (f === 2 && w === LEN) out.message = m.str();
    else throw notCovered;
  }
  return out;
}

type Fields = { scrapeId: bigint; status: number; headers: Header[]; data: Uint8Array; error?: ScrapeError };

/** The data of a message that has none: one for all (it has no bytes to change). */
const noData = new Uint8Array(0);

/** Which message's field numbers these are: ResultChunk and ResultEnd number theirs differently. */
type Kind = "head" | "chunk" | "end" | "pong" | "result";

/** Field number -> wire type, per message. */
const layout: Record<Kind, readonly number[]> = {
  head: [-1, VARINT, VARINT, LEN],
  chunk: [-1, VARINT, LEN],
  end: [-1, VARINT, LEN],
  pong: [-1, VARINT],
  result: [-1, VARINT, VARINT, LEN, LEN, LEN],
};

/** Reads one inner message of `kind` (a pong's nonce comes back as `scrapeId`). */
function fields(r: ProtoReader, kind: Kind): Fields {
  const s = r.len();
  const m = new ProtoReader(r.buf, s, r.pos);
  const allowed = layout[kind];
  const out: Fields = { scrapeId: 0n, status: 0, headers: [], data: noData };
  let errors = 0;
  while (m.pos < m.end) {
    const t = m.tag();
    const f = t >>> 3;
    const w = t & 7;
    if (allowed[f] !== w) throw notCovered;
    if (f === 1) out.scrapeId = m.u64();
    else if (f === 2 && kind === "chunk") out.data = m.bytes();
    else if (f === 2 && kind !== "end") out.status = m.u32();
    else if (f === 3) {
      // Read no further than the bound: a frame of 150,000 empty headers is refused at the 129th.
      if (out.headers.length === maxResultHeaders) throw headersOverBound(kind);
      out.headers.push(header(m));
    }
    else if (f === 4) out.data = m.bytes();
    else {
      // The error (ResultEnd field 2, ScrapeResult field 5). A message field twice is merged: protobuf-es's business.
      if (errors++ > 0) throw notCovered;
      out.error = scrapeError(m);
    }
  }
  return out;
}

/** The client frame in `bytes`, or undefined for one left to protobuf-es. */
export function decodeClientFrameFast(bytes: Uint8Array): ClientFrame | undefined {
  try {
    const r = new ProtoReader(bytes, 0, bytes.byteLength);
    if (r.pos === r.end) return { $typeName: "promproxy.v1.ClientFrame", frame: { case: undefined } };
    const t = r.tag();
    const f = t >>> 3;
    const w = t & 7;
    if (w !== LEN) return undefined;
    let frame: ClientFrame["frame"];
    switch (f) {
      case 2: {
        const v = fields(r, "head");
        frame = { case: "head", value: { $typeName: "promproxy.v1.ResultHead", scrapeId: v.scrapeId, status: v.status, headers: v.headers } };
        break;
      }
      case 3: {
        const v = fields(r, "chunk");
        frame = { case: "chunk", value: { $typeName: "promproxy.v1.ResultChunk", scrapeId: v.scrapeId, data: v.data } };
        break;
      }
      case 4: {
        const v = fields(r, "end");
        frame = { case: "end", value: { $typeName: "promproxy.v1.ResultEnd", scrapeId: v.scrapeId } };
        if (v.error) frame.value.error = v.error;
        break;
      }
      case 5: {
        const v = fields(r, "pong");
        frame = { case: "pong", value: { $typeName: "promproxy.v1.Pong", nonce: v.scrapeId } };
        break;
      }
      case 6: {
        const v = fields(r, "result");
        frame = { case: "result", value: { $typeName: "promproxy.v1.ScrapeResult", scrapeId: v.scrapeId, status: v.status, headers: v.headers, data: v.data } };
        if (v.error) frame.value.error = v.error;
        break;
      }
      default:
        return undefined;
    }
    // One frame per message: anything after it (a second oneof member, an unknown field) is protobuf-es's business.
    if (r.pos !== r.end) return undefined;
    return { $typeName: "promproxy.v1.ClientFrame", frame };
  } catch (e) {
    if (e instanceof NotCovered) return undefined;
    throw e;
  }
}
