/**
 * The retry hint: response metadata (a trailer on gRPC, Trailers-Only
 * included; a header or end-of-stream metadata on Connect) a server sets when
 * it refuses a stream to shed load, saying in how many milliseconds the
 * client should try again. The server spreads its hints, so that the clients
 * it turns away in one burst do not all come back in the next one.
 *
 * A client honours a hint only within its own backoff bounds: a hint below
 * `backoff.initialMs` waits that long, one above `backoff.maxMs` waits that
 * long, and a value that is not a plain count of milliseconds is ignored (the
 * client backs off as it would without a hint). So a hostile or broken server
 * can neither make a client hammer it nor park it for longer than its backoff
 * would.
 */
export const retryAfterKey = "promproxy-retry-after-ms";

/** Metadata carrying a hint of `ms` milliseconds (rounded, at least 0). */
export function retryAfterMetadata(ms: number): Headers {
  return new Headers({ [retryAfterKey]: String(Math.max(0, Math.round(ms))) });
}

/**
 * The wait a hint in `metadata` asks for, clamped to `[minMs, maxMs]`, or
 * undefined when there is none or it is not 1 to 10 decimal digits (one value;
 * a repeated key, joined with commas, is ignored too).
 */
export function readRetryAfter(metadata: Headers | undefined, bounds: { minMs: number; maxMs: number }): number | undefined {
  const v = metadata?.get(retryAfterKey)?.trim();
  if (v === undefined || !/^\d{1,10}$/.test(v)) return undefined;
  return Math.min(bounds.maxMs, Math.max(bounds.minMs, Number(v)));
}
