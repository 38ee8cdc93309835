/**
 * Hand-written protobuf for the frames every scrape sends with a head:
 * `ClientFrame{head: ResultHead{scrape_id, status, headers}}` and, with the
 * feature "single-result", `ClientFrame{result: ScrapeResult{scrape_id,
 * status, headers, data}}` as a header around the target's own bytes (never
 * copied). Byte for byte what protobuf-es writes (fields in order, zero
 * values and empty strings omitted); fuzzed against it in test/frame-codec.test.ts.
 *
 * @internal
 */

/** Bytes of the gRPC prefix: a flag byte and a big-endian uint32 length. */
const prefixBytes = 5;

/** Appends `v` as a protobuf varint (any uint64; wider values wrap as protobuf-es does). */
export function varintBig(out: number[], v: bigint): void {
  if (v < 0n || v >= 1n << 64n) v = BigInt.asUintN(64, v);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
}

export function varintBytes(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/** Writes varint `v` (< 2^53) at `at`; returns the offset after it. */
export function writeVarint(buf: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    buf[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  buf[at++] = v;
  return at;
}

/** A head's fields as a frame init gives them. */
export type HeadInit = { scrapeId?: bigint; status?: number; headers?: { name?: string; value?: string }[] };

/** ClientFrame field tags (length-delimited) of the frames this encoder writes. */
export const headTag = 0x12; // field 2, head
export const resultTag = 0x32; // field 6, result

/**
 * The gRPC message of a head (`tag` = {@link headTag}), or the prefix and
 * fields of a result (`tag` = {@link resultTag}) up to the length of its
 * `data` field, whose `dataBytes` bytes follow it; undefined for anything it
 * does not cover (a status out of range, a header that is not plain strings).
 */
export function headFrame(v: HeadInit, tag: number, dataBytes = 0): Buffer | undefined {
  const status = v.status ?? 0;
  if (!Number.isInteger(status) || status < 0 || status > 0xffffffff) return undefined;
  const id: number[] = [];
  if ((v.scrapeId ?? 0n) !== 0n) varintBig(id, v.scrapeId ?? 0n);
  const headers = v.headers ?? [];
  const sizes: number[] = []; // per header: name bytes, value bytes, message bytes
  let fields = (id.length > 0 ? 1 + id.length : 0) + (status !== 0 ? 1 + varintBytes(status) : 0);
  for (const h of headers) {
    if (typeof (h.name ?? "") !== "string" || typeof (h.value ?? "") !== "string" || "$typeName" in h) return undefined;
    const n = Buffer.byteLength(h.name ?? "");
    const val = Buffer.byteLength(h.value ?? "");
    const msg = (n > 0 ? 1 + varintBytes(n) + n : 0) + (val > 0 ? 1 + varintBytes(val) + val : 0);
    sizes.push(n, val, msg);
    fields += 1 + varintBytes(msg) + msg;
  }
  const dataField = dataBytes > 0 ? 1 + varintBytes(dataBytes) : 0;
  const inner = fields + dataField + dataBytes;
  const message = 1 + varintBytes(inner) + inner;
  const out = Buffer.allocUnsafe(prefixBytes + message - dataBytes);
  out[0] = 0;
  out.writeUInt32BE(message, 1);
  out[5] = tag;
  let at = writeVarint(out, 6, inner);
  if (id.length > 0) {
    out[at++] = 0x08;
    out.set(id, at);
    at += id.length;
  }
  if (status !== 0) {
    out[at++] = 0x10;
    at = writeVarint(out, at, status);
  }
  headers.forEach((h, i) => {
    const [n, val, msg] = [sizes[3 * i] as number, sizes[3 * i + 1] as number, sizes[3 * i + 2] as number];
    out[at++] = 0x1a;
    at = writeVarint(out, at, msg);
    if (n > 0) {
      out[at++] = 0x0a;
      at = writeVarint(out, at, n);
      at += out.write(h.name ?? "", at, "utf8");
    }
    if (val > 0) {
      out[at++] = 0x12;
      at = writeVarint(out, at, val);
      at += out.write(h.value ?? "", at, "utf8");
    }
  });
  if (dataBytes > 0) {
    out[at++] = 0x22; // field 4, data
    writeVarint(out, at, dataBytes);
  }
  return out;
}
