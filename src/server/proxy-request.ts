/**
 * Reads a Prometheus `proxy_url` request: the absolute URI names the client
 * (host), the target (port, path and query, `_scheme`) and the deadline
 * (`X-Prometheus-Scrape-Timeout-Seconds`). Part of the HTTP front.
 *
 * @internal
 */
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import type { Header } from "../../gen/promproxy/v1/scrape_pb.ts";
import { checkName } from "../shared/names.ts";
import { checkRequestPath } from "../shared/paths.ts";
import type { ScrapeRequest } from "./coordinator.ts";
import type { ResolvedServerOptions } from "./options.ts";
import { readSimpleUri } from "./proxy-uri.ts";

/** A request the front refuses before any client is asked. */
export interface BadRequest {
  status: 400 | 405;
  message: string;
  headers?: Record<string, string>;
}

/** Request headers passed on to the client with an order. */
const forwardedRequestHeaders = ["accept", "accept-encoding", "user-agent", "x-prometheus-scrape-timeout-seconds"];

/** Turns a proxy request into what the coordinator needs to order a scrape, or says why it cannot. */
export function readProxyRequest(
  req: IncomingMessage | Http2ServerRequest,
  uri: string,
  options: Pick<ResolvedServerOptions, "defaultScrapeTimeoutMs" | "maxScrapeTimeoutMs">,
): ScrapeRequest | BadRequest {
  // The common URI is read without a URL parser (src/server/proxy-uri.ts), with the same result.
  const simple = readSimpleUri(uri);
  let url: URL | undefined;
  if (!simple) {
    try {
      url = new URL(uri);
    } catch {
      return { status: 400, message: `not a valid absolute URI: ${JSON.stringify(uri.slice(0, 200))}` };
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return { status: 400, message: `unsupported scheme ${JSON.stringify(url.protocol)}: proxy requests must be http:// URIs` };
    }
  }
  // On the raw URI: the URL parser has already resolved "/./", "%2e%2e", "\\" and "#" into a clean path.
  const refused = checkRequestPath(uri);
  if (refused) return { status: 400, message: refused };
  if (req.method !== "GET" && req.method !== "HEAD") {
    return { status: 405, message: `method ${req.method} not allowed: only GET and HEAD are proxied`, headers: { allow: "GET, HEAD" } };
  }
  const hostname = simple ? simple.hostname : url!.hostname;
  const name = hostname.endsWith(".") ? hostname.slice(0, -1) : hostname;
  const impossible = neverAName(name, simple !== undefined);
  if (impossible) return { status: 400, message: `no client can have this name: ${impossible}` };
  let scheme = "http";
  let path = simple?.path;
  if (url) {
    // The query's parameters are parsed only when one may be _scheme (written as it is, or percent-encoded).
    const search = url.search;
    const s = search.includes("scheme") || search.includes("%") ? url.searchParams.getAll("_scheme") : [];
    if (s.length > 0) {
      if (s.length > 1 || (s[0] !== "http" && s[0] !== "https")) {
        return { status: 400, message: `bad _scheme ${JSON.stringify(s.join(","))}: use http or https` };
      }
      scheme = s[0] as string;
      url.searchParams.delete("_scheme");
    }
    path = url.pathname + url.search;
  }
  const timeoutMs = scrapeTimeoutMs(req.headers["x-prometheus-scrape-timeout-seconds"], options);
  if (typeof timeoutMs === "string") return { status: 400, message: timeoutMs };
  const headers: Header[] = [];
  for (const h of forwardedRequestHeaders) {
    const v = req.headers[h];
    if (typeof v === "string") headers.push({ $typeName: "promproxy.v1.Header", name: h, value: v });
  }
  return { name, method: req.method, port: simple ? simple.port : explicitPort(uri), path: path!, scheme, headers, timeoutMs };
}

/**
 * Why no client could ever have this name (the rules of hello names, src/shared/names.ts), or undefined. A
 * name the URL-free reader took is dot-separated labels of lower-case letters, digits and hyphens, its last one
 * not numeric: one of at most 63 characters with no label starting or ending with a hyphen is valid without
 * the full rules.
 */
const edgeHyphen = /(?:^|\.)-|-(?:\.|$)/;

function neverAName(name: string, simple: boolean): string | undefined {
  if (simple && name.length > 0 && name.length <= 63 && !edgeHyphen.test(name)) return undefined;
  const checked = checkName(name);
  return "error" in checked ? checked.error : undefined;
}

/**
 * The port the URI names, 0 when it names none. Read from the raw authority: a
 * URL parser drops a default port, so `http://app:80/` (Prometheus 2 writes
 * targets so) would read as no port and miss a target announced on port 80.
 */
function explicitPort(uri: string): number {
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^/?#@]*@)?(?:\[[^\]]*\]|[^/?#:]*):(\d{1,5})(?:[/?#]|$)/i.exec(uri);
  return m ? Number(m[1]) : 0;
}

/**
 * The scrape timeout from Prometheus' header, clamped to the maximum; the
 * default without a header. A string is an error message (HTTP 400).
 */
export function scrapeTimeoutMs(
  header: string | string[] | undefined,
  o: Pick<ResolvedServerOptions, "defaultScrapeTimeoutMs" | "maxScrapeTimeoutMs">,
): number | string {
  if (header === undefined) return o.defaultScrapeTimeoutMs;
  const raw = Array.isArray(header) ? header.join(",") : header;
  const t = raw.trim();
  // A decimal number of seconds, as Prometheus writes it (e.g. "10", "9.5", "1e3").
  if (!/^\+?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t) || !(Number(t) > 0)) {
    return `bad X-Prometheus-Scrape-Timeout-Seconds ${JSON.stringify(raw.slice(0, 40))}: want a positive number of seconds`;
  }
  return Math.min(Number(t) * 1000, o.maxScrapeTimeoutMs);
}
