/**
 * The common `proxy_url` request URI read without a URL parser: lower-case
 * `http://` or `https://`, a host of lower-case DNS labels, an optional port,
 * a path and a query of characters a WHATWG URL parser keeps as they are.
 * For such a URI the answer is exactly what `new URL(uri)` gives
 * (`hostname`, `pathname + search`); anything else (upper case, an IP
 * address, a label that reads as a number, punycode, user info, a fragment,
 * a percent sign, a dot segment, a port over 65535, "_scheme" in the query)
 * is `undefined`, and the caller parses it with `URL`. Checked against
 * `URL` in test/proxy-uri.test.ts.
 *
 * @internal
 */

/** What the front needs from a proxy request URI. */
export interface SimpleUri {
  /** The host as a URL parser gives it (a trailing dot kept). */
  hostname: string;
  /** The port written in the URI, 0 when none. */
  port: number;
  /** Path and query as a URL parser gives them (`pathname + search`). */
  path: string;
}

// Path: unreserved, sub-delimiters, ":" "@" "/" (no "%", no backslash). Query: the same and "?" "[" "]", without "'"
// (which a URL parser percent-encodes in a special scheme's query). Neither holds "#" or a space.
const simple = /^https?:\/\/((?:[a-z0-9-]+\.)*([a-z0-9-]+)\.?)(?::(\d{1,5}))?(\/[\w\-.~!$&'()*+,;=:@/]*)?(?:\?([\w\-.~!$&()*+,;=:@/?[\]]*))?$/;
/** A last label a URL parser reads as an IPv4 number (decimal, or hex with "0x"). */
const numeric = /^(?:\d+|0x[0-9a-f]*)$/;

/** The URI's host, port and path as `URL` reads them, or undefined when only a URL parser can tell. */
export function readSimpleUri(uri: string): SimpleUri | undefined {
  const m = simple.exec(uri);
  if (!m) return undefined;
  const hostname = m[1] as string;
  if (numeric.test(m[2] as string) || hostname.includes("xn--")) return undefined;
  const port = m[3] === undefined ? 0 : Number(m[3]);
  if (port > 65535) return undefined;
  const pathname = m[4] ?? "/";
  if (pathname.includes("/.")) return undefined; // a dot segment, resolved by a URL parser
  const query = m[5];
  if (query !== undefined && query.includes("scheme")) return undefined; // "_scheme" is read from URL's searchParams
  return { hostname, port, path: query ? `${pathname}?${query}` : pathname };
}
