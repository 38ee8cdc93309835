/**
 * Reading single values of the client's configuration (flags, environment,
 * file): each names where a bad value came from.
 *
 * @internal
 */
import { CliError, parseDurationMs, parsePositiveInt } from "./util.ts";

/** A value and where it came from. */
export interface Sourced {
  value: unknown;
  from: string;
}

/** A setting that must be a non-empty string when given; undefined when it is not. */
export function optionalString(s: Sourced | undefined): string | undefined {
  if (s === undefined) return undefined;
  if (typeof s.value !== "string" || s.value === "") throw new CliError(`${s.from}: want a string, got ${JSON.stringify(s.value)}`);
  return s.value;
}

export function portOf(v: unknown, from: string): number {
  const n = typeof v === "number" ? v : Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new CliError(`${from}: want a port 1-65535, got ${JSON.stringify(v)}`);
  return n;
}

export function duration(s: Sourced): number {
  if (typeof s.value === "number") {
    if (!(s.value > 0)) throw new CliError(`${s.from}: want a positive duration, got ${s.value}`);
    return s.value * 1000;
  }
  return parseDurationMs(String(s.value), s.from);
}

export function positiveInt(s: Sourced): number {
  return parsePositiveInt(String(s.value), s.from);
}

export function bool(s: Sourced): boolean {
  if (typeof s.value === "boolean") return s.value;
  const v = String(s.value).toLowerCase();
  if (["1", "true", "yes", "on"].includes(v)) return true;
  if (["0", "false", "no", "off"].includes(v)) return false;
  throw new CliError(`${s.from}: want true or false, got ${JSON.stringify(s.value)}`);
}

const units: Record<string, number> = { "": 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** "1048576", "64MiB", "1GB". @internal */
export function byteSize(s: Sourced): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(String(s.value).trim());
  const unit = units[(m?.[2] ?? "").toLowerCase()];
  const v = m && unit ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!(v > 0)) throw new CliError(`${s.from}: want a positive size such as 1048576, 64MiB or 1GB, got ${JSON.stringify(s.value)}`);
  return v;
}

export function labelMap(v: unknown, from: string): Record<string, string> {
  const out: Record<string, string> = {};
  const one = (kv: string) => {
    const i = kv.indexOf("=");
    if (i <= 0) throw new CliError(`${from}: want KEY=VALUE, got ${JSON.stringify(kv)}`);
    out[kv.slice(0, i).trim()] = kv.slice(i + 1);
  };
  if (typeof v === "string") one(v);
  else if (Array.isArray(v)) {
    for (const x of v) {
      if (typeof x !== "string") throw new CliError(`${from}: want KEY=VALUE strings, got ${JSON.stringify(x)}`);
      one(x);
    }
  } else if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      if (typeof x !== "string" && typeof x !== "number" && typeof x !== "boolean") throw new CliError(`${from}: label ${k}: want a string, got ${JSON.stringify(x)}`);
      out[k] = String(x);
    }
  } else throw new CliError(`${from}: want a map of labels, got ${JSON.stringify(v)}`);
  return out;
}

/** "a=1,b=2, c=x,y" → ["a=1", "b=2", "c=x,y"]: a comma starts a new label only where KEY= follows. @internal */
export function splitLabels(s: string): string[] {
  return s.split(/\s*,\s*(?=[A-Za-z_][A-Za-z0-9_]*=)/).map((x) => x.trim()).filter((x) => x !== "");
}

/** "9100=http://a/metrics, http://b" → two specs: commas and white space separate targets. @internal */
export function splitTargets(s: string): string[] {
  return s.split(/[\s,]+/).filter((x) => x !== "");
}
