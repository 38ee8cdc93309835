/**
 * What an exporter's answer may carry around its body, beyond what undici
 * checks itself: the trailers after a chunked body.
 */

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
