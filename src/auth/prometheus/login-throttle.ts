import { sourceKey } from "../../shared/source-key.ts";

/**
 * Per-address throttle of password checks that may fail (a token bucket per
 * source address). An address starts with `burst` tokens and regains one every
 * `refillMs`; every check that needs real work (a hash, a `verify` call) takes
 * one before it starts and gives it back when the credential turns out right,
 * so only failures spend the bucket, and concurrent attempts cannot all start
 * before the first has failed.
 *
 * IPv4-mapped IPv6 addresses count as their IPv4 address; other IPv6
 * addresses by their /64, what one host is usually given. At most
 * `maxAddresses` buckets are kept: the one used least recently is forgotten
 * first (full buckets are forgotten at once, they hold no information).
 *
 * @internal
 */
export interface LoginThrottle {
  /** Takes a token for `address`: 0 when it may go ahead, else the milliseconds until a token is back. */
  take(address: string | undefined): number;
  /** Gives a token back (the check succeeded). */
  refund(address: string | undefined): void;
  /** Addresses tracked now (for tests). */
  readonly size: number;
}

export interface LoginThrottleOptions {
  burst: number;
  refillMs: number;
  maxAddresses: number;
  /** The clock, in milliseconds. Default `performance.now`. */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** The throttle's key for a source address: as the connection limits count sources (IPv6 by /64). */
export function throttleKey(address: string | undefined): string {
  return address ? sourceKey(address) : "unknown";
}

export function createLoginThrottle(options: LoginThrottleOptions): LoginThrottle {
  const { burst, refillMs, maxAddresses } = options;
  const now = options.now ?? (() => performance.now());
  const buckets = new Map<string, Bucket>();

  function current(key: string): Bucket {
    const t = now();
    const b = buckets.get(key);
    if (!b) return { tokens: burst, at: t };
    buckets.delete(key); // re-inserted by the caller: the map's order is the order of last use
    return { tokens: Math.min(burst, b.tokens + (t - b.at) / refillMs), at: t };
  }

  function keep(key: string, b: Bucket): void {
    if (b.tokens >= burst) return;
    buckets.set(key, b);
    if (buckets.size > maxAddresses) buckets.delete(buckets.keys().next().value as string);
  }

  return {
    take(address) {
      const key = throttleKey(address);
      const b = current(key);
      if (b.tokens < 1) {
        keep(key, b);
        return Math.max(1, Math.ceil((1 - b.tokens) * refillMs - 1e-6)); // (less float noise)
      }
      keep(key, { tokens: b.tokens - 1, at: b.at });
      return 0;
    },
    refund(address) {
      const key = throttleKey(address);
      const b = current(key);
      keep(key, { tokens: Math.min(burst, b.tokens + 1), at: b.at });
    },
    get size() {
      return buckets.size;
    },
  };
}
