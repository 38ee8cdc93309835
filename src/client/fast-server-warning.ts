/**
 * The warning that a server sends frames faster than `maxServerFramesPerSecond`
 * (the client reading it no faster, src/client/frame-budget.ts): said at most
 * once a minute per client, over all of its streams, however many servers or
 * replicas flood it at once.
 *
 * @internal
 */

/** When each client (by its resolved options) last said it. */
const saidAt = new WeakMap<object, number>();

/** Calls `say` when `client` has not said it in the last `intervalMs`. */
export function sayFastServer(client: object, say: () => void, intervalMs = 60_000, now = Date.now()): void {
  if (now - (saidAt.get(client) ?? -Infinity) < intervalMs) return;
  saidAt.set(client, now);
  say();
}
