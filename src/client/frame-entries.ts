/**
 * The repeated entries of a server frame, counted before it is decoded: an
 * empty header or replica id is 2 bytes on the wire and an object or a
 * string once decoded, so a frame within a raised `maxServerFrameBytes` (up
 * to 64 MiB) could carry millions, and decoding them first and checking
 * afterwards cost the host up to 0.9 s of its event loop and ~120 MB a frame
 * (an outside review, round 16a). Here the frame's tags are walked, nothing
 * built, and the walk stops at the first entry over its cap: an order's
 * headers (64), a welcome's or a replica set's replica ids (`maxReplicas`),
 * a welcome's features (64). Such a frame ends the stream with the same line
 * the checks after decoding give (server-limits.ts, replica-set.ts).
 *
 * The walk reads as protobuf-es's `fromBinary` does (its BinaryReader's reads
 * without their allocations, a known field read by its declared type whatever its wire type says, an
 * unknown one skipped, a message's end not enforced), so that no entry it
 * would decode goes uncounted; where the bytes stop making sense it stops
 * and leaves the frame to the decoders, whose errors say why. The occurrences
 * of a field count together (protobuf-es merges repeated message fields).
 * Used by both transports: the fast path's frame reader
 * (grpc-fast/frame-codec.ts) and the Connect transport's whole envelopes
 * (whole-envelopes.ts), before connect-es decodes them.
 *
 * @internal
 */
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import { ReplicaSetSchema, ScrapeOrderSchema, ServerFrameSchema, WelcomeSchema } from "../../gen/promproxy/v1/scrape_pb.ts";
import { tooManyReplicas } from "./replica-set.ts";
import { maxOrderHeaders, tooManyOrderHeaders } from "./server-limits.ts";

/** The most features a welcome may list (a server answers with those of the client's hello it will use: three today; a hello may list 64). */
export const maxWelcomeFeatures = 64;

/**
 * Frames smaller than this are not walked: they decode to a hundred entries
 * at most, and the checks after decoding refuse any over a cap.
 */
export const walkFromBytes = 256;

/** The caps that depend on the client's options. */
export interface EntryLimits {
  /** The client's `maxReplicas`: the most replica ids a welcome or a replica set frame may carry. */
  maxReplicas: number;
}

/** protobuf-es's default, which the client's reads keep. */
const recursionLimit = 100;

/** The line a welcome listing more than {@link maxWelcomeFeatures} features ends the stream with. */
export function tooManyFeatures(): ConnectError {
  return new ConnectError(`the server's welcome lists more than ${maxWelcomeFeatures} features`, Code.FailedPrecondition);
}

/**
 * How a field is read, by field number: a nested message (its table), or the
 * wire type protobuf-es reads a scalar as, whatever the tag says.
 */
type Kind = Table | WireType;
interface Table {
  kinds: (Kind | undefined)[];
  /** The cap's index (into the checker's counts) of a counted list field, by field number. */
  caps: (number | undefined)[];
}

/** The repeated fields counted, in cap index order. */
const counted = [ScrapeOrderSchema.field.headers, WelcomeSchema.field.features, WelcomeSchema.field.replicaIds, ReplicaSetSchema.field.replicaIds] as DescField[];

/** The tables of a message and of the messages it holds, from protobuf-es's descriptors (built once). */
function tableOf(desc: DescMessage, built = new Map<DescMessage, Table>()): Table {
  const known = built.get(desc);
  if (known) return known;
  const t: Table = { kinds: [], caps: [] };
  built.set(desc, t);
  for (const f of desc.fields) {
    const cap = counted.indexOf(f);
    if (cap >= 0) t.caps[f.number] = cap;
    if (f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message")) t.kinds[f.number] = tableOf(f.message, built);
    else if (f.fieldKind === "scalar" || (f.fieldKind === "list" && f.listKind === "scalar")) {
      // A list of numbers may come packed (one length-delimited run; none in a server frame): read by the tag's word.
      const packable = f.fieldKind === "list" && f.scalar !== ScalarType.STRING && f.scalar !== ScalarType.BYTES;
      if (!packable) t.kinds[f.number] = scalarWire(f.scalar);
    } else if (f.fieldKind === "enum") t.kinds[f.number] = WireType.Varint;
    // Maps and lists of enums (none in a server frame): read by the tag's word.
  }
  return t;
}

/** The wire type protobuf-es reads a scalar of type `t` as. */
function scalarWire(t: ScalarType): WireType {
  switch (t) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WireType.LengthDelimited;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WireType.Bit64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return WireType.Bit32;
    default:
      return WireType.Varint;
  }
}

