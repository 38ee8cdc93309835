/**
 * Chunk frames passed on as they arrive. A `chunk` message larger than the
 * piece of the stream its prefix came in (a chunk of up to maxChunkBytes
 * arrives in HTTP/2 DATA frames of 16 KiB) is otherwise gathered into one
 * buffer before it is read: a copy, and an allocation of up to maxChunkBytes
 * per frame whose external memory drove most of the server's garbage
 * collection on large scrapes, and the body waits for its whole frame at
 * every hop. Here its body bytes leave as the pieces come, each as a chunk
 * frame of its own for the session (the same bytes, the same order, the same
 * credit).
 *
 * Taken only when the frame is laid out as every encoder writes it (the
 * chunk field, then scrape_id, then data running to the message's end, their
 * headers in the first piece) and the session would take the whole chunk at
 * once (`Session.takesChunk`): a chunk that breaks any rule is still gathered
 * and refused whole, before a byte of it is relayed, and anything unusual is
 * read by the decoder as before.
 *
 * @internal
 */
import type { ClientFrame } from "../../../gen/promproxy/v1/scrape_pb.ts";
import { NotCovered, ProtoReader } from "../../shared/proto-reader.ts";

/** Where a chunk's data starts in its message, and for which scrape. @internal */
export interface ChunkStart {
  scrapeId: bigint;
  /** Offset of the data in the message. */
  offset: number;
  /** Data bytes: from `offset` to the message's end. */
  length: number;
}

const chunkTag = (3 << 3) | 2; // ClientFrame.chunk, length-delimited
const idTag = (1 << 3) | 0; // ResultChunk.scrape_id, varint
const dataTag = (2 << 3) | 2; // ResultChunk.data, length-delimited

/** Reads the start of a `length`-byte message from its first bytes; undefined unless it is a chunk laid out as above. */
export function readChunkStart(first: Uint8Array, length: number): ChunkStart | undefined {
  try {
    const r = new ProtoReader(first);
    if (r.u32() !== chunkTag) return undefined;
    if (r.u32() !== length - r.pos) return undefined;
    let tag = r.u32();
    let scrapeId = 0n;
    if (tag === idTag) {
      scrapeId = r.u64();
      tag = r.u32();
    }
    if (tag !== dataTag) return undefined;
    const n = r.u32();
    if (n !== length - r.pos) return undefined;
    return { scrapeId, offset: r.pos, length: n };
  } catch (e) {
    if (e instanceof NotCovered) return undefined;
    throw e;
  }
}

/** A chunk frame of some of a scrape's body bytes, as the decoder makes it. @internal */
export function chunkFrame(scrapeId: bigint, data: Uint8Array): ClientFrame {
  return { $typeName: "promproxy.v1.ClientFrame", frame: { case: "chunk", value: { $typeName: "promproxy.v1.ResultChunk", scrapeId, data } } };
}
