import { checkRequestPath } from "../shared/paths.ts";
import type { HttpTargetOptions } from "./http-target.ts";

/**
 * Parses a target given as "[PORT=]URL" (the command line's form) or checks
 * an options object; throws a TypeError saying what is wrong.
 *
 * @internal
 */
export function parseTargetSpec(spec: string | HttpTargetOptions): HttpTargetOptions {
  if (typeof spec !== "string") return { ...spec };
  const m = /^(\d+)=(.*)$/s.exec(spec.trim());
  return m ? { port: Number(m[1]), url: m[2] as string } : { url: spec.trim() };
}

/** The checked form of a target's URL. @internal */
export interface CheckedUrl {
  /** The URL without credentials. */
  base: URL;
  /** The path the target serves, in canonical form ("/": every path). */
  prefix: string;
  /** The URL without credentials, for messages and metric labels. */
  display: string;
  userinfo?: { username: string; password: string };
}

/**
 * Checks a target's URL: http(s), no query or fragment, a path in the
 * canonical form every request path must have (see `checkRequestPath`).
 *
 * @internal
 */
export function checkUrl(raw: string, what: string): CheckedUrl {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new TypeError(`promproxy: ${what}: ${JSON.stringify(raw)} is not a URL (want e.g. http://127.0.0.1:9100/metrics)`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new TypeError(`promproxy: ${what}: want an http:// or https:// URL, got ${JSON.stringify(u.protocol)}`);
  if (u.search !== "" || u.hash !== "" || raw.includes("?") || raw.includes("#")) {
    throw new TypeError(`promproxy: ${what}: a target URL takes no query or fragment (Prometheus' query parameters are forwarded as they are)`);
  }
  const userinfo = u.username || u.password ? { username: decodeURIComponent(u.username), password: decodeURIComponent(u.password) } : undefined;
  u.username = "";
  u.password = "";
  const prefix = u.pathname === "" ? "/" : u.pathname;
  const bad = checkRequestPath(prefix);
  if (bad) throw new TypeError(`promproxy: ${what} (${u.toString()}): the URL's path would never match a request: ${bad}`);
  return { base: u, prefix, display: u.toString(), userinfo };
}
