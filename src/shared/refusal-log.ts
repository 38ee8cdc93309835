import type { Logger } from "./logger.ts";

/** @internal */
export interface RefusalLog {
  /** Records one refusal: logged at once when nothing was logged within the interval, else counted. */
  refused(message: string, fields: Record<string, unknown>): void;
  /** Logs what is still counted and stops the timer. */
  close(): void;
}

/**
 * Logs refusals once per interval, not once per refusal: an attack of a
 * million connections writes one line a minute, saying how many were refused
 * and one example. One mechanism for every flood a peer can cause for free
 * (connections over a cap, wrong or throttled logins, answers cut by a hostile
 * client). `noun` says what is counted: "(N more refused in the last 60s)".
 *
 * @internal
 */
export function createRefusalLog(logger: Logger, intervalMs = 60_000, level: "warn" | "info" = "warn", noun = "refused"): RefusalLog {
  const say = (message: string, fields: Record<string, unknown>) => logger[level](message, fields);
  let lastAt = -Infinity;
  let count = 0;
  let example: { message: string; fields: Record<string, unknown> } | undefined;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    if (count === 0 || !example) return;
    lastAt = Date.now();
    say(`${example.message} (${count} more ${noun} in the last ${Math.round(intervalMs / 1000)}s)`, example.fields);
    count = 0;
    example = undefined;
  };
  return {
    refused(message, fields) {
      const now = Date.now();
      if (now - lastAt >= intervalMs && count === 0) {
        lastAt = now;
        say(message, fields);
        return;
      }
      count++;
      example ??= { message, fields };
      timer ??= setTimeout(flush, Math.max(0, lastAt + intervalMs - now)).unref();
    },
    close() {
      clearTimeout(timer);
      flush();
    },
  };
}

/** Refusal logs by kind (e.g. a Connect code): a flood of one kind is a line a minute, other kinds still said at once. @internal */
export interface RefusalLogs {
  refused(kind: string, message: string, fields: Record<string, unknown>): void;
  close(): void;
}

/**
 * One {@link createRefusalLog} per kind, made when first needed. At most `maxKinds` kinds have a log of their own
 * at once (a kind unseen for an interval gives its place up, its count said); past that, new kinds share one, so
 * that a flood of distinct kinds is still a line a minute.
 * @internal
 */
export function createRefusalLogs(logger: Logger, intervalMs = 60_000, level: "warn" | "info" = "warn", maxKinds = 256, noun = "refused"): RefusalLogs {
  const logs = new Map<string, { log: RefusalLog; at: number }>();
  const rest = createRefusalLog(logger, intervalMs, level, noun);
  return {
    refused(kind, message, fields) {
      const now = Date.now();
      let entry = logs.get(kind);
      if (!entry && logs.size >= maxKinds) {
        for (const [k, e] of logs) {
          if (now - e.at < intervalMs) continue;
          e.log.close();
          logs.delete(k);
        }
      }
      if (!entry && logs.size < maxKinds) logs.set(kind, (entry = { log: createRefusalLog(logger, intervalMs, level, noun), at: now }));
      if (entry) entry.at = now;
      (entry?.log ?? rest).refused(message, fields);
    },
    close() {
      for (const e of logs.values()) e.log.close();
      rest.close();
    },
  };
}
