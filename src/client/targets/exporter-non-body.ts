/**
 * What an exchange may read from an exporter besides its answer's body: a
 * few interim (1xx) responses, and HTTP framing (chunk sizes, trailers,
 * whitespace, chunk extensions) within a bound. Without one, an exporter
 * sending `103 Early Hints` forever, or one chunk extension that never ends,
 * was read at full speed until the scrape's deadline (a core's worth of CPU),
 * none of it counted against `maxResponseBytes`.
 */
import { exporterMaxHeaderSize } from "./exporter-pool.ts";
import type { ConnectionMeter } from "./exporter-meter.ts";

/**
 * The most interim (1xx) responses taken before an answer: Go's net/http
 * client, Prometheus' own, takes 5 (`max1xxResponses`) and fails the request
 * on the sixth. A legitimate exporter sends one `103 Early Hints`, if any.
 *
 * @internal
 */
export const exporterMaxInterimResponses = 5;

/**
 * The HTTP framing an exchange may read beyond what its heads and body
 * chunks need, in bytes: 4 × the response head limit (64 KiB by default),
 * room for a whole head or trailer section that undici takes (it counts only
 * header names and values against the limit) before its fields are counted.
 *
 * @internal
 */
export const exporterFramingSlack = 4 * exporterMaxHeaderSize;

/**
 * The framing a body chunk may bring: what undici hands over as one piece of
 * body is a chunk or a part of one; a whole chunk of `n` bytes comes with its
 * size in hex, CRLF, and CRLF after its data. Exactly that: a flat allowance
 * (Go's chunked reader allows 16 bytes a chunk plus twice its data) would pay
 * for an extension on every tiny chunk (`1;eeeeeeeeeeee` per body byte, 19
 * bytes read for one, until the body limit).
 */
const pieceFraming = (n: number) => n.toString(16).length + 4;

/** The bytes of a status line before its reason phrase, and its CRLF. */
const statusLineBytes = 13 + 2;

/** More interim (1xx) responses than {@link exporterMaxInterimResponses}. @internal */
export class InterimFloodError extends Error {
  readonly code = "PROMPROXY_INTERIM_FLOOD";
  constructor() {
    super(`more than ${exporterMaxInterimResponses} interim (1xx) responses before its answer`);
    this.name = "InterimFloodError";
  }
}

/** More framing than {@link exporterFramingSlack} beyond what the heads and body chunks need. @internal */
export class FramingFloodError extends Error {
  readonly code = "PROMPROXY_FRAMING_FLOOD";
  constructor() {
    super(`more than ${exporterFramingSlack} bytes of HTTP framing beyond its heads and body (chunk extensions, whitespace, trailers)`);
    this.name = "FramingFloodError";
  }
}

/** An exchange's account of the bytes its connection reads that are not its body. @internal */
export interface NonBodyBudget {
  /** Starts counting on `meter` (the request is being sent on its connection); none: nothing is counted. */
  attach(meter: ConnectionMeter | undefined): void;
  /**
   * A response head (interim or final): its status line and fields (`fields`: their names' and values' bytes and
   * how many, exporter-head.ts `rawHeadBytes`), as they would be written plainly, are allowed.
   */
  head(statusText: string | undefined, fields: { bytes: number; count: number }): void;
  /** A piece of body: its bytes, and its chunk framing, are allowed. */
  body(n: number): void;
  /** Stops counting (the exchange is over). */
  detach(): void;
}

/**
 * The budget of one exchange: once the bytes read past what its heads and
 * body allow exceed {@link exporterFramingSlack}, `onOver` is called with a
 * {@link FramingFloodError} (it fails the exchange, closing the connection)
 * and nothing more is parsed. The check runs before each read of the
 * connection, on bytes parsed whole: the overshoot is one read at most.
 *
 * @internal
 */
export function nonBodyBudget(onOver: (err: Error) => void): NonBodyBudget {
  let meter: ConnectionMeter | undefined;
  let start = 0;
  let allowed = exporterFramingSlack;
  const watcher = {
    within(bytes: number): boolean {
      if (bytes - start <= allowed) return true;
      budget.detach();
      onOver(new FramingFloodError());
      return false;
    },
  };
  const budget: NonBodyBudget = {
    attach(m) {
      meter = m;
      if (!m) return;
      start = m.bytes;
      m.watcher = watcher;
    },
    head(statusText, fields) {
      // "HTTP/1.1 200 REASON\r\n", each "name: value\r\n", and the empty line.
      allowed += statusLineBytes + Buffer.byteLength(statusText ?? "") + 2 + fields.bytes + 2 * fields.count;
    },
    body(n) {
      allowed += n + pieceFraming(n);
    },
    detach() {
      if (meter?.watcher === watcher) meter.watcher = undefined;
      meter = undefined;
    },
  };
  return budget;
}
