import type { IncomingHttpHeaders } from "node:http";
import * as path from "node:path";
import { parse as parseBasic } from "basic-auth";
import { parseStoredPassword, type StoredPassword } from "./passwords.ts";
import { digest, token68 } from "../secrets.ts";

/**
 * Parsing for Prometheus-side auth (`prom-auth.ts`): endpoints, the
 * Authorization header, users and token files, and the decoy hash that
 * unknown user names are checked against.
 *
 * @internal
 */

/** The server endpoints Prometheus-side auth can protect. */
export type PromEndpoint = "proxy" | "clients" | "metrics";

/** What `PromAuthOptions.verify` gets besides the credential. */
export interface PromAuthRequest {
  /** Which endpoint the request is for. */
  endpoint: PromEndpoint;
  /** The request headers. */
  headers: IncomingHttpHeaders;
  /** The remote IP address. */
  remoteAddress?: string;
}

/** Credentials as Prometheus (or curl) sent them. */
export type PromCredential =
  | { scheme: "basic"; username: string; password: string }
  | { scheme: "bearer"; token: string };

/** A basic-auth user. @internal */
export interface User {
  password: StoredPassword;
}

/** Parses a users file (`user:hash` lines). @internal */
export function parseUsersFile(text: string, file: string): Map<string, User> {
  const users = new Map<string, User>();
  const base = path.basename(file);
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const where = `${base} line ${i + 1}`;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new TypeError(`promproxy: ${where}: want "user:hash"`);
    const name = line.slice(0, colon);
    if (users.has(name)) throw new TypeError(`promproxy: ${where}: user ${JSON.stringify(name)} appears twice`);
    users.set(name, { password: parseStoredPassword(line.slice(colon + 1), where) });
  });
  return users;
}

/** Parses a token file (one token per line). @internal */
export function parsePromTokenFile(text: string, file: string): { digest: Buffer }[] {
  const base = path.basename(file);
  const out: { digest: Buffer }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    if (!token68.test(line)) throw new TypeError(`promproxy: ${base} line ${i + 1}: not a bearer token`);
    out.push({ digest: digest(line) });
  });
  return out;
}

/**
 * Which endpoint a request URI is for, when it is one that auth can protect.
 * The status page (`/`, `/status.json`) shows what `/clients` does: it is "clients". @internal
 */
export function promEndpointOf(uri: string): PromEndpoint | undefined {
  if (!uri.startsWith("/")) return "proxy";
  const q = uri.indexOf("?");
  const p = q < 0 ? uri : uri.slice(0, q);
  return p === "/clients" || p === "/" || p === "/status.json" ? "clients" : p === "/metrics" ? "metrics" : undefined;
}

/** Parses an Authorization / Proxy-Authorization value. @internal */
export function parseCredential(header: string): PromCredential | "malformed" | "unsupported" {
  const m = /^(\S+) +(\S+) *$/.exec(header);
  if (!m) return "malformed";
  const scheme = (m[1] as string).toLowerCase();
  const value = m[2] as string;
  if (scheme === "bearer") return token68.test(value) ? { scheme: "bearer", token: value } : "malformed";
  if (scheme !== "basic") return "unsupported";
  // basic-auth: standard base64 only (RFC 7617), padding checked, "user:password" split at the first colon.
  const basic = parseBasic(header);
  return basic ? { scheme: "basic", username: basic.name, password: basic.pass } : "malformed";
}

/**
 * The stored password an unknown user name is checked against, so that it
 * costs what a known name with a wrong password costs: a real entry (its
 * outcome is ignored) of the most common hash type and cost among `users`,
 * the costliest of those when several are equally common. With one hash type
 * and cost in the file (the usual case) the two take the same time.
 * Undefined when there are no users.
 *
 * @internal
 */
export function pickDecoy(users: Iterable<User>): StoredPassword | undefined {
  const groups = new Map<string, { count: number; first: StoredPassword }>();
  for (const { password } of users) {
    const g = groups.get(password.cost);
    if (g) g.count++;
    else groups.set(password.cost, { count: 1, first: password });
  }
  let best: { count: number; first: StoredPassword } | undefined;
  for (const g of groups.values()) {
    if (!best || g.count > best.count || (g.count === best.count && g.first.work > best.first.work)) best = g;
  }
  return best?.first;
}
