/**
 * Hand-written protobuf for the server frames every scrape and heartbeat
 * costs: `ServerFrame{order}`, `{credit}`, `{cancel}` and `{ping}`, each with
 * its gRPC prefix in one buffer, byte for byte what protobuf-es writes
 * (fields in order, zero values, empty strings and unset messages omitted).
 * Anything it does not cover (unknown fields, a negative or fractional
 * number, a value of the wrong type) is left to protobuf-es: `undefined`.
 * Fuzzed against protobuf-es in test/server-frame-encoder.test.ts.
 *
 * @internal
 */
import type { ServerFrameInit } from "../session.ts";

const prefixBytes = 5;
const maxU64 = (1n << 64n) - 1n;
const maxI64 = (1n << 63n) - 1n;

/** Below this a uint64 is written from a number: no bigint arithmetic (each step of which allocates). */
const safeBig = 1n << 53n;

function bigVarintBytes(v: bigint): number {
  if (v < safeBig) return varintBytes(Number(v));
  let n = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    n++;
  }
  return n;
}

function varintBytes(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/** A field's value in a form this encoder takes: a uint64 as a bigint in range, a uint32/int32 as a non-negative integer, a string. */
const isU64 = (v: unknown, max = maxU64): v is bigint => typeof v === "bigint" && v >= 0n && v <= max;
const isU32 = (v: unknown, max = 0xffffffff): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= max;
const isStr = (v: unknown): v is string => typeof v === "string";
/** A message init that carries no unknown fields (those go through protobuf-es). */
const plain = (v: object) => !("$unknown" in v) || (v as { $unknown?: unknown[] }).$unknown === undefined || (v as { $unknown: unknown[] }).$unknown.length === 0;

/** Builds one message into a buffer sized beforehand. */
class Out {
  readonly buf: Buffer;
  at = 0;
  constructor(bytes: number) {
    this.buf = Buffer.allocUnsafe(bytes);
  }
  byte(b: number) {
    this.buf[this.at++] = b;
  }
  varint(v: number) {
    while (v >= 0x80) {
      this.buf[this.at++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.at++] = v;
  }
  bigVarint(v: bigint) {
    if (v < safeBig) return this.varint(Number(v));
    while (v >= 0x80n) {
      this.buf[this.at++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.at++] = Number(v);
  }
  /** Field `tag` (varint wire type) unless zero. */
  u64(tag: number, v: bigint) {
    if (v === 0n) return;
    this.byte(tag);
    this.bigVarint(v);
  }
  u32(tag: number, v: number) {
    if (v === 0) return;
    this.byte(tag);
    this.varint(v);
  }
  /** Field `tag` (length-delimited) unless empty; `bytes` is its UTF-8 length. */
  str(tag: number, s: string, bytes: number) {
    if (bytes === 0) return;
    this.byte(tag);
    this.varint(bytes);
    if (bytes === s.length && bytes <= shortString) {
      // As many bytes as UTF-16 units: ASCII, written here (cheaper than a call into C++ for a short string).
      const buf = this.buf;
      let at = this.at;
      for (let i = 0; i < bytes; i++) buf[at++] = s.charCodeAt(i);
      this.at = at;
    } else {
      this.at += this.buf.write(s, this.at, "utf8");
    }
  }
  /** The gRPC prefix and the ServerFrame field `tag` holding an inner message of `inner` bytes. */
  frame(tag: number, inner: number) {
    const message = 1 + varintBytes(inner) + inner;
    this.byte(0);
    this.buf.writeUInt32BE(message, 1);
    this.at = prefixBytes;
    this.byte(tag);
    this.varint(inner);
  }
}

/** Strings up to this many UTF-16 units are measured and written in JavaScript when they are ASCII. */
const shortString = 128;

/** A string's UTF-8 length: for short ASCII (the usual case) its length, found by a scan. */
function utf8Length(s: string): number {
  const n = s.length;
  if (n > shortString) return Buffer.byteLength(s);
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s);
  return n;
}

const u64Size = (v: bigint) => (v === 0n ? 0 : 1 + bigVarintBytes(v));
const u32Size = (v: number) => (v === 0 ? 0 : 1 + varintBytes(v));
const lenSize = (bytes: number) => (bytes === 0 ? 0 : 1 + varintBytes(bytes) + bytes);
const frameSize = (inner: number) => prefixBytes + 1 + varintBytes(inner) + inner;

/** Two uint64 fields (credit: scrape_id, bytes; ping: nonce alone). */
function ids(tag: number, a: bigint, b: bigint): Buffer {
  const inner = u64Size(a) + u64Size(b);
  const out = new Out(frameSize(inner));
  out.frame(tag, inner);
  out.u64(0x08, a);
  out.u64(0x10, b);
  return out.buf;
}

/** The header sizes of the order being encoded (encoding is synchronous: one array serves every order). */
const headerSizes: number[] = [];

type OrderInit = {
  scrapeId?: unknown; port?: unknown; path?: unknown; scheme?: unknown; method?: unknown; creditBytes?: unknown;
  headers?: unknown; timeout?: unknown;
};

function order(v: OrderInit): Buffer | undefined {
  const { scrapeId = 0n, port = 0, path = "", scheme = "", method = "", creditBytes = 0n, headers = [], timeout } = v;
  if (!isU64(scrapeId) || !isU32(port) || !isStr(path) || !isStr(scheme) || !isStr(method) || !isU64(creditBytes) || !Array.isArray(headers)) return undefined;
  let seconds = 0n;
  let nanos = 0;
  if (timeout !== undefined) {
    if (typeof timeout !== "object" || timeout === null || !plain(timeout)) return undefined;
    const t = timeout as { seconds?: unknown; nanos?: unknown };
    seconds = (t.seconds ?? 0n) as bigint;
    nanos = (t.nanos ?? 0) as number;
    if (!isU64(seconds, maxI64) || !isU32(nanos, 0x7fffffff)) return undefined;
  }
  const pathBytes = utf8Length(path);
  const schemeBytes = utf8Length(scheme);
  const methodBytes = utf8Length(method);
  const list = headers as unknown[];
  const sizes = headerSizes; // per header: name bytes, value bytes, message bytes
  let headerFields = 0;
  for (let i = 0; i < list.length; i++) {
    const h = list[i];
    if (typeof h !== "object" || h === null || !plain(h)) return undefined;
    const { name = "", value = "" } = h as { name?: unknown; value?: unknown };
    if (!isStr(name) || !isStr(value)) return undefined;
    const n = utf8Length(name);
    const val = utf8Length(value);
    const msg = lenSize(n) + lenSize(val);
    sizes[3 * i] = n;
    sizes[3 * i + 1] = val;
    sizes[3 * i + 2] = msg;
    headerFields += 1 + varintBytes(msg) + msg;
  }
  const durationInner = u64Size(seconds) + u32Size(nanos);
  const inner = u64Size(scrapeId) + u32Size(port) + lenSize(pathBytes) + lenSize(schemeBytes) + headerFields
    + (timeout !== undefined ? 1 + varintBytes(durationInner) + durationInner : 0) + u64Size(creditBytes) + lenSize(methodBytes);
  const out = new Out(frameSize(inner));
  out.frame(0x12, inner); // ServerFrame field 2, order
  out.u64(0x08, scrapeId);
  out.u32(0x10, port);
  out.str(0x1a, path, pathBytes);
  out.str(0x22, scheme, schemeBytes);
  for (let i = 0; i < list.length; i++) {
    const h = list[i] as { name?: string; value?: string };
    out.byte(0x2a);
    out.varint(sizes[3 * i + 2] as number);
    out.str(0x0a, h.name ?? "", sizes[3 * i] as number);
    out.str(0x12, h.value ?? "", sizes[3 * i + 1] as number);
  }
  if (timeout !== undefined) {
    out.byte(0x32);
    out.varint(durationInner);
    out.u64(0x08, seconds);
    out.u32(0x10, nanos);
  }
  out.u64(0x38, creditBytes);
  out.str(0x42, method, methodBytes);
  return out.buf;
}

/** One server frame with its gRPC prefix, written by hand; undefined for a frame left to protobuf-es. */
export function encodeServerFrameFast(frame: ServerFrameInit): Buffer | undefined {
  if (!plain(frame)) return undefined;
  const f = frame.frame;
  if (f === undefined || f.value === undefined || typeof f.value !== "object" || f.value === null || !plain(f.value)) return undefined;
  switch (f.case) {
    case "order":
      return order(f.value as OrderInit);
    case "credit": {
      const { scrapeId = 0n, bytes = 0n } = f.value;
      return isU64(scrapeId) && isU64(bytes) ? ids(0x1a, scrapeId, bytes) : undefined;
    }
    case "ping": {
      const { nonce = 0n } = f.value;
      return isU64(nonce) ? ids(0x2a, nonce, 0n) : undefined;
    }
    case "cancel": {
      const { scrapeId = 0n, reason = "" } = f.value;
      if (!isU64(scrapeId) || !isStr(reason)) return undefined;
      const reasonBytes = utf8Length(reason);
      const inner = u64Size(scrapeId) + lenSize(reasonBytes);
      const out = new Out(frameSize(inner));
      out.frame(0x22, inner);
      out.u64(0x08, scrapeId);
      out.str(0x12, reason, reasonBytes);
      return out.buf;
    }
    default:
      return undefined;
  }
}
