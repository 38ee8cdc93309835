/**
 * How many streams a client's servers can make it hold. A server (or a DNS
 * answer) is not trusted: a rogue naming a fresh replica id in every welcome,
 * or a name with hundreds of addresses, must not take the host application's
 * descriptors and memory. The caps (options `maxReplicas`, `maxServerAddresses`,
 * src/client/options.ts) sit far above any real fleet and far below what hurts a
 * host (each stream is one HTTP/2 connection: a socket, ~100 KiB, a heartbeat);
 * the searchers' cap is here, with the log helpers that say a cap bit once.
 *
 * @internal
 */
import type { Logger } from "../shared/logger.ts";

/**
 * Through one address, while a replica is missing: most connections searching
 * at once. A round-robin balancer over N replicas is covered by N / 8 rounds,
 * so the fast rounds of the search (src/client/search-schedule.ts) still
 * meet every replica of a 64-replica fleet.
 */
export const maxSearchers = 8;

/** Logs a line the first time only: a cap that bites is said once, not once per attempt. */
export function onceLog(log: Logger): (message: string, fields: Record<string, unknown>) => void {
  let said = false;
  return (message, fields) => {
    if (said) return;
    said = true;
    log.warn(message, fields);
  };
}

/**
 * Logs a line (at `level`) at most `burst` times per `intervalMs` (the first at once), saying how many were left out
 * since.
 */
export function sparseLog(log: Logger, intervalMs = 60_000, level: "warn" | "info" = "warn", burst = 1): (message: string, fields: Record<string, unknown>) => void {
  let windowAt = -Infinity;
  let said = 0;
  let skipped = 0;
  return (message, fields) => {
    const now = Date.now();
    if (now - windowAt >= intervalMs) [windowAt, said] = [now, 0];
    if (said >= burst) {
      skipped++;
      return;
    }
    said++;
    log[level](skipped > 0 ? `${message} (and ${skipped} more times since the last such line)` : message, fields);
    skipped = 0;
  };
}
