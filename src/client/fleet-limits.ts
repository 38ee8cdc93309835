/**
 * How many streams a client's servers can make it hold. A server (or a DNS
 * answer) is not trusted: a rogue naming a fresh replica id in every welcome,
 * or a name with hundreds of addresses, must not take the host application's
 * descriptors and memory. The caps sit far above any real fleet (a handful of
 * replicas) and far below what hurts a host (each stream is one HTTP/2
 * connection: a socket, ~100 KiB, a heartbeat).
 *
 * @internal
 */
import type { Logger } from "../shared/logger.ts";
import type { ClientOptions } from "./options.ts";

export interface FleetLimits {
  /** Most distinct replicas held through one address; also the most a welcome's replica count is believed. */
  maxReplicas: number;
  /** Most addresses of the server's host name dialled (the first ones, sorted). */
  maxServerAddresses: number;
}

export const defaultFleetLimits: FleetLimits = { maxReplicas: 64, maxServerAddresses: 64 };

/**
 * Through one address, while a replica is missing: most connections searching
 * at once. A round-robin balancer over N replicas is covered by N / 8 rounds,
 * so the fast rounds of the search (src/client/discovery-schedule.ts) still
 * meet every replica of a 64-replica fleet.
 */
export const maxSearchers = 8;

/**
 * The limits of `options`. A value that is not a whole number >= 1 throws a
 * `RangeError` naming the option, or, given `onInvalid`, is reported there and
 * replaced by its default (the fleet runs inside the host: it never throws).
 */
export function fleetLimits(options: Pick<ClientOptions, "maxReplicas" | "maxServerAddresses">, onInvalid?: (message: string) => void): FleetLimits {
  const limits = { ...defaultFleetLimits };
  for (const k of ["maxReplicas", "maxServerAddresses"] as const) {
    const v: unknown = options[k];
    if (v === undefined) continue;
    if (typeof v === "number" && Number.isSafeInteger(v) && v >= 1) limits[k] = v;
    else if (onInvalid) onInvalid(`option ${k} must be a whole number >= 1, got ${String(v)}; using ${limits[k]}`);
    else throw new RangeError(`promproxy: option ${k} must be a whole number >= 1, got ${String(v)}`);
  }
  return limits;
}

/** Logs a line the first time only: a cap that bites is said once, not once per attempt. */
export function onceLog(log: Logger): (message: string, fields: Record<string, unknown>) => void {
  let said = false;
  return (message, fields) => {
    if (said) return;
    said = true;
    log.warn(message, fields);
  };
}

/** Logs a line at most once per `intervalMs` (the first at once), saying how many were left out since. */
export function sparseLog(log: Logger, intervalMs = 60_000): (message: string, fields: Record<string, unknown>) => void {
  let lastAt = -Infinity;
  let skipped = 0;
  return (message, fields) => {
    const now = Date.now();
    if (now - lastAt < intervalMs) {
      skipped++;
      return;
    }
    lastAt = now;
    log.warn(skipped > 0 ? `${message} (and ${skipped} more times since the last such line)` : message, fields);
    skipped = 0;
  };
}
