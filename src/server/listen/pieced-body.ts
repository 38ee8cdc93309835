/**
 * An answer body kept as the pieces it is made of (`/clients`: one encoded
 * piece per client, with the brackets and commas between them), written out
 * in slices without ever being joined nor copied: a 58 MB `/clients` joined
 * into one string and encoded to one Buffer on each rebuild stalled the event
 * loop 0.4-1.8 s on a loaded 2-core machine, and every proxied scrape waited
 * behind it (an outside review). A slice is a list of views of the pieces it
 * spans (copying them into fresh 64 KiB buffers cost as much again in
 * allocation and garbage collection).
 *
 * @internal
 */

/** A body as its pieces, in order, and their total size in bytes. */
export interface PiecedBody {
  readonly parts: readonly Buffer[];
  readonly length: number;
}

/** What a sliced answer writes: one Buffer, or pieces. */
export type AnswerBody = Buffer | PiecedBody;

/** The body made of `parts` (kept, not copied). */
export function piecedBody(parts: readonly Buffer[]): PiecedBody {
  let length = 0;
  for (const p of parts) length += p.length;
  return { parts, length };
}

/** The body as one Buffer: itself, or its pieces joined (for small bodies and tests). */
export function joinBody(body: AnswerBody): Buffer {
  return Buffer.isBuffer(body) ? body : Buffer.concat(body.parts as Buffer[], body.length);
}

/**
 * Reads `body` front to back: each call gives its next slice, at most `max`
 * bytes (fewer only at the end) as views of its pieces (nothing copied), then
 * undefined.
 */
export function sliceReader(body: AnswerBody, max: number): () => Buffer[] | undefined {
  const parts = Buffer.isBuffer(body) ? [body] : body.parts;
  let i = 0;
  let at = 0;
  return () => {
    const views: Buffer[] = [];
    let n = 0;
    while (i < parts.length && n < max) {
      const p = parts[i]!;
      const take = Math.min(p.length - at, max - n);
      if (take > 0) views.push(p.subarray(at, at + take));
      n += take;
      at += take;
      if (at >= p.length) (i++, (at = 0));
    }
    return n > 0 ? views : undefined;
  };
}
