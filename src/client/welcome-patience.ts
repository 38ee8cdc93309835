/**
 * How long a client waits for a server's welcome. The first attempt waits
 * `welcomeTimeoutMs`; each attempt that gave up waiting doubles the next
 * one's wait, up to `maxWelcomeTimeoutMs`; a welcome brings it back to
 * `welcomeTimeoutMs`. A server slowed by a reconnect storm (thousands of
 * clients after a restart) then finishes the handshakes it has begun instead
 * of seeing each client give up and come back as one more connection, TLS
 * handshake and hello to serve: the timeout that protects a client from a
 * server that never answers stops feeding the overload. One per client, over
 * all of its streams (a slow server slows every attempt of the client): the
 * fleet creates it and hands it to every attempt (`ConnectionContext`).
 *
 * @internal
 */

/** @internal */
export interface WelcomePatience {
  /** The wait for the next attempt's welcome, in milliseconds. */
  readonly currentMs: number;
  /** An attempt gave up waiting for its welcome: the next one waits twice as long (within the bound). */
  timedOut(): void;
  /** A server welcomed the client: back to `welcomeTimeoutMs`. */
  welcomed(): void;
}

/** A patience from `welcomeTimeoutMs` to `maxWelcomeTimeoutMs` (resolved options: max >= initial). @internal */
export function createWelcomePatience(o: { welcomeTimeoutMs: number; maxWelcomeTimeoutMs: number }): WelcomePatience {
  let current = o.welcomeTimeoutMs;
  return {
    get currentMs() {
      return current;
    },
    timedOut() {
      current = Math.min(o.maxWelcomeTimeoutMs, current * 2);
    },
    welcomed() {
      current = o.welcomeTimeoutMs;
    },
  };
}
