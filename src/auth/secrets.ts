import { createHash, timingSafeEqual } from "node:crypto";

/** SHA-256 of a secret: secrets are kept and compared only as these. @internal */
export function digest(secret: string | Buffer): Buffer {
  return createHash("sha256").update(secret).digest();
}

/**
 * Finds the entry whose digest equals `candidate`'s, comparing against every
 * entry in constant time (no early exit, equal-length buffers), so the time
 * taken does not depend on how much of a secret was right.
 *
 * @internal
 */
export function findSecret<T extends { digest: Buffer }>(candidate: string, entries: Iterable<T>): T | undefined {
  const d = digest(candidate);
  let found: T | undefined;
  for (const e of entries) {
    if (timingSafeEqual(d, e.digest) && found === undefined) found = e;
  }
  return found;
}

/** Characters of an RFC 6750 bearer token (token68). @internal */
export const token68 = /^[A-Za-z0-9\-._~+/]+=*$/;
