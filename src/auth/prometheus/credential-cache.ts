import { createHmac, randomBytes } from "node:crypto";

/**
 * Outcomes of basic-auth password checks, so that a credential costs one hash
 * check, not one per scrape. Entries are keyed by an HMAC (with a random key
 * made at startup) of user name and password, never by the password itself,
 * and each remembers which stored password it was checked against: when the
 * users file changes that user's hash (or adds or removes the user), the entry
 * no longer counts. An entry is forgotten after `ttlMs` without use; at most
 * `maxEntries` of each outcome are kept, the least recently used going first.
 * Accepted and refused credentials are kept apart, so that a flood of wrong
 * guesses cannot push out the credentials in use.
 *
 * @internal
 */
export interface CredentialCache {
  /** The remembered outcome for this user, password and stored password id, if any. */
  get(username: string, password: string, storedId: string): boolean | undefined;
  set(username: string, password: string, storedId: string, ok: boolean): void;
  /** The key of a credential (to share one check among concurrent requests). */
  key(username: string, password: string): string;
  /** Entries kept now, accepted and refused (for tests). */
  readonly size: { accepted: number; refused: number };
}

export interface CredentialCacheOptions {
  ttlMs: number;
  maxEntries: number;
  /** The clock, in milliseconds. Default `performance.now`. */
  now?: () => number;
}

interface Entry {
  storedId: string;
  until: number;
}

export function createCredentialCache(options: CredentialCacheOptions): CredentialCache {
  const { ttlMs, maxEntries } = options;
  const now = options.now ?? (() => performance.now());
  const secret = randomBytes(32);
  const accepted = new Map<string, Entry>();
  const refused = new Map<string, Entry>();

  function key(username: string, password: string): string {
    const user = Buffer.from(username, "utf8");
    const length = Buffer.alloc(4);
    length.writeUInt32BE(user.length);
    return createHmac("sha256", secret).update(length).update(user).update(password, "utf8").digest("base64");
  }

  function lookup(map: Map<string, Entry>, k: string, storedId: string): boolean {
    const e = map.get(k);
    if (!e) return false;
    map.delete(k);
    if (e.storedId !== storedId || e.until <= now()) return false;
    map.set(k, { storedId, until: now() + ttlMs });
    return true;
  }

  return {
    key,
    get(username, password, storedId) {
      if (maxEntries <= 0) return undefined;
      const k = key(username, password);
      if (lookup(accepted, k, storedId)) return true;
      if (lookup(refused, k, storedId)) return false;
      return undefined;
    },
    set(username, password, storedId, ok) {
      if (maxEntries <= 0) return;
      const k = key(username, password);
      const map = ok ? accepted : refused;
      (ok ? refused : accepted).delete(k);
      map.delete(k);
      map.set(k, { storedId, until: now() + ttlMs });
      if (map.size > maxEntries) map.delete(map.keys().next().value as string);
    },
    get size() {
      return { accepted: accepted.size, refused: refused.size };
    },
  };
}
