/**
 * What an exporter's answer may carry around its body, beyond what undici
 * checks itself: its status line, held to the response head limit with the
 * headers; the framing of an answer that has no content (204, 304); the
 * trailers after a chunked body.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { Dispatcher } from "undici";

/** The bytes of the status line before its reason phrase ("HTTP/1.1 200 "). */
const statusLinePrefix = 13;

/**
 * A response head over the limit because of its status line (undici counts
 * only header names and values): the same code as undici's own overflow.
 * `statusLineBytes` is undefined when the status line alone is over the limit
 * (undici hands over only the last part of a reason phrase that arrived in
 * several reads, so its whole length is not known).
 *
 * @internal
 */
export class StatusLineOverflowError extends Error {
  readonly code = "UND_ERR_HEADERS_OVERFLOW";
  readonly limit: number;
  readonly statusLineBytes: number | undefined;
  constructor(limit: number, statusLineBytes: number | undefined) {
    super(`response head over ${limit} bytes: its status line is ${statusLineBytes === undefined ? "longer alone" : `${statusLineBytes} bytes of it`}`);
    this.name = "StatusLineOverflowError";
    this.limit = limit;
    this.statusLineBytes = statusLineBytes;
  }
}

/** The bytes of a head's header names and values (undici's raw headers), and how many there are of them. @internal */
export function rawHeadBytes(raw: Dispatcher.DispatchController["rawHeaders"]): { bytes: number; count: number } {
  let bytes = 0;
  if (!Array.isArray(raw)) return { bytes, count: 0 };
  for (const b of raw as (Buffer | string)[]) bytes += typeof b === "string" ? Buffer.byteLength(b) : b.byteLength;
  return { bytes, count: raw.length };
}

/**
 * The response head's check that undici leaves out: its reason phrase
 * counts against the head limit with the header names and values
 * (`headerBytes`, {@link rawHeadBytes}), as undici counts these (the head
 * fails at `limit` bytes of them). Returns the error, or undefined when the
 * head is within the limit.
 *
 * @internal
 */
export function statusLineOverflow(statusText: string | undefined, headerBytes: number, limit: number): StatusLineOverflowError | undefined {
  const reason = Buffer.byteLength(statusText ?? "");
  if (reason === 0) return undefined;
  if (reason >= limit) return new StatusLineOverflowError(limit, undefined);
  return reason + headerBytes >= limit ? new StatusLineOverflowError(limit, statusLinePrefix + reason) : undefined;
}

/**
 * The head of a 204 or 304 answer, which has no content (RFC 9110): a 204
 * with a Content-Length other than 0 or a Transfer-Encoding (which a server
 * must not send with it) is malformed, and refused with an error saying so
 * (undici reads no body and closes the connection, as whatever follows is not
 * the next answer). A 304's Content-Length describes the representation a 200
 * would have sent, not a body: it is dropped from `relayed`, so the relayed
 * 304 does not announce bytes that never come.
 *
 * @param relayed the headers relayed from the answer, changed in place
 * @param got all the answer's headers
 * @internal
 */
export function bodylessHead(status: number, relayed: Record<string, string>, got: IncomingHttpHeaders): Error | undefined {
  if (status === 304) delete relayed["content-length"];
  if (status !== 204) return undefined;
  const length = relayed["content-length"];
  const te = got["transfer-encoding"];
  const framing = length !== undefined && length.trim() !== "0" ? `Content-Length: ${length}` : te !== undefined ? `Transfer-Encoding: ${String(te)}` : undefined;
  return framing === undefined ? undefined : new Error(`answered malformed HTTP: 204 No Content with ${framing}, but a 204 answer has no content`);
}

/**
 * Whether a failure that came after the final response head is undici
 * refusing the trailers of a chunked answer (the fields after its last, empty
 * chunk) past the head limit (UND_ERR_HEADERS_OVERFLOW: after the head, only
 * trailers are counted against it). The body was whole by then and has been
 * handed over: the answer counts as ended, as Prometheus ignores trailers; the
 * connection is closed, so nothing more of it is read.
 *
 * @internal
 */
export function trailersOverflow(err: unknown, headed: boolean): boolean {
  return headed && (err as { code?: unknown } | null)?.code === "UND_ERR_HEADERS_OVERFLOW";
}
