import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";

/** Bytes per slice: what one write hands the stream. */
export const sliceBytes = 64 * 1024;

/**
 * Writes `body` and ends `res`, in slices of {@link sliceBytes} over HTTP/2,
 * each after the previous went out ('drain'): the stream then holds one
 * slice at a time, and each one the peer takes is progress the unread-answer
 * watch (src/server/listen/unread-answers.ts) sees, so that a slow reader of
 * a large page is not taken for one that reads nothing. Stops when the
 * stream closes (reset). HTTP/1.1 answers are written whole.
 *
 * @internal
 */
export function endInSlices(res: ServerResponse | Http2ServerResponse, body: string | Buffer): void {
  if (!("stream" in res) || Buffer.byteLength(body) <= sliceBytes) return void res.end(body);
  const bytes = typeof body === "string" ? Buffer.from(body) : body;
  let at = 0;
  const next = () => {
    while (at < bytes.length) {
      if (res.stream.destroyed) return;
      const slice = bytes.subarray(at, Math.min(at + sliceBytes, bytes.length));
      at += slice.length;
      if (at === bytes.length) return void res.end(slice);
      if (!res.write(slice)) return void res.stream.once("drain", next);
    }
  };
  next();
}
