/**
 * The range check of the server's numeric options: counts and byte sizes are
 * whole numbers (they travel as protobuf integers: a welcome with 1000.5
 * cannot be encoded), durations (`...Ms`) any finite number.
 *
 * @internal
 */
export function checkOptionNumbers<K extends string>(r: Readonly<Record<K, unknown>>, positive: readonly K[], atLeastZero: readonly K[]): void {
  for (const k of [...positive, ...atLeastZero]) {
    const v = r[k];
    const whole = !k.endsWith("Ms");
    const zero = !positive.includes(k);
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (v === 0 && !zero) || (whole && !Number.isInteger(v))) {
      throw new RangeError(`promproxy: option ${k} must be a ${zero ? "" : "positive "}${whole ? "whole " : ""}number${zero ? " >= 0" : ""}, got ${String(v)}`);
    }
  }
}
