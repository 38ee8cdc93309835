import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { bcryptPool } from "./hash-pool.ts";
import { digest } from "../secrets.ts";

/** A bcrypt hash as htpasswd -B and Prometheus' web.yml write it: `$2a$`, `$2b$` or `$2y$`, cost, 22 salt and 31 hash characters. */
const bcryptFormat = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;

/**
 * Stored passwords for Prometheus-side basic auth, in one of three forms:
 *
 * - scrypt: `scrypt$N$r$p$SALT$HASH`, SALT and HASH base64 (padding optional),
 *   N a power of two. {@link hashPassword} writes these (N=32768, r=8, p=1,
 *   16-byte salt, 32-byte hash), as does `promproxy server --hash-password`.
 * - bcrypt: `$2a$`, `$2b$` or `$2y$` (as `htpasswd -nbB user password` and
 *   Prometheus' own web.yml use).
 * - plain text: anything else not starting with `$` or `{` (discouraged; for
 *   tests and secrets that live in a secret store anyway). Values starting
 *   with `$` or `{` that are none of the above (`$apr1$`, `{SHA}`) are refused
 *   when loaded, so that an unsupported hash is never taken for a password.
 */

const scryptFormat = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

/** A stored password, parsed and checked once. @internal */
export interface StoredPassword {
  kind: "scrypt" | "bcrypt" | "plain";
  /**
   * Kind and parameters, e.g. `bcrypt$10` or `scrypt$32768$8$1$32`: two
   * stored passwords with the same cost take the same time to verify.
   */
  cost: string;
  /** Rough milliseconds of CPU one check takes (to pick the costliest of equals). */
  work: number;
  /** Identifies the stored value (a digest of it), so caches notice when it changes. */
  id: string;
  verify(password: string): Promise<boolean>;
}

/** Hash computations started, by {@link StoredPassword.cost} (for tests and debugging). @internal */
export const hashCounts = new Map<string, number>();
const counted = (cost: string) => hashCounts.set(cost, (hashCounts.get(cost) ?? 0) + 1);

function scryptAsync(password: string, salt: Buffer, keylen: number, N: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, keylen, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** Parses a stored password; throws a TypeError (never echoing the value) when it is not usable. @internal */
export function parseStoredPassword(stored: string, where: string): StoredPassword {
  if (typeof stored !== "string" || stored === "") throw new TypeError(`promproxy: ${where}: empty password`);
  const id = digest(stored).toString("base64");
  const s = scryptFormat.exec(stored);
  if (s) {
    const [N, r, p] = [Number(s[1]), Number(s[2]), Number(s[3])];
    const salt = Buffer.from(s[4] as string, "base64");
    const hash = Buffer.from(s[5] as string, "base64");
    if (!(N >= 2 && N <= 2 ** 20 && (N & (N - 1)) === 0) || !(r >= 1 && r <= 32) || !(p >= 1 && p <= 16) || salt.length < 8 || hash.length < 16 || hash.length > 64) {
      throw new TypeError(`promproxy: ${where}: scrypt parameters out of range (N a power of 2 up to 2^20, r 1-32, p 1-16, salt >= 8 bytes, hash 16-64 bytes)`);
    }
    const cost = `scrypt$${N}$${r}$${p}$${hash.length}`;
    return {
      kind: "scrypt",
      cost,
      work: (N * r * p) / 2600, // about 100 ms for N=32768, r=8, p=1 on one core of a small VM
      id,
      async verify(password) {
        counted(cost);
        // crypto.scrypt runs on libuv's thread pool, off the event loop.
        const key = await scryptAsync(password, salt, hash.length, N, r, p);
        return timingSafeEqual(key, hash);
      },
    };
  }
  if (stored.startsWith("$2")) {
    const m = bcryptFormat.exec(stored);
    if (!m || Number(m[1]) < 4 || Number(m[1]) > 31) throw new TypeError(`promproxy: ${where}: malformed bcrypt hash`);
    const cost = `bcrypt$${m[1]}`;
    return {
      kind: "bcrypt",
      cost,
      work: 2 ** Number(m[1]) / 14, // about 70 ms at cost 10
      id,
      verify(password) {
        counted(cost);
        // bcryptjs is pure JavaScript: run it on a worker thread, never on the event loop.
        return bcryptPool.compare(password, stored);
      },
    };
  }
  if (stored.startsWith("$") || stored.startsWith("{")) {
    throw new TypeError(`promproxy: ${where}: unsupported password hash (use bcrypt "$2y$..." or "scrypt$..."; plain text must not start with "$" or "{")`);
  }
  const d = digest(stored);
  return {
    kind: "plain",
    cost: "plain",
    work: 0,
    id,
    async verify(password) {
      counted("plain");
      return timingSafeEqual(digest(password), d);
    },
  };
}

/**
 * Hashes a password for `promAuth.users` or a users file:
 * `scrypt$32768$8$1$SALT$HASH`.
 */
export async function hashPassword(password: string): Promise<string> {
  if (typeof password !== "string" || password === "") throw new TypeError("promproxy: hashPassword: empty password");
  const [N, r, p] = [32768, 8, 1];
  const salt = randomBytes(16);
  const hash = await scryptAsync(password, salt, 32, N, r, p);
  const b64 = (b: Buffer) => b.toString("base64").replace(/=+$/, "");
  return `scrypt$${N}$${r}$${p}$${b64(salt)}$${b64(hash)}`;
}

/** Checks a password against a stored value (hash or plain text, see above). */
export function verifyPassword(password: string, stored: string): Promise<boolean> {
  return parseStoredPassword(stored, "verifyPassword").verify(password);
}
