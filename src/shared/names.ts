/**
 * Validation of what a client announces about itself: its name (a DNS host
 * name) and its labels (Prometheus label names and values).
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

/** Limits on announced labels. */
export interface LabelLimits {
  maxLabels: number;
  maxLabelValueLength: number;
}

/** Returns an error message for labels that break the rules, or undefined. */
export function checkLabels(labels: Record<string, string>, limits: LabelLimits, what = "labels"): string | undefined {
  const names = Object.keys(labels);
  if (names.length > limits.maxLabels) return `${what}: ${names.length} labels, the maximum is ${limits.maxLabels}`;
  for (const n of names) {
    if (!labelName.test(n) || n.length > 128) return `${what}: ${JSON.stringify(n.slice(0, 64))} is not a valid label name`;
    if (n.startsWith("__")) return `${what}: label names starting with "__" are reserved (${JSON.stringify(n)})`;
    const v = labels[n] ?? "";
    if (v.length > limits.maxLabelValueLength) {
      return `${what}: the value of ${n} is ${v.length} characters long, the maximum is ${limits.maxLabelValueLength}`;
    }
  }
  return undefined;
}
