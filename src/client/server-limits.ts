/**
 * What the client believes of its server, and no more: every size and duration
 * a server sends is bounded here before it is used (PROTOCOL.md, "What a client
 * accepts from a server"). A compromised server, a stale DNS entry or a rogue
 * replica must not cost the host application more than a small, bounded amount.
 *
 * @internal
 */
import type { Duration } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ScrapeOrder } from "../../gen/promproxy/v1/scrape_pb.ts";

/**
 * The smallest `max_chunk_bytes` the client works with. Below it a body costs
 * one frame (and its CPU) per few bytes; such a welcome ends the stream.
 */
export const minChunkBytes = 512;
/** The longest replica or session id a welcome may carry (the server's are a host name and a suffix, a UUID). */
export const maxServerIdLength = 128;
/** Body bytes queued at once per stream; a scrape writes its next chunk only once the transport took the earlier ones. */
export const chunkHighWaterBytes = 256 * 1024;
/** Heartbeat intervals a server may announce, in ms (outside: clamped). */
export const heartbeatRangeMs = { min: 100, max: 10 * 60_000 } as const;
/** Order timeouts a server may give, in ms (outside: clamped). */
export const orderTimeoutRangeMs = { min: 1, max: 60 * 60_000 } as const;
/** A duration the server left unset or zero. */
export const unsetDurationMs = 10_000;
/** The most credit a scrape counts (PROTOCOL.md: never more than 2^53 bytes in all). */
export const maxCredit = 2 ** 53;
/** The most headers an order may carry (a server passes on four: Accept, Accept-Encoding, User-Agent, the scrape timeout). */
export const maxOrderHeaders = 64;

/**
 * The protocol error that ends the stream for an order with more than {@link maxOrderHeaders} headers (said
 * without their number: a frame is refused at the first header over, before the others are read; frame-entries.ts).
 */
export function tooManyOrderHeaders(): ConnectError {
  return new ConnectError(`protocol error: the server sent an order with more than ${maxOrderHeaders} headers`, Code.Internal);
}

/** `o`, or the protocol error of {@link tooManyOrderHeaders}. */
export function checkOrder(o: ScrapeOrder): ScrapeOrder {
  if (o.headers.length <= maxOrderHeaders) return o;
  throw tooManyOrderHeaders();
}

/**
 * A server's Duration in ms, clamped to `range` (unset or zero: 10 s). Any
 * int64 seconds and int32 nanos give a finite number within the range, so the
 * result is always safe for a timer.
 */
export function clampDuration(d: Duration | undefined, range: { min: number; max: number }): number {
  const ms = d ? Number(d.seconds) * 1000 + d.nanos / 1e6 : 0;
  if (ms === 0 || !Number.isFinite(ms)) return Math.min(range.max, Math.max(range.min, unsetDurationMs));
  return Math.min(range.max, Math.max(range.min, ms));
}