const serverFrame = tableOf(ServerFrameSchema);
/** Where the walk stops without a verdict: bytes protobuf-es refuses there too. */
const refused = new Error("refused by protobuf-es");

/**
 * A checker of frame bodies for one stream: throws a ConnectError for a body
 * whose repeated entries exceed their caps; otherwise returns, having built
 * nothing. Stops at the first entry over a cap, or where protobuf-es would
 * stop with an error.
 */
export function frameEntriesCheck(limits: EntryLimits): (body: Uint8Array) => void {
  const max = [maxOrderHeaders, maxWelcomeFeatures, limits.maxReplicas, limits.maxReplicas];
  const errors = [tooManyOrderHeaders, tooManyFeatures, () => tooManyReplicas("welcome", limits.maxReplicas), () => tooManyReplicas("replica set frame", limits.maxReplicas)];
  return (body) => {
    if (body.byteLength < walkFromBytes) return;
    const counts = [0, 0, 0, 0];
    const w = new Walker(body);
    const walk = (t: Table, length: number, depth: number): void => {
      if (depth > recursionLimit) throw refused;
      const end = w.pos + length;
      while (w.pos < end) {
        w.tag();
        const { no, wt } = w;
        const kind = no < t.kinds.length ? t.kinds[no] : undefined;
        if (kind === undefined) {
          w.skip(wt, no, recursionLimit - depth);
          continue;
        }
        const cap = t.caps[no];
        if (cap !== undefined && ++(counts[cap] as number) > (max[cap] as number)) throw (errors[cap] as () => ConnectError)();
        if (typeof kind === "object") walk(kind, w.uint32(), depth + 1);
        else w.skip(kind, no, 0);
      }
    };
    try {
      walk(serverFrame, body.byteLength, 1);
    } catch (e) {
      if (e instanceof ConnectError) throw e;
      // Bytes protobuf-es refuses as well, at the same place: its error is the one the stream ends with.
    }
  };
}

/**
 * protobuf-es's BinaryReader (2.x: `tag`, `uint32`, `skip`), read for read,
 * without what it makes (an array per tag, a view per skip): where it throws,
 * this throws. test/frame-entries.test.ts checks the two agree.
 */
class Walker {
  readonly buf: Uint8Array;
  pos = 0;
  constructor(buf: Uint8Array) {
    this.buf = buf;
  }
  private bounds(): void {
    if (this.pos > this.buf.byteLength) throw refused;
  }
  /** A varint as a uint32 (up to 10 bytes, the bits past 32 dropped), as varint32read. */
  uint32(): number {
    const buf = this.buf;
    let result = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      const b = buf[this.pos++] as number; // past the end: undefined, which reads as 0 here, then fails the bounds
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) {
        this.bounds();
        return result >>> 0;
      }
    }
    let b = buf[this.pos++] as number;
    result |= (b & 0x0f) << 28;
    for (let read = 5; (b & 0x80) !== 0 && read < 10; read++) b = buf[this.pos++] as number;
    if ((b & 0x80) !== 0) throw refused;
    this.bounds();
    return result >>> 0;
  }
  /** The last tag's field number and wire type. */
  no = 0;
  wt: WireType = WireType.Varint;
  /** Reads a tag into `no` and `wt`, refused as BinaryReader.tag() refuses one. */
  tag(): void {
    const start = this.pos;
    const tag = this.uint32();
    const n = this.pos - start;
    if (n > 5 || (n === 5 && (this.buf[this.pos - 1] as number) > 0x0f)) throw refused;
    const no = tag >>> 3;
    const wt = tag & 7;
    if (no <= 0 || wt > 5) throw refused;
    this.no = no;
    this.wt = wt;
  }
  /** Past one value of wire type `wt` (a group up to its end, `depth` groups deep at most). */
  skip(wt: WireType, no: number, depth: number): void {
    switch (wt) {
      case WireType.Varint:
        while ((this.buf[this.pos++] as number) & 0x80);
        break;
      case WireType.Bit64:
        this.pos += 8;
        break;
      case WireType.Bit32:
        this.pos += 4;
        break;
      case WireType.LengthDelimited: {
        const n = this.uint32();
        this.pos += n;
        break;
      }
      case WireType.StartGroup:
        if (depth <= 0) throw refused;
        for (;;) {
          this.tag();
          const { no: fn, wt: w } = this;
          if (w === WireType.EndGroup) {
            if (fn !== no) throw refused;
            break;
          }
          this.skip(w, fn, depth - 1);
        }
        break;
      default:
        throw refused;
    }
    this.bounds();
  }
}
