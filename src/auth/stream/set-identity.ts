import type { ContextValues } from "@connectrpc/connect";
import { identityKey, type Identity } from "./identity.ts";

/**
 * Stores an identity in a call's context values. When an earlier interceptor
 * stored one already (e.g. mTLS, then a bearer token), the two are combined:
 * the call then holds only names that both allow, so stacking auth
 * interceptors requires every credential.
 *
 * @internal
 */
export function setIdentity(values: ContextValues, identity: Identity): void {
  const prev = values.get(identityKey);
  values.set(
    identityKey,
    prev
      ? { name: `${prev.name}+${identity.name}`, allows: (n: string) => prev.allows(n) && identity.allows(n) }
      : identity,
  );
}
