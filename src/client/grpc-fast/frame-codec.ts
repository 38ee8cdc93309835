/**
 * gRPC length-prefixed messages of the Scrape stream, client side: encoding
 * our frames (a chunk as a hand-written protobuf header around the target's
 * own bytes, never copied) and an incremental reader of the server's frames
 * that refuses an oversized or compressed frame at its 5-byte prefix, before
 * any of its body is kept, and reads the hot frames (order, credit, cancel,
 * ping) by hand (server-frame-decoder), the others with protobuf-es.
 *
 * @internal
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ClientFrameSchema, ServerFrameSchema, type ServerFrame } from "../../../gen/promproxy/v1/scrape_pb.ts";
import type { ClientFrameInit } from "../out-queue.ts";
import { headFrame, headTag, resultTag, varintBig, type HeadInit } from "./head-encoder.ts";
import { frameEntriesCheck, type EntryLimits } from "../frame-entries.ts";
import { decodeServerFrameFast } from "./server-frame-decoder.ts";

const empty = new Uint8Array(0);

/** Bytes of the gRPC prefix: a flag byte and a big-endian uint32 length. */
export const prefixBytes = 5;

/** Appends `v` as a protobuf varint (v < 2^53). */
function varint(out: number[], v: number): void {
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

/**
 * The prefix and protobuf header of `ClientFrame{chunk: ResultChunk{scrape_id, data}}`
 * for `dataBytes` bytes of data: followed by the data, it is byte for byte
 * what protobuf-es writes for that message (zero fields omitted).
 */
export function chunkFrameHeader(scrapeId: bigint, dataBytes: number): Buffer {
  const inner: number[] = [];
  if (scrapeId !== 0n) {
    inner.push(0x08); // field 1, varint
    varintBig(inner, scrapeId);
  }
  if (dataBytes > 0) {
    inner.push(0x12); // field 2, length-delimited
    varint(inner, dataBytes);
  }
  const innerBytes = inner.length + dataBytes;
  const outer: number[] = [0x1a]; // ClientFrame field 3 (chunk), length-delimited
  varint(outer, innerBytes);
  const messageBytes = outer.length + innerBytes;
  const header = Buffer.allocUnsafe(prefixBytes + outer.length + inner.length);
  header[0] = 0;
  header.writeUInt32BE(messageBytes, 1);
  header.set(outer, prefixBytes);
  header.set(inner, prefixBytes + outer.length);
  return header;
}

/**
 * `ClientFrame{<field>: {<uint64 field 1>: id}}` with nothing else set (an
 * end without an error, a pong), as protobuf-es writes it: the frames every
 * scrape and ping costs, without building a message to encode.
 */
function idOnlyFrame(tag: number, id: bigint): Buffer {
  const inner: number[] = [];
  if (id !== 0n) {
    inner.push(0x08);
    varintBig(inner, id);
  }
  const out = Buffer.allocUnsafe(prefixBytes + 2 + inner.length);
  out[0] = 0;
  out.writeUInt32BE(2 + inner.length, 1);
  out[5] = tag;
  out[6] = inner.length; // at most 11 bytes: a one-byte length
  out.set(inner, 7);
  return out;
}

/** One gRPC message of any client frame, as protobuf-es encodes it. */
export function encodeFrame(frame: ClientFrameInit): Buffer {
  const body = toBinary(ClientFrameSchema, create(ClientFrameSchema, frame));
  const out = Buffer.allocUnsafe(prefixBytes + body.byteLength);
  out[0] = 0;
  out.writeUInt32BE(body.byteLength, 1);
  out.set(body, prefixBytes);
  return out;
}

/**
 * The buffers that carry one client frame: a chunk is its header and the
 * caller's own bytes (no copy; the caller does not touch them afterwards),
 * any other frame one encoded buffer.
 */
export function frameBuffers(frame: ClientFrameInit): Uint8Array[] {
  const f = frame.frame;
  if (f?.case === "chunk" && f.value.data instanceof Uint8Array) {
    const data = f.value.data;
    const header = chunkFrameHeader(f.value.scrapeId ?? 0n, data.byteLength);
    return data.byteLength > 0 ? [header, data] : [header];
  }
  if (f?.case === "end" && f.value.error === undefined) return [idOnlyFrame(0x22, f.value.scrapeId ?? 0n)]; // field 4
  if (f?.case === "pong") return [idOnlyFrame(0x2a, f.value.nonce ?? 0n)]; // field 5
  if (f?.case === "head" && !("$typeName" in f.value)) {
    const head = headFrame(f.value as HeadInit, headTag);
    if (head) return [head];
  }
  if (f?.case === "result" && !("$typeName" in f.value) && f.value.error === undefined && (f.value.data ?? empty) instanceof Uint8Array) {
    const data = f.value.data ?? empty;
    const header = headFrame(f.value as HeadInit, resultTag, data.byteLength);
    if (header) return data.byteLength > 0 ? [header, data] : [header];
  }
  return [encodeFrame(frame)];
}

/** A server's unknown fields are not kept: 2 bytes each on the wire, an object each once read (a welcome of them lives as long as its stream). */
const noUnknownFields = { readUnknownFields: false };

/** What reading the server's frames needs. */
export interface FrameReaderOptions {
  /** Largest message body accepted, in bytes (the client's `maxServerFrameBytes`). */
  readLimit: number;
  /** The caps on a frame's repeated entries, counted before it is decoded (frame-entries.ts). Default: `maxReplicas` 64, the client's default. */
  entries?: EntryLimits;
  onFrame(frame: ServerFrame): void;
}

/**
 * An incremental reader of gRPC messages: feed it the stream's bytes as they
 * come, split anywhere. Throws a ConnectError for a frame it refuses (over
 * the read limit, compressed, a reserved flag bit, more repeated entries than
 * their caps (counted before anything is decoded), a body that does not
 * parse); after that it must not be fed again. What `onFrame` throws passes through.
 */
export function createFrameReader(o: FrameReaderOptions): { push(chunk: Uint8Array): void; readonly idle: boolean } {
  const prefix = Buffer.alloc(prefixBytes);
  let prefixHave = 0;
  /** Bytes of the body still to come; -1 while reading a prefix. */
  let need = -1;
  /** A body that arrives in pieces, gathered in one buffer of its announced length (checked against the read limit). */
  let gathered: Buffer | undefined;
  let have = 0;
  const checkEntries = frameEntriesCheck(o.entries ?? { maxReplicas: 64 });

  function parse(body: Uint8Array): ServerFrame {
    checkEntries(body);
    const fast = decodeServerFrameFast(body);
    if (fast) return fast;
    try {
      return fromBinary(ServerFrameSchema, body, noUnknownFields);
    } catch (e) {
      throw new ConnectError(`parse binary: ${e instanceof Error ? e.message : String(e)}`, Code.Internal);
    }
  }

  function onPrefix(): void {
    const flags = prefix[0] as number;
    const length = prefix.readUInt32BE(1);
    if (flags & 1) throw new ConnectError("the server sent compressed frames; this client accepts none", Code.Internal);
    if (flags !== 0) throw new ConnectError(`protocol error: the server sent a frame with flags 0x${flags.toString(16)}`, Code.Internal);
    if (length > o.readLimit) {
      throw new ConnectError(`the server sent a frame of ${length} bytes larger than the client's read limit of ${o.readLimit} bytes (maxServerFrameBytes)`, Code.ResourceExhausted);
    }
    need = length;
    gathered = undefined;
    have = 0;
  }

  return {
    get idle() {
      return need < 0 && prefixHave === 0;
    },
    push(chunk) {
      let i = 0;
      const n = chunk.byteLength;
      while (i < n) {
        if (need < 0) {
          if (prefixHave === 0 && n - i >= prefixBytes) {
            prefix.set(chunk.subarray(i, i + prefixBytes));
            i += prefixBytes;
          } else {
            const take = Math.min(prefixBytes - prefixHave, n - i);
            prefix.set(chunk.subarray(i, i + take), prefixHave);
            prefixHave += take;
            i += take;
            if (prefixHave < prefixBytes) return;
            prefixHave = 0;
          }
          onPrefix();
        }
        const take = Math.min(need - have, n - i);
        if (have === 0 && take === need) {
          // The whole body in this chunk: parsed where it lies.
          i += take;
          need = -1;
          o.onFrame(parse(chunk.subarray(i - take, i)));
          continue;
        }
        // Copied into one buffer, not kept as views: a server dripping a frame a byte at a time would otherwise
        // make the client hold every read's whole buffer (~190 bytes per byte measured).
        if (take > 0) (gathered ??= Buffer.allocUnsafe(need)).set(chunk.subarray(i, i + take), have);
        have += take;
        i += take;
        if (have < need) return;
        const body = gathered as Buffer;
        gathered = undefined;
        need = -1;
        have = 0;
        o.onFrame(parse(body));
      }
    },
  };
}
