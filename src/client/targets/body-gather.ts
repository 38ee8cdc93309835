/**
 * Body bytes an exporter's connection handed over while the last chunk's
 * write was pending, kept in order to leave as one chunk behind it. An
 * exporter answering in 1-byte HTTP chunks (legal) used to cost a gRPC chunk
 * frame, a pause and a resume per body byte: 132,007 frames for 18 scrapes of
 * 12 KB, and seconds of delay for the other targets on the same forwarder
 * (review 17a). Small pieces are copied into a scratch buffer as they come
 * (not held as thousands of views), larger ones are kept as they are and
 * copied once, when taken with others.
 *
 * @internal
 */
export interface BodyGather {
  /** Bytes gathered now. */
  readonly bytes: number;
  /** Appends `chunk` (a view of the socket's bytes: kept as is when large, copied when small). */
  add(chunk: Buffer): void;
  /** What was gathered, as one buffer (a copy only when it came in several pieces), and empties it; undefined when empty. */
  take(): Buffer | undefined;
  /** Drops what was gathered. */
  clear(): void;
}

/** Pieces smaller than this are copied into the scratch buffer; larger ones are kept as views. */
const copyBelowBytes = 1024;
/** The scratch buffer's size: a new one is started when a small piece no longer fits. */
const scratchBytes = 16 * 1024;

export function createBodyGather(): BodyGather {
  let parts: Buffer[] = [];
  let bytes = 0;
  let scratch: Buffer | undefined;
  let used = 0;
  /** The scratch buffer's bytes so far become a part: what comes next goes after them. */
  const seal = () => {
    if (scratch && used > 0) parts.push(scratch.subarray(0, used));
    scratch = undefined;
    used = 0;
  };
  return {
    get bytes() {
      return bytes;
    },
    add(chunk) {
      const n = chunk.byteLength;
      if (n === 0) return;
      bytes += n;
      if (n >= copyBelowBytes) {
        seal();
        parts.push(chunk);
        return;
      }
      if (!scratch || used + n > scratch.byteLength) {
        seal();
        scratch = Buffer.allocUnsafe(scratchBytes);
      }
      chunk.copy(scratch, used);
      used += n;
    },
    take() {
      seal();
      if (bytes === 0) return undefined;
      const one = parts.length === 1 ? parts[0]! : Buffer.concat(parts, bytes);
      parts = [];
      bytes = 0;
      return one;
    },
    clear() {
      parts = [];
      bytes = 0;
      scratch = undefined;
      used = 0;
    },
  };
}
