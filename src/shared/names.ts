/**
 * Validation of what a client announces about itself: its name (a DNS host
 * name) and its labels (Prometheus label names and values, minus the names
 * Prometheus gives meaning to).
 *
 * @internal
 */

const dnsLabel = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Returns the canonical (lower-case) form of a client name, or an error message. */
export function checkName(name: string): { name: string } | { error: string } {
  if (name.length === 0) return { error: "name is empty" };
  if (name.length > 253) return { error: `name is ${name.length} characters long, the maximum is 253` };
  // ASCII only, checked before lower-casing: toLowerCase() maps some non-ASCII letters into ASCII
  // (U+212A KELVIN SIGN becomes "k"), which would let a non-DNS name through.
  const lower = /^[\x21-\x7e]*$/.test(name) ? name.toLowerCase() : "\u0000";
  for (const label of lower.split(".")) {
    if (!dnsLabel.test(label)) {
      return {
        error: `name ${JSON.stringify(name.slice(0, 64))} is not a DNS host name (letters, digits and hyphens, dot-separated labels of 1-63 characters)`,
      };
    }
  }
  // The front finds clients by the host of Prometheus' request URI, as WHATWG URL reads it; that turns a
  // host whose last label is numeric into an IPv4 address ("0" -> "0.0.0.0", "1.2.3" -> "1.2.0.3", "app.0x1f"
  // -> "0.0.0.31"). A client with such a name could never be scraped: refuse it unless it reads back unchanged.
  let host: string;
  try {
    host = new URL(`http://${lower}/`).hostname;
  } catch {
    host = "(none: not a valid URL host)"; // e.g. "a.0", "09": numeric-looking but not a valid IPv4 address
  }
  if (host !== lower) {
    return { error: `name ${JSON.stringify(name.slice(0, 64))} reads as the IP address ${host} in a URL, so Prometheus could not reach it by that name` };
  }
  return { name: lower };
}

/**
 * Label names a client may never announce, because Prometheus gives them
 * meaning. Labels in an http_sd document override Prometheus' own target
 * labels, and target labels override the labels of every sample scraped, so:
 * `job` and `instance` would let a client store its samples under another
 * target's identity; `le` and `quantile` would replace the bucket and quantile
 * labels of every histogram and summary the client serves. Every name starting
 * with `__` is reserved as well (`__address__`, `__scheme__`,
 * `__metrics_path__`, `__param_*`, `__scrape_interval__`,
 * `__scrape_timeout__`, `__name__`, `__meta_*` including promproxy's own
 * `__meta_promproxy_*`, `__tmp_*`).
 */
export const reservedLabelNames: ReadonlySet<string> = new Set(["job", "instance", "le", "quantile"]);

/** Why a reserved label name is refused, for the error message. */
function reservedReason(n: string): string | undefined {
  if (n.startsWith("__")) return "names starting with \"__\" belong to Prometheus and promproxy (__address__, __metrics_path__, __param_*, __meta_*, ...)";
  if (n === "job" || n === "instance") return "Prometheus takes job and instance as the target's identity; a client may not choose them";
  if (n === "le" || n === "quantile") return "it would replace the bucket or quantile label of every histogram or summary the client serves";
  return undefined;
}

/** The UTF-8 size of a string, in bytes. */
export function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** UTF-8 bytes of a label set: every name and value. */
export function labelBytes(labels: Record<string, string>): number {
  let n = 0;
  for (const [k, v] of Object.entries(labels)) n += utf8Bytes(k) + utf8Bytes(v);
  return n;
}

/** Limits on announced labels. */
export interface LabelLimits {
  /** Most labels in one label set. */
  maxLabels: number;
  /** Longest label value, in UTF-8 bytes. */
  maxLabelValueLength: number;
}

/** A lone UTF-16 surrogate: not a Unicode character, so not valid UTF-8 once encoded. */
const loneSurrogate = /[\uD800-\uDFFF]/u;

/**
 * Returns an error message for labels that break the rules, or undefined:
 * at most `maxLabels` names, each a Prometheus label name that is not
 * reserved (see {@link reservedLabelNames}), each value well-formed Unicode of
 * at most `maxLabelValueLength` UTF-8 bytes.
 */
export function checkLabels(labels: Record<string, string>, limits: LabelLimits, what = "labels"): string | undefined {
  const names = Object.keys(labels);
  if (names.length > limits.maxLabels) return `${what}: ${names.length} labels, the maximum is ${limits.maxLabels}`;
  for (const n of names) {
    if (!labelName.test(n) || n.length > 128) return `${what}: ${JSON.stringify(n.slice(0, 64))} is not a valid label name`;
    const reserved = reservedReason(n);
    if (reserved) return `${what}: the label name ${JSON.stringify(n)} is reserved: ${reserved}`;
    const v = labels[n] ?? "";
    if (typeof v !== "string") return `${what}: the value of ${n} is not a string`;
    const bytes = utf8Bytes(v);
    if (bytes > limits.maxLabelValueLength) {
      return `${what}: the value of ${n} is ${bytes} bytes long (UTF-8), the maximum is ${limits.maxLabelValueLength}`;
    }
    if (loneSurrogate.test(v)) return `${what}: the value of ${n} is not well-formed Unicode (a lone surrogate)`;
  }
  return undefined;
}
