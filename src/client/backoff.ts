import { readRetryAfter } from "../shared/retry-after.ts";
import { maxTimerMs } from "../shared/sleep.ts";

/** How a client waits between connection attempts. */
export interface BackoffOptions {
  /** First delay. */
  initialMs?: number;
  /** Largest delay. */
  maxMs?: number;
  /** Growth per failed attempt. */
  multiplier?: number;
  /** Fraction of each delay that is random, 0..1 (spreads reconnecting clients). */
  jitter?: number;
}

/**
 * How long a welcomed stream must have lived (from its welcome to its end) for the backoff to start over. A stream
 * that ends sooner counts as a failed attempt: the next wait is the next step, as after a refusal. So a server that
 * welcomes every stream and resets it at once gets the growing backoff (up to its largest step), not a redial every
 * half second, while a stream that served for a while is redialled after the first step (a restart, a failover).
 * @internal
 */
export const stableStreamMs = 10_000;

/** `o` over `defaults`, checked; throws a RangeError naming `option`. @internal */
export function resolveBackoff(o: BackoffOptions | undefined, defaults: Required<BackoffOptions>, option: string): Required<BackoffOptions> {
  const r = { ...defaults, ...o };
  const { initialMs, maxMs, multiplier, jitter } = r;
  if (!(initialMs > 0) || !(maxMs >= initialMs) || !(maxMs <= maxTimerMs) || !(multiplier >= 1) || !(jitter >= 0 && jitter <= 1)) {
    throw new RangeError(`promproxy: option ${option} needs initialMs > 0, initialMs <= maxMs <= ${maxTimerMs} (a timer's limit), multiplier >= 1 and 0 <= jitter <= 1`);
  }
  return r;
}

/**
 * Exponential backoff with jitter, on checked options (`resolveBackoff`); a server's retry hint
 * (src/shared/retry-after.ts) in the last attempt's metadata lengthens the step, clamped to `[initialMs, maxMs]`,
 * and never shortens it. @internal
 */
export function createBackoff(o: Required<BackoffOptions>, random: () => number = Math.random) {
  const { initialMs, maxMs, multiplier, jitter } = o;
  let attempt = 0;
  return {
    /**
     * The delay before the next attempt: the retry hint in `metadata` (the failed attempt's), clamped, when it
     * has one; else the exponential step, each such call growing the next one.
     */
    next(metadata?: Headers): number {
      const base = Math.min(maxMs, initialMs * multiplier ** attempt);
      attempt++;
      const step = base * (1 - jitter * random());
      // A hint is a floor, never a shortcut: a server hinting 0 again and again still sees the client back off.
      const hinted = readRetryAfter(metadata, { minMs: initialMs, maxMs });
      return hinted === undefined ? step : Math.max(hinted, step);
    },
    reset() {
      attempt = 0;
    },
  };
}
