/**
 * The checks behind the client's numeric options: each returns the value (or its default) or throws a TypeError
 * naming the option and the range it must be in.
 */
import { maxTimerMs } from "../shared/sleep.ts";

/**
 * An option in milliseconds: positive, at most `most` (a wait must fit a timer). With `floor`, at least that other
 * option: the default is raised to it, a smaller value refused.
 */
export function positiveMs(value: unknown, key: string, fallback: number, floor = { ms: 0, name: "" }, most = maxTimerMs): number {
  const v: unknown = value === undefined ? Math.max(fallback, floor.ms) : value;
  if (!(typeof v === "number" && v > 0 && v <= most)) throw new TypeError(`promproxy: option ${key} must be a positive number of milliseconds up to ${most}`);
  if (v < floor.ms) throw new TypeError(`promproxy: option ${key} (${v}) must be at least ${floor.name} (${floor.ms})`);
  return v;
}

/** A whole-number option from `min` to `max`. */
export function whole(value: unknown, key: string, fallback: number, min: number, max: number): number {
  const v: unknown = value === undefined ? fallback : value;
  if (!(typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= max)) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new TypeError(`promproxy: option ${key} must be a whole number ${range}, got ${String(v)}`);
  }
  return v;
}

/** A positive number (fractions allowed), at most `max`. */
export function positiveNumber(value: unknown, key: string, fallback: number, max: number): number {
  const v: unknown = value === undefined ? fallback : value;
  if (!(typeof v === "number" && v > 0 && v <= max)) throw new TypeError(`promproxy: option ${key} must be a positive number up to ${max}, got ${String(v)}`);
  return v;
}

/** A string option that must be one of `allowed` (the first is the default). */
export function oneOf<T extends string>(value: unknown, key: string, allowed: readonly T[]): T {
  const v = value ?? allowed[0];
  if (!(allowed as readonly string[]).includes(v as string)) {
    throw new TypeError(`promproxy: option ${key} must be ${allowed.map((a) => `"${a}"`).join(" or ")}, got ${JSON.stringify(String(v)).slice(0, 60)}`);
  }
  return v as T;
}
