import { createHmac, randomBytes } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import * as path from "node:path";
import type { Logger } from "../shared/logger.ts";
import { parseStoredPassword, type StoredPassword } from "./passwords.ts";
import { reloadingFile, type ReloadingFile } from "./reloading-file.ts";
import { digest, findSecret, token68 } from "./secrets.ts";

/** The server endpoints Prometheus-side auth can protect. */
export type PromEndpoint = "proxy" | "clients" | "metrics";

/** Credentials as Prometheus (or curl) sent them. */
export type PromCredential =
  | { scheme: "basic"; username: string; password: string }
  | { scheme: "bearer"; token: string };

/** What {@link PromAuthOptions.verify} gets besides the credential. */
export interface PromAuthRequest {
  /** Which endpoint the request is for. */
  endpoint: PromEndpoint;
  /** The request headers. */
  headers: IncomingHttpHeaders;
  /** The remote IP address. */
  remoteAddress?: string;
}

/**
 * Prometheus-side auth (`createServer({ promAuth })`): who may scrape through
 * the server and read `/clients` and `/metrics`. `/healthz` is always open.
 *
 * Proxied scrapes take credentials from `Proxy-Authorization` (what Prometheus
 * sends when `proxy_url` carries `user:password@`), else from `Authorization`
 * (a scrape config's `basic_auth` or `authorization`; the server never
 * forwards it to clients). `/clients` and `/metrics` take `Authorization`
 * (`http_sd_configs[].basic_auth` / `authorization`, or the scrape config's).
 *
 * Missing credentials: 407 with `Proxy-Authenticate` for proxied scrapes, 401
 * with `WWW-Authenticate` for the endpoints; wrong ones: 403.
 *
 * Give at least one of `users`, `usersFile`, `tokens`, `tokenFile`, `verify`;
 * a request passes when any of them accepts its credential.
 */
export interface PromAuthOptions {
  /**
   * Basic-auth users: user name to password, stored as scrypt
   * (`scrypt$N$r$p$SALT$HASH`, see `hashPassword`), bcrypt (`$2y$...`) or,
   * discouraged, plain text. Default none.
   */
  users?: Record<string, string>;
  /**
   * A file of basic-auth users, `user:hash` per line as `htpasswd -nbB`
   * writes them (scrypt, bcrypt or plain text as in `users`); `#` starts a
   * comment. Read at once (a bad file throws) and re-read when it changes
   * (checked on each request); a change that does not parse keeps the previous
   * users and is logged. Default none.
   */
  usersFile?: string;
  /** Bearer tokens accepted (Prometheus `authorization: { credentials }`). Default none. */
  tokens?: readonly string[];
  /** A file of bearer tokens, one per line, `#` comments; re-read as `usersFile`. Default none. */
  tokenFile?: string;
  /**
   * Your own check, for credentials that the options above do not accept:
   * true to let the request through. Default none.
   */
  verify?: (credential: PromCredential, request: PromAuthRequest) => boolean | Promise<boolean>;
  /** Which endpoints need credentials. Default: all three, `{ proxy: true, clients: true, metrics: true }`. */
  protect?: Partial<Record<PromEndpoint, boolean>>;
  /** The realm named in challenges. Default "promproxy". */
  realm?: string;
}

/** Why a request was refused: status, one-line message, challenge headers. @internal */
export interface PromDenial {
  status: 401 | 403 | 407;
  message: string;
  headers: Record<string, string | string[]>;
  /** For the scrape outcome metric. */
  outcome: "unauthenticated" | "forbidden";
}

/** The compiled check the front calls for every request. @internal */
export interface PromGate {
  /**
   * Undefined when the request needs no credentials (an unprotected endpoint);
   * otherwise a promise of the denial, or of undefined when it may pass.
   */
  check(req: IncomingMessage | Http2ServerRequest, uri: string): Promise<PromDenial | undefined> | undefined;
}

