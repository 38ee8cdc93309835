import { readRetryAfter } from "../shared/retry-after.ts";

/** How a client waits between connection attempts. */
export interface BackoffOptions {
  /** First delay. Default 500 ms. */
  initialMs?: number;
  /** Largest delay. Default 30 000 ms. */
  maxMs?: number;
  /** Growth per failed attempt. Default 2. */
  multiplier?: number;
  /** Fraction of each delay that is random, 0..1 (spreads reconnecting clients). Default 0.5. */
  jitter?: number;
}

/**
 * Exponential backoff with jitter; a server's retry hint (src/shared/retry-after.ts) in the last attempt's
 * metadata is honoured instead, clamped to `[initialMs, maxMs]`. @internal
 */
export function createBackoff(o: BackoffOptions = {}, random: () => number = Math.random) {
  const initialMs = o.initialMs ?? 500;
  const maxMs = o.maxMs ?? 30_000;
  const multiplier = o.multiplier ?? 2;
  const jitter = o.jitter ?? 0.5;
  if (!(initialMs > 0) || !(maxMs >= initialMs) || !(multiplier >= 1) || !(jitter >= 0 && jitter <= 1)) {
    throw new RangeError("promproxy: backoff needs initialMs > 0, maxMs >= initialMs, multiplier >= 1 and 0 <= jitter <= 1");
  }
  let attempt = 0;
  return {
    /**
     * The delay before the next attempt: the retry hint in `metadata` (the failed attempt's), clamped, when it
     * has one; else the exponential step, each such call growing the next one.
     */
    next(metadata?: Headers): number {
      const hinted = readRetryAfter(metadata, { minMs: initialMs, maxMs });
      if (hinted !== undefined) return hinted;
      const base = Math.min(maxMs, initialMs * multiplier ** attempt);
      attempt++;
      return base * (1 - jitter * random());
    },
    reset() {
      attempt = 0;
    },
  };
}
