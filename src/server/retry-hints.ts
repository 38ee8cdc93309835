/**
 * Retry hints for streams the server turns away to shed load (more streams
 * waiting for their hello than `maxPendingHellos`): each refusal carries
 * `promproxy-retry-after-ms` (src/shared/retry-after.ts), and the hints are
 * handed out like tickets, one after another at the rate the server has been
 * welcoming clients, so that a burst of refused clients (a reconnect storm
 * after a restart) comes back spread over time at about the pace the server
 * can take them, instead of all at once on their own short backoff. Hints
 * never exceed `maxRetryAfterMs`; a ticket past it starts the queue again at
 * a random place within it.
 *
 * @internal
 */
import { retryAfterMetadata } from "../shared/retry-after.ts";

/** Welcomes per second assumed at least (a server that has welcomed no one yet, or few). */
const minRate = 100;

/** @internal */
export interface RetryHints {
  /** The metadata of one more refusal (its hint), or undefined when hints are off (`maxRetryAfterMs` 0). */
  refusal(): Headers | undefined;
  /** Counts a welcome (the rate the tickets follow). */
  admitted(): void;
}

export function createRetryHints(maxRetryAfterMs: number, now: () => number = () => performance.now(), random: () => number = Math.random): RetryHints {
  // Welcomes in the current and the previous second.
  let windowStart = now();
  let current = 0;
  let previous = 0;
  /** The time the last ticket was issued for. */
  let lastTicket = 0;
  const roll = (t: number) => {
    if (t - windowStart < 1000) return;
    previous = t - windowStart < 2000 ? current : 0;
    current = 0;
    windowStart = t;
  };
  return {
    refusal() {
      if (maxRetryAfterMs <= 0) return undefined;
      const t = now();
      roll(t);
      const gap = 1000 / Math.max(minRate, previous, current);
      let ticket = Math.max(t, lastTicket) + gap * (0.5 + random());
      if (ticket - t > maxRetryAfterMs) ticket = t + maxRetryAfterMs * random();
      lastTicket = Math.max(lastTicket, ticket);
      return retryAfterMetadata(ticket - t);
    },
    admitted() {
      roll(now());
      current++;
    },
  };
}
