import * as path from "node:path";
import { Code, ConnectError, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { createConsoleLogger, type Logger } from "../../shared/logger.ts";
import type { Identity } from "./identity.ts";
import { compilePatterns, patternList } from "./patterns.ts";
import { peerKey, type Peer } from "./peer.ts";
import { reloadingFile } from "../reloading-file.ts";
import { digest, findSecret, token68 } from "../secrets.ts";
import { setIdentity } from "./set-identity.ts";

/** Who a token belongs to and which client names it may hold. */
export interface TokenGrant {
  /** A name for logs and `ClientInfo.identity` (never the token). */
  name: string;
  /** Names or patterns (`app-1`, `app-*`, `*.eu`, `**`) the token may hold; see the security docs. */
  patterns: readonly string[] | string;
}

/** What {@link BearerAuthOptions.verify} gets besides the token. */
export interface BearerVerifyContext {
  /** The request headers of the stream. */
  header: Headers;
  /** The call's context values (the {@link Peer} is under `peerKey`). */
  values: ContextValues;
  /** The connection the stream arrived on. */
  peer?: Peer;
}

/** Options of {@link bearerAuth}. Give at least one of `tokens`, `tokenFile` and `verify`; all given are consulted. */
export interface BearerAuthOptions {
  /**
   * Static tokens, each mapped to the names it may hold: a list of patterns
   * (`{ "TOKEN": ["app-*"] }`, identity `token#N` by position) or a
   * {@link TokenGrant} with its own identity name. Default none.
   */
  tokens?: Record<string, readonly string[] | string | TokenGrant>;
  /**
   * A file of tokens, one per line: `TOKEN PATTERNS [IDENTITY]` separated by
   * white space, PATTERNS comma-separated, `#` starts a comment. Read at once
   * (a bad file throws) and re-read whenever it changes (checked on each new
   * stream); a change that does not parse keeps the previous tokens and is
   * logged. Identity defaults to `FILE:LINE`. Default none.
   */
  tokenFile?: string;
  /**
   * Your own check (JWT, OIDC, a database): returns who the token belongs to
   * and the names it may hold, or undefined to refuse it (expired, revoked,
   * unknown): `Unauthenticated`. A `ConnectError` it throws goes to the client
   * as is; any other error becomes `Unavailable` (the client retries). Called
   * only for tokens that `tokens` and `tokenFile` do not know. Default none.
   */
  verify?: (token: string, context: BearerVerifyContext) => TokenGrant | undefined | Promise<TokenGrant | undefined>;
  /** Where token-file problems are logged (never a token). Default: warnings to stderr. */
  logger?: Logger;
}

interface Entry {
  digest: Buffer;
  identity: Identity;
}

function identityOf(grant: TokenGrant, fallbackName: string): Identity {
  const patterns = patternList(grant.patterns);
  return { name: grant.name || fallbackName, allows: compilePatterns(patterns) };
}

function checkToken(token: string, where: string): string {
  if (typeof token !== "string" || !token68.test(token)) {
    throw new TypeError(`promproxy: ${where}: a token must be non-empty and hold only letters, digits and -._~+/ (then =)`);
  }
  return token;
}

/** Parses a token file (see {@link BearerAuthOptions.tokenFile}). @internal */
export function parseTokenFile(text: string, file: string): Entry[] {
  const entries: Entry[] = [];
  const seen = new Set<string>();
  const base = path.basename(file);
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/(^|\s)#.*$/, "").trim();
    if (line === "") return;
    const where = `${base} line ${i + 1}`;
    const [token = "", patterns, name, ...extra] = line.split(/\s+/);
    if (!patterns || extra.length > 0) throw new TypeError(`promproxy: ${where}: want "TOKEN PATTERNS [IDENTITY]"`);
    checkToken(token, where);
    const d = digest(token);
    const key = d.toString("hex");
    if (seen.has(key)) throw new TypeError(`promproxy: ${where}: this token appears twice`);
    seen.add(key);
    entries.push({ digest: d, identity: identityOf({ name: name ?? "", patterns }, `${base}:${i + 1}`) });
  });
  return entries;
}

function unauthenticated(message: string): ConnectError {
  return new ConnectError(message, Code.Unauthenticated);
}

/** The token of an `authorization: Bearer TOKEN` header; throws Unauthenticated when missing or malformed. @internal */
export function bearerTokenOf(header: string | null): string {
  if (header === null || header === "") throw unauthenticated('missing credentials: send the header "authorization: Bearer TOKEN"');
  const m = /^bearer +(\S+) *$/i.exec(header);
  if (!m || !token68.test(m[1] as string)) throw unauthenticated('malformed authorization header: want "Bearer TOKEN"');
  return m[1] as string;
}

/**
 * A server interceptor that authenticates client streams by bearer token
 * (`authorization: Bearer TOKEN`) and binds each token to the client names it
 * may hold. Missing, malformed or unknown tokens: `Unauthenticated`; a hello
 * for a name outside the token's patterns: `PermissionDenied`. Tokens are kept
 * as SHA-256 digests, compared in constant time and never logged.
 *
 * ```ts
 * createServer({ interceptors: [bearerAuth({ tokens: { [process.env.TOKEN!]: ["app-*"] } })] });
 * ```
 */
export function bearerAuth(options: BearerAuthOptions): Interceptor {
  const { tokens, tokenFile, verify } = options;
  if (!tokens && !tokenFile && !verify) throw new TypeError("promproxy: bearerAuth needs tokens, tokenFile or verify");
  const logger = options.logger ?? createConsoleLogger("warn");
  const fixed: Entry[] = [];
  let n = 0;
  for (const [token, grant] of Object.entries(tokens ?? {})) {
    n++;
    checkToken(token, `bearerAuth tokens (entry ${n})`);
    const g: TokenGrant = typeof grant === "string" || Array.isArray(grant) ? { name: "", patterns: grant as string[] } : (grant as TokenGrant);
    fixed.push({ digest: digest(token), identity: identityOf(g, `token#${n}`) });
  }
  const file = tokenFile
    ? reloadingFile(tokenFile, (text) => parseTokenFile(text, tokenFile), (e) =>
        logger.error("token file not reloaded, keeping the previous tokens", { file: tokenFile, error: e.message }))
    : undefined;

  return (next) => async (req) => {
    const token = bearerTokenOf(req.header.get("authorization"));
    let identity = findSecret(token, file ? [...fixed, ...(await file.current())] : fixed)?.identity;
    if (!identity && verify) {
      let grant: TokenGrant | undefined;
      try {
        grant = await verify(token, { header: req.header, values: req.contextValues, peer: req.contextValues.get(peerKey) });
      } catch (e) {
        if (e instanceof ConnectError) throw e;
        logger.error("bearer token verification failed", { error: e instanceof Error ? e.message : String(e) });
        throw new ConnectError("token verification is unavailable, try again later", Code.Unavailable);
      }
      if (grant) {
        try {
          identity = identityOf(grant, "verified token");
        } catch (e) {
          logger.error("bearerAuth verify returned bad name patterns", { error: (e as Error).message });
          throw new ConnectError("token verification failed", Code.Internal);
        }
      }
    }
    if (!identity) throw unauthenticated("invalid bearer token (unknown, expired or revoked)");
    setIdentity(req.contextValues, identity);
    return next(req);
  };
}
