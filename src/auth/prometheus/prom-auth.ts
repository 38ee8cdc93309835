import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { availableParallelism } from "node:os";
import type { Logger } from "../../shared/logger.ts";
import { createCheckSlots } from "./check-slots.ts";
import { createCredentialCache } from "./credential-cache.ts";
import { createLoginThrottle } from "./login-throttle.ts";
import { parseStoredPassword } from "./passwords.ts";
import { parseCredential, parsePromTokenFile, parseUsersFile, pickDecoy, promEndpointOf, type PromAuthRequest, type PromCredential, type PromEndpoint, type User } from "./prom-credentials.ts";
import { reloadingFile, type ReloadingFile } from "../reloading-file.ts";
import { digest, findSecret, token68 } from "../secrets.ts";
import { createRefusalLog } from "../../shared/refusal-log.ts";

export { parseCredential, promEndpointOf, type PromAuthRequest, type PromCredential, type PromEndpoint };

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
 * with `WWW-Authenticate` for the endpoints; wrong ones: 403. A source address
 * out of failures: 429 with `Retry-After`; every password-check slot and
 * queue place taken: 503 with `Retry-After`. Credentials already verified
 * (bearer tokens, basic credentials in the cache) pass even then.
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
   * true to let the request through. Its answers are not cached, and each
   * call spends one of the address's failures until it returns true (see
   * `failureBurst`). Default none.
   */
  verify?: (credential: PromCredential, request: PromAuthRequest) => boolean | Promise<boolean>;
  /** Which endpoints need credentials. Default: all three, `{ proxy: true, clients: true, metrics: true }`. */
  protect?: Partial<Record<PromEndpoint, boolean>>;
  /** The realm named in challenges. Default "promproxy". */
  realm?: string;
  /**
   * Failed checks a source address may make in a burst: past it, credentials
   * that still need a check (a hash, a `verify` call, an unknown bearer token)
   * get 429 with `Retry-After`. A check takes one before it starts (so
   * concurrent attempts count) and gives it back when it succeeds; the same
   * wrong credential again is answered 403 from the cache and costs none.
   * IPv6 addresses count by their /64. Default 10.
   */
  failureBurst?: number;
  /** Milliseconds for an address to regain one failure. Default 6000 (10 a minute). */
  failureRefillMs?: number;
  /** Source addresses the throttle remembers (least recently used forgotten first). Default 10000. */
  maxTrackedAddresses?: number;
  /**
   * Password hash checks (scrypt, bcrypt) running at once, on threads off the
   * event loop; a scrypt check holds 32 MiB while it runs, and one of libuv's
   * threads (`UV_THREADPOOL_SIZE`, 4 by default), which file reads such as the
   * users file's also need: keep it under that. Default half the CPUs
   * (`os.availableParallelism()`), at least 1, so the event loop keeps a core
   * for scrapes.
   */
  maxConcurrentChecks?: number;
  /** Hash checks waiting for a slot; past it, 503 with `Retry-After: 1`. Default 16. */
  maxQueuedChecks?: number;
  /**
   * How long a checked basic credential (accepted or refused) is remembered
   * without use, in milliseconds: remembered ones cost no hash. Entries are
   * keyed by an HMAC of user and password, and dropped when the user's stored
   * password changes. Default 600000 (10 minutes).
   */
  cacheTtlMs?: number;
  /** Credentials remembered, for each outcome (accepted, refused); 0 turns the cache off. Default 1000. */
  cacheMaxEntries?: number;
}

/** Why a request was refused: status, one-line message, headers. @internal */
export interface PromDenial {
  status: 401 | 403 | 407 | 429 | 503;
  message: string;
  headers: Record<string, string | string[]>;
  /** For the scrape outcome metric. */
  outcome: "unauthenticated" | "forbidden" | "throttled" | "auth_busy";
}

/** The compiled check the front calls for every request. @internal */
export interface PromGate {
  /**
   * Undefined when the request needs no credentials (an unprotected endpoint);
   * otherwise a promise of the denial, or of undefined when it may pass.
   */
  check(req: IncomingMessage | Http2ServerRequest, uri: string): Promise<PromDenial | undefined> | undefined;
}

/** "ok"; "refused"; "known" (refused without a new check); "busy" (no check slot); a number: throttled, ms to wait. */
type Outcome = "ok" | "refused" | "known" | "busy" | number;

function positive(name: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) throw new TypeError(`promproxy: promAuth.${name} must be an integer >= ${min}`);
  return value;
}

