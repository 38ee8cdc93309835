/**
 * The protobuf primitives of the hand-written frame decoders (the server's
 * of client frames, `src/server/grpc-fast/client-frame-decoder.ts`; the
 * client's of server frames, `src/client/grpc-fast/server-frame-decoder.ts`):
 * a cursor over one message's bytes that reads varints, lengths, bytes (as
 * views, never copied) and strictly valid UTF-8 strings exactly as
 * protobuf-es reads them, and throws `notCovered` at anything else (a varint
 * beyond its width, a length past the message's end, invalid UTF-8, field 0
 * or an unknown wire type, truncation): the decoder then leaves the whole
 * message to protobuf-es, so that its rules and errors stay the only ones.
 *
 * @internal
 */
import { isUtf8 } from "node:buffer";

/** Buffer's Latin-1 reader, which takes any Uint8Array (a frame's bytes need not be a Buffer). */
const latin1Slice = Buffer.prototype.latin1Slice as (this: Uint8Array, start: number, end: number) => string;

/** Thrown by the reader when a message is not one it covers. @internal */
export class NotCovered extends Error {}
/** @internal */
export const notCovered = new NotCovered("left to protobuf-es");

/** Wire types. @internal */
export const VARINT = 0;
/** @internal */
export const LEN = 2;

/** Strings up to this many bytes are read in JavaScript when they are ASCII. */
const shortString = 128;

/** A cursor over bytes; `end` is the end of the message being read (moved by `enter` and `leave`). @internal */
export class ProtoReader {
  readonly buf: Uint8Array;
  pos: number;
  end: number;
  constructor(buf: Uint8Array, start = 0, end = buf.byteLength) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }
  /** A varint of at most 32 bits in at most 5 bytes (a tag, a length, a uint32), as protobuf-es's uint32() reads it. */
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
  /** The bounds of a length-delimited field's content; the cursor moves past it. */
  span(): [number, number] {
    const start = this.len();
    return [start, this.pos];
  }
  /** Where a length-delimited field's content starts; the cursor moves past it (its end). No array, unlike `span`. */
  len(): number {
    const n = this.u32();
    const start = this.pos;
    if (n > this.end - start) throw notCovered;
    this.pos = start + n;
    return start;
  }
  /** A bytes field: a view of the input. */
  bytes(): Uint8Array {
    const s = this.len();
    return this.buf.subarray(s, this.pos);
  }
  /** A string field, strictly valid UTF-8 (a BOM kept), as protobuf-es reads proto3 strings. */
  str(): string {
    const s = this.len();
    const e = this.pos;
    if (s === e) return "";
    const buf = this.buf;
    if (e - s <= shortString) {
      // Short ASCII (header names and values, messages): read here, cheaper than three calls into C++.
      let ascii = true;
      for (let i = s; i < e; i++) {
        if ((buf[i] as number) >= 0x80) {
          ascii = false;
          break;
        }
      }
      // Latin-1 is ASCII here: one call that makes the string, no view of the input and no argument list.
      if (ascii) return latin1Slice.call(buf, s, e);
    }
    const view = buf.subarray(s, e);
    if (!isUtf8(view)) throw notCovered;
    return Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString("utf8");
  }
  /** The next tag (field number << 3 | wire type): a field number above 0 and a known wire type (0-5). */
  tag(): number {
    const t = this.u32();
    if (t < 8 || (t & 7) > 5) throw notCovered;
    return t;
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
}
