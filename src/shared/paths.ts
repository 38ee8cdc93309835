/**
 * Request paths: the one canonical form promproxy forwards, and matching a
 * request path against an announced target path.
 *
 * Exporters decode and normalise paths in their own ways (`%2F` to `/`, `\`
 * to `/`, `;params` dropped, `..` resolved, double decoding, overlong UTF-8,
 * Unicode look-alikes). A path that could mean something else once an
 * exporter has done so is refused here, so the prefix check and the exporter
 * always see the same path.
 */

/** Characters a canonical path holds as they are: RFC 3986 pchar without ';' and without '%' (1 by char code). */
const rawPathChar = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@/") rawPathChar[c.charCodeAt(0)] = 1;
/** Characters that may not be percent-encoded, as they should appear raw (RFC 3986 unreserved). */
const unreserved = /^[A-Za-z0-9\-._~]$/;
/** An absolute http(s) URI, as Prometheus sends it to a proxy: scheme, authority, then the rest. The authority ends where WHATWG URL parsing ends it (at '\' too). */
const absolute = /^https?:\/\/([^/\\?#]*)(.*)$/is;

function hexDigit(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x37;
  if (code >= 0x61 && code <= 0x66) return code - 0x57;
  return -1;
}

function hex2(s: string, i: number): number | undefined {
  const hi = i + 1 < s.length ? hexDigit(s.charCodeAt(i + 1)) : -1;
  const lo = i + 2 < s.length ? hexDigit(s.charCodeAt(i + 2)) : -1;
  return hi < 0 || lo < 0 ? undefined : hi * 16 + lo;
}

function show(c: string): string {
  const code = c.codePointAt(0) ?? 0;
  return code >= 0x21 && code <= 0x7e ? JSON.stringify(c) : `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** Why a percent-encoded byte may not appear in a path, or undefined when it may. */
function encodedByteError(b: number, text: string): string | undefined {
  const c = String.fromCharCode(b);
  if (b === 0x2f) return `an encoded slash (${text})`;
  if (b === 0x5c) return `an encoded backslash (${text})`;
  if (b === 0x2e) return `an encoded dot (${text})`;
  if (b === 0x25) return `an encoded percent sign (${text}): double encoding`;
  if (b === 0x3b) return `an encoded semicolon (${text})`;
  if (b <= 0x20 || b === 0x7f) return `an encoded control character or space (${text})`;
  if (b >= 0x80) return `an encoded non-ASCII byte (${text}): overlong or look-alike UTF-8`;
  if (unreserved.test(c)) return `an encoded ${JSON.stringify(c)} (${text}), which must be sent as it is`;
  return undefined;
}

/** What a path (no query) holds that a canonical path may not, or undefined. */
function pathError(p: string): string | undefined {
  for (let i = 0; i < p.length; i++) {
    const code = p.charCodeAt(i);
    if (code < 128 && rawPathChar[code] === 1) continue;
    const c = p[i] as string;
    if (c === "%") {
      const b = hex2(p, i);
      const text = p.slice(i, i + 3);
      if (b === undefined) return `a "%" that is not followed by two hex digits (${JSON.stringify(text)})`;
      const e = encodedByteError(b, text);
      if (e) return e;
      i += 2;
    } else {
      if (c === "\\") return `a backslash`;
      if (c === ";") return `a semicolon (path parameters such as "..;/")`;
      if (c === "#") return `a fragment ("#")`;
      return `the character ${show(c)}`;
    }
  }
  // The segments after the leading "/", without splitting the path.
  for (let from = p.indexOf("/") + 1; from > 0; ) {
    const slash = p.indexOf("/", from);
    const end = slash < 0 ? p.length : slash;
    if (end === from && slash >= 0) return `an empty segment ("//")`;
    if (end > from && p.charCodeAt(end - 1) === 0x2e) {
      const s = p.slice(from, end);
      if (s === "." || s === "..") return `a dot segment (${JSON.stringify(s)})`;
      return `a segment ending in a dot (${JSON.stringify(s.slice(-64))})`;
    }
    from = slash + 1;
  }
  return undefined;
}

/**
 * Checks that a request target is in the canonical form promproxy forwards;
 * returns why not (a message for a 400, without the "promproxy: " prefix),
 * or undefined when it is.
 *
 * Takes a path with its query (`/metrics?x=1`), or an absolute http(s) URI as
 * a proxy receives it (`http://name:9100/metrics`), whose path is checked
 * (the authority is the caller's business; an empty path is "/"). Check the
 * URI as received, before any URL parser resolves or re-encodes it.
 *
 * The rule. Every character is printable ASCII (0x21-0x7E). The path (up to
 * the first "?") starts with "/" and holds only unreserved characters
 * (A-Z a-z 0-9 - . _ ~), the sub-delimiters ! $ & ' ( ) * + , =, ":", "@",
 * "/" and percent-encodings; a percent-encoding is "%" and two hex digits
 * encoding a printable ASCII character that is neither unreserved nor one of
 * / \ % ; (so no encoded slash, backslash, dot, percent sign, semicolon,
 * space, control character or non-ASCII byte). No segment is empty but the
 * last ("//"), and no segment ends in "." ("." and ".." included). The query
 * (after the first "?") is the exporter's business: any printable ASCII but
 * "#"; it cannot change the path.
 */
export function checkRequestPath(path: string): string | undefined {
  const shown = () => JSON.stringify(path.length > 200 ? path.slice(0, 200) + "..." : path);
  const refuse = (why: string) => `refused path ${shown()}: it holds ${why}; only canonical paths are forwarded`;
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i);
    if (code < 0x21 || code > 0x7e) return refuse(`the character ${show(String.fromCodePoint(path.codePointAt(i) as number))}`);
  }
  if (path.includes("#")) return refuse(`a fragment ("#")`);
  let target = path;
  const m = absolute.exec(path);
  if (m) {
    const rest = m[2] as string;
    target = rest === "" || rest.startsWith("?") ? "/" + rest : rest;
  }
  // A URL parser reads a backslash as "/" in an http(s) URI: "http://name:9100\\..".
  if (target.startsWith("\\")) return refuse("a backslash");
  if (!target.startsWith("/")) return `refused path ${shown()}: want a path starting with "/" or an absolute http:// URI`;
  const q = target.indexOf("?");
  const e = pathError(q < 0 ? target : target.slice(0, q));
  return e ? refuse(e) : undefined;
}

/**
 * Whether a request path (path and query) falls under an announced target
 * path: "" means "/metrics" exactly (an embedded registry), "/" means any path,
 * anything else is a prefix ending at a segment boundary. A path that is not
 * canonical ({@link checkRequestPath}) never matches.
 *
 * @internal
 */
export function pathMatches(prefix: string, path: string): boolean {
  if (!path.startsWith("/") || checkRequestPath(path) !== undefined) return false;
  const q = path.indexOf("?");
  const p = q < 0 ? path : path.slice(0, q);
  if (prefix === "") return p === "/metrics";
  if (prefix === "/" || p === prefix) return true;
  return p.startsWith(prefix.endsWith("/") ? prefix : prefix + "/");
}
