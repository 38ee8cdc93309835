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

/** Exponential backoff with jitter. @internal */
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
    /** The delay before the next attempt; each call grows the next one. */
    next(): number {
      const base = Math.min(maxMs, initialMs * multiplier ** attempt);
      attempt++;
      return base * (1 - jitter * random());
    },
    reset() {
      attempt = 0;
    },
  };
}