/** Compiles {@link PromAuthOptions}; throws on a bad configuration. @internal */
export function createPromGate(options: PromAuthOptions, logger: Logger): PromGate {
  const { users, usersFile, tokens, tokenFile, verify } = options;
  if (!users && !usersFile && !tokens && !tokenFile && !verify) {
    throw new TypeError("promproxy: promAuth needs users, usersFile, tokens, tokenFile or verify");
  }
  // An explicit undefined (from a config file, say) keeps the default: protected.
  const protect: Record<PromEndpoint, boolean> = {
    proxy: options.protect?.proxy ?? true,
    clients: options.protect?.clients ?? true,
    metrics: options.protect?.metrics ?? true,
  };
  const realm = (options.realm ?? "promproxy").replace(/["\\\r\n]/g, "");
  const throttle = createLoginThrottle({
    burst: positive("failureBurst", options.failureBurst, 10),
    refillMs: positive("failureRefillMs", options.failureRefillMs, 6000),
    maxAddresses: positive("maxTrackedAddresses", options.maxTrackedAddresses, 10_000),
  });
  const slots = createCheckSlots(
    positive("maxConcurrentChecks", options.maxConcurrentChecks, Math.max(1, Math.floor(availableParallelism() / 2))),
    positive("maxQueuedChecks", options.maxQueuedChecks, 16, 0),
  );
  const cache = createCredentialCache({
    ttlMs: positive("cacheTtlMs", options.cacheTtlMs, 600_000, 0),
    maxEntries: positive("cacheMaxEntries", options.cacheMaxEntries, 1000, 0),
  });
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

  // The decoy for unknown names follows the users: recomputed when the file's content changes.
  let decoy = pickDecoy(fixedUsers.values());
  let decoyFor: Map<string, User> | undefined;
  // Concurrent requests with the same basic credential share one hash check.
  const inFlight = new Map<string, Promise<boolean>>();

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
  // A flood of refusals must not flood the log: one line per kind per 10 s, with how many more there were.
  const sparse = (message: string) => {
    const log = createRefusalLog(logger, 10_000);
    return (fields: Record<string, unknown>) => log.refused(message, fields);
  };
  const logThrottled = sparse("prometheus-side requests refused: too many failed logins from an address");
  const logBusy = sparse("prometheus-side requests refused: every password-check slot is taken");
  // Refusals answered from the cache cost a requester nothing: at most one line per 10 s, the rest counted.
  const logMalformed = sparse("prometheus-side request refused: malformed credentials");
  const logWrong = sparse("prometheus-side request refused: wrong credentials");

  /** A basic credential against the users; "refused" only when this request spent a failure. */
  async function checkPassword(credential: PromCredential & { scheme: "basic" }, address: string | undefined): Promise<Outcome> {
    const fileUsers = userFile ? await userFile.current() : undefined;
    if (fixedUsers.size === 0 && !fileUsers?.size) return "known";
    if (fileUsers !== decoyFor) {
      decoy = pickDecoy([...fixedUsers.values(), ...(fileUsers?.values() ?? [])]);
      decoyFor = fileUsers;
    }
    const { username, password } = credential;
    const stored = (fixedUsers.get(username) ?? fileUsers?.get(username))?.password;
    const storedId = stored?.id ?? "";
    const cached = cache.get(username, password, storedId);
    if (cached !== undefined) return cached ? "ok" : "known";
    const key = `${storedId}\n${cache.key(username, password)}`;
    const joined = inFlight.get(key);
    if (joined) return (await joined) ? "ok" : "known";
    const wait = throttle.take(address);
    if (wait > 0) return wait;
    // An unknown name is checked against a real hash of the same type and cost, its outcome ignored.
    const running = slots.run(() => (stored ?? (decoy as NonNullable<typeof decoy>)).verify(password));
    if (!running) {
      throttle.refund(address);
      return "busy";
    }
    const pending = running.then((ok) => ok && stored !== undefined);
    inFlight.set(key, pending);
    try {
      const ok = await pending;
      cache.set(username, password, storedId, ok);
      if (ok) throttle.refund(address);
      return ok ? "ok" : "refused";
    } finally {
      inFlight.delete(key);
    }
  }

  async function allowed(credential: PromCredential, request: PromAuthRequest): Promise<Outcome> {
    const address = request.remoteAddress;
    let r: Outcome = "known";
    if (credential.scheme === "bearer") {
      const list = tokFile ? [...fixedTokens, ...(await tokFile.current())] : fixedTokens;
      if (findSecret(credential.token, list)) return "ok";
      if (!verify) r = throttle.take(address) || "refused"; // cheap to check, but guesses are throttled all the same
    } else {
      r = await checkPassword(credential, address);
    }
    if (!verify || r === "ok" || r === "busy" || typeof r === "number") return r;
    if (r === "known") {
      const wait = throttle.take(address);
      if (wait > 0) return wait;
    }
    if (await verify(credential, request)) {
      throttle.refund(address);
      return "ok";
    }
    return "refused";
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
        logMalformed({ endpoint, remote: remoteAddress });
        return Promise.resolve(refused("malformed credentials"));
      }
      return allowed(credential, { endpoint, headers: req.headers, remoteAddress }).then((outcome): PromDenial | undefined => {
        if (outcome === "ok") return undefined;
        if (typeof outcome === "number") {
          const seconds = Math.max(1, Math.ceil(outcome / 1000));
          logThrottled({ endpoint, remote: remoteAddress });
          return { status: 429, message: `too many failed logins from this address, retry in ${seconds} s`, headers: { "retry-after": String(seconds) }, outcome: "throttled" };
        }
        if (outcome === "busy") {
          logBusy({ endpoint, remote: remoteAddress });
          return { status: 503, message: "too many password checks in progress, retry in 1 s", headers: { "retry-after": "1" }, outcome: "auth_busy" };
        }
        logWrong({
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
