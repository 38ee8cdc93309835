/**
 * What a forwarded target is given as: its options, the "[PORT=]URL" form of
 * the command line, and the check of its URL.
 */
import { checkRequestPath } from "../../shared/paths.ts";

/** A secret given directly, or a function asked for it on every scrape (a rotating token file, say). */
export type Secret = string | (() => string | Promise<string>);

/**
 * One exporter the client forwards scrapes to (the standalone forwarder).
 * Prometheus scrapes `http://NAME:PORT/PATH`; the client sends
 * `GET <url's origin>/PATH` to the exporter and streams its answer back untouched.
 */
export interface HttpTargetOptions {
  /**
   * The exporter, e.g. "http://127.0.0.1:9100/metrics". Required. `http://` or
   * `https://`; no query or fragment. Its path is the prefix the client serves
   * for this target ("/" or none: every path; "/metrics": `/metrics` and
   * below); the requested path and query go to the exporter as they are.
   * `user:password@` in the URL is basic auth for the exporter.
   */
  url: string;
  /**
   * The port Prometheus addresses this target by (`NAME:PORT`), announced in
   * `/clients`. Any number but 80 (which Prometheus adds to a target without
   * a port, so it arrives as "no port"). Default: none, served on any port
   * (announced as plain `NAME`).
   */
  port?: number;
  /** Labels announced for this target in `/clients`, over the client's own. Default none. */
  labels?: Record<string, string>;
  /** Time the exporter has for one scrape, cut to the scrape's deadline when that comes first. Default: the scrape's deadline. */
  timeoutMs?: number;
  /** Largest body accepted from the exporter, in bytes; a larger one fails the scrape (HTTP 502). Default 256 MiB. */
  maxResponseBytes?: number;
  /** Most scrapes of this target at once; more are answered "busy" (HTTP 503). Default: no limit of its own (the client's `maxScrapesInFlight`). */
  maxScrapesInFlight?: number;
  /**
   * Most scrapes sent to this exporter a second, whoever orders them: a
   * token bucket holding one second's worth (at least one), so a burst of
   * this many passes at once. Past it a scrape is answered "busy" (HTTP 503)
   * and the exporter is not asked. Prometheus scrapes a target once per
   * interval (a few HA replicas: a few times). A positive number (0.5: one
   * scrape every 2 s). Default 10.
   */
  maxScrapesPerSecond?: number;
  /** TLS towards an `https://` exporter (or `_scheme=https`). Default: the system's CAs, verification on. */
  tls?: {
    /** CA certificates (PEM) to trust instead of the system's. */
    ca?: string | Buffer | (string | Buffer)[];
    /** Client certificate (PEM) for exporters that require mTLS; with `key`. */
    cert?: string | Buffer;
    /** Private key (PEM) of `cert`. */
    key?: string | Buffer;
    /** Server name to verify (and send as SNI) instead of the URL's host. */
    serverName?: string;
    /** Accept any certificate. For tests and self-signed exporters only. Default false. */
    insecureSkipVerify?: boolean;
  };
  /** Basic auth for the exporter (overrides `user:password@` in the URL). Default none. */
  basicAuth?: { username: string; password: Secret };
  /** Bearer token for the exporter (`Authorization: Bearer ...`). Default none. Not with `basicAuth`. */
  bearerToken?: Secret;
}

/** "[PORT=]URL" split: the port as written (not checked), and the URL. @internal */
export function splitPortUrl(spec: string): { port?: string; url: string } {
  const m = /^(\d+)=(.*)$/s.exec(spec.trim());
  return m ? { port: m[1]!, url: m[2]! } : { url: spec.trim() };
}

/**
 * Parses a target given as "[PORT=]URL" (the command line's form) or checks
 * an options object; throws a TypeError saying what is wrong.
 *
 * @internal
 */
export function parseTargetSpec(spec: string | HttpTargetOptions): HttpTargetOptions {
  if (typeof spec !== "string") return { ...spec };
  const { port, url } = splitPortUrl(spec);
  return port === undefined ? { url } : { port: Number(port), url };
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