interface User {
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

/** Which endpoint a request URI is for, when it is one that auth can protect. @internal */
export function promEndpointOf(uri: string): PromEndpoint | undefined {
  if (!uri.startsWith("/")) return "proxy";
  const q = uri.indexOf("?");
  const p = q < 0 ? uri : uri.slice(0, q);
  return p === "/clients" ? "clients" : p === "/metrics" ? "metrics" : undefined;
}

/** Parses an Authorization / Proxy-Authorization value. @internal */
export function parseCredential(header: string): PromCredential | "malformed" | "unsupported" {
  const m = /^(\S+) +(\S+) *$/.exec(header);
  if (!m) return "malformed";
  const scheme = (m[1] as string).toLowerCase();
  const value = m[2] as string;
  if (scheme === "bearer") return token68.test(value) ? { scheme: "bearer", token: value } : "malformed";
  if (scheme !== "basic") return "unsupported";
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return "malformed";
  const decoded = Buffer.from(value, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return "malformed";
  return { scheme: "basic", username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

const cacheLimit = 1024;
/** Any valid hash: verified for unknown user names so that they take as long as wrong passwords. */
const decoy = parseStoredPassword("scrypt$32768$8$1$cHJvbXByb3h5IGRlY295$7hFQ4x5IqzvOwpEx7cTMbdwTq4mLzTrDpPc2IyGkMbY", "decoy");

/** Compiles {@link PromAuthOptions}; throws on a bad configuration. @internal */
export function createPromGate(options: PromAuthOptions, logger: Logger): PromGate {
  const { users, usersFile, tokens, tokenFile, verify } = options;
  if (!users && !usersFile && !tokens && !tokenFile && !verify) {
    throw new TypeError("promproxy: promAuth needs users, usersFile, tokens, tokenFile or verify");
  }
  const protect: Record<PromEndpoint, boolean> = { proxy: true, clients: true, metrics: true, ...options.protect };
  const realm = (options.realm ?? "promproxy").replace(/["\\\r\n]/g, "");
  const fixedUsers = new Map<string, User>();
  for (const [name, stored] of Object.entries(users ?? {})) {
    if (name === "" || name.includes(":")) throw new TypeError(`promproxy: promAuth.users: bad user name ${JSON.stringify(name)}`);
    fixedUsers.set(name, { password: parseStoredPassword(stored, `promAuth.users[${JSON.stringify(name)}]`) });
  }
  const fixedTokens = (tokens ?? []).map((t, i) => {
    if (!token68.test(t)) throw new TypeError(`promproxy: promAuth.tokens[${i}] is not a bearer token`);
    return { digest: digest(t) };
  });
  const reportReload = (file: string) => (e: Error) => logger.error("file not reloaded, keeping its previous content", { file, error: e.message });
  const userFile: ReloadingFile<Map<string, User>> | undefined = usersFile
    ? reloadingFile(usersFile, (t) => parseUsersFile(t, usersFile), reportReload(usersFile))
    : undefined;
  const tokFile = tokenFile ? reloadingFile(tokenFile, (t) => parsePromTokenFile(t, tokenFile), reportReload(tokenFile)) : undefined;

  const basic = Boolean(users || usersFile || verify);
  const bearer = Boolean(tokens || tokenFile || verify);
  const challenges = [...(basic ? [`Basic realm="${realm}", charset="UTF-8"`] : []), ...(bearer ? [`Bearer realm="${realm}"`] : [])];

  // Verified basic credentials, keyed by a keyed hash of the header (hash checks cost milliseconds of CPU each).
  const cacheKey = randomBytes(32);
  const cache = new Set<string>();
  let cachedFor = -1;

  function missing(endpoint: PromEndpoint): PromDenial {
    return endpoint === "proxy"
      ? {
          status: 407,
          message: "proxy authentication required: put user:password in proxy_url, or send a bearer token",
          headers: { "proxy-authenticate": challenges },
          outcome: "unauthenticated",
        }
      : { status: 401, message: `authentication required for /${endpoint}`, headers: { "www-authenticate": challenges }, outcome: "unauthenticated" };
  }
  const refused = (message: string): PromDenial => ({ status: 403, message, headers: {}, outcome: "forbidden" });

  async function allowed(credential: PromCredential, header: string, request: PromAuthRequest): Promise<boolean> {
    if (credential.scheme === "bearer") {
      const list = tokFile ? [...fixedTokens, ...(await tokFile.current())] : fixedTokens;
      if (findSecret(credential.token, list)) return true;
    } else {
      const fileUsers = userFile ? await userFile.current() : undefined;
      const generation = userFile?.generation ?? 0;
      if (cachedFor !== generation) {
        cache.clear();
        cachedFor = generation;
      }
      const key = createHmac("sha256", cacheKey).update(header).digest("base64");
      if (cache.has(key)) return true;
      const user = fixedUsers.get(credential.username) ?? fileUsers?.get(credential.username);
      // An unknown user name costs a hash check too, so that timing does not tell which names exist.
      const ok = fixedUsers.size > 0 || fileUsers ? await (user?.password ?? decoy).verify(credential.password) : false;
      if (ok && user) {
        if (cache.size >= cacheLimit) cache.clear();
        if (cachedFor === (userFile?.generation ?? 0)) cache.add(key);
        return true;
      }
    }
    return verify ? Boolean(await verify(credential, request)) : false;
  }

  return {
    check(req, uri) {
      const endpoint = promEndpointOf(uri);
      if (!endpoint || !protect[endpoint]) return undefined;
      const h = endpoint === "proxy" ? (req.headers["proxy-authorization"] ?? req.headers["authorization"]) : req.headers["authorization"];
      const header = Array.isArray(h) ? h[0] : h;
      if (!header) return Promise.resolve(missing(endpoint));
      const credential = parseCredential(header);
      if (credential === "unsupported") return Promise.resolve(missing(endpoint));
      const remoteAddress = req.socket?.remoteAddress;
      if (credential === "malformed") {
        logger.warn("prometheus-side request refused: malformed credentials", { endpoint, remote: remoteAddress });
        return Promise.resolve(refused("malformed credentials"));
      }
      return allowed(credential, header, { endpoint, headers: req.headers, remoteAddress }).then((ok) => {
        if (ok) return undefined;
        logger.warn("prometheus-side request refused: wrong credentials", {
          endpoint,
          remote: remoteAddress,
          user: credential.scheme === "basic" ? credential.username.slice(0, 64) : undefined,
          scheme: credential.scheme,
        });
        return refused("credentials refused");
      });
    },
  };
}
