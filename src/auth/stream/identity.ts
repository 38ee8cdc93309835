import { createContextKey } from "@connectrpc/connect";

/**
 * Who a client stream authenticated as, and which names it may hold. Auth
 * interceptors put one in the call's context values under {@link identityKey};
 * the Scrape handler refuses a hello for any other name with PermissionDenied.
 */
export interface Identity {
  /** A name for logs and `/clients` (never a secret). */
  name: string;
  /** Whether this identity may hold the client name (lower case). */
  allows(clientName: string): boolean;
}

/** Context key under which auth interceptors store the caller's {@link Identity}. */
export const identityKey = createContextKey<Identity | undefined>(undefined, { description: "promproxy identity" });
