/**
 * A pass over a client frame's wire bytes before protobuf-es decodes it,
 * counting the entries of its repeated and map fields without building
 * them: a frame with more than the bounds allow (frame-bounds.ts; a hello's
 * labels and targets: the `maxLabels` and `maxTargets` options) is refused
 * at the first entry over, instead of decoded whole. Anything malformed is
 * left to protobuf-es, whose errors stay the only ones.
 *
 * @internal
 */
import { LEN, NotCovered, notCovered, ProtoReader, VARINT } from "../../shared/proto-reader.ts";
import { headersOverBound, helloOverBound, maxHeldReplicaIds, maxHelloFeatures, maxResultHeaders } from "../frame-bounds.ts";
import type { HelloLimits } from "../hello.ts";

/** The options a hello's entries are held to. @internal */
export type ScanLimits = Pick<HelloLimits, "maxLabels" | "maxTargets">;

/** Calls `onLen` for each length-delimited field of the message in [s, e), skipping the others. */
function each(buf: Uint8Array, s: number, e: number, onLen: (f: number, s: number, e: number) => void): void {
  const r = new ProtoReader(buf, s, e);
  while (r.pos < r.end) {
    const t = r.tag();
    const w = t & 7;
    if (w === LEN) {
      const [a, b] = r.span();
      onLen(t >>> 3, a, b);
    } else if (w === VARINT) r.u64();
    else if (w === 1 || w === 5) {
      const n = w === 1 ? 8 : 4;
      if (r.end - r.pos < n) throw notCovered;
      r.pos += n;
    } else throw notCovered; // a group: protobuf-es's business
  }
}

/**
 * Throws the refusal (a ConnectError, InvalidArgument) when a hello, head or
 * result in `bytes` has more entries in a repeated field than allowed;
 * returns otherwise. Entries of a message given twice add up, as protobuf
 * merges them.
 */
export function scanClientFrame(bytes: Uint8Array, limits: ScanLimits): void {
  let labels = 0;
  let targets = 0;
  let features = 0;
  let held = 0;
  let heads = 0;
  let results = 0;
  const hello = (f: number, s: number, e: number) => {
    if (f === 2 && ++labels > limits.maxLabels) throw helloOverBound("labels", limits.maxLabels);
    if (f === 5 && ++features > maxHelloFeatures) throw helloOverBound("features", maxHelloFeatures);
    if (f === 6 && ++held > maxHeldReplicaIds) throw helloOverBound("held_replica_ids", maxHeldReplicaIds);
    if (f === 3) {
      if (++targets > limits.maxTargets) throw helloOverBound("targets", limits.maxTargets);
      let own = 0;
      each(bytes, s, e, (g) => {
        if (g === 3 && ++own > limits.maxLabels) throw helloOverBound("target labels", limits.maxLabels);
      });
    }
  };
  try {
    each(bytes, 0, bytes.byteLength, (f, s, e) => {
      if (f === 1) each(bytes, s, e, hello);
      else if (f === 2) each(bytes, s, e, (g) => void (g === 3 && ++heads > maxResultHeaders && fail("head")));
      else if (f === 6) each(bytes, s, e, (g) => void (g === 3 && ++results > maxResultHeaders && fail("result")));
    });
  } catch (e) {
    if (e instanceof NotCovered) return;
    throw e;
  }
}

function fail(kind: string): never {
  throw headersOverBound(kind);
}
