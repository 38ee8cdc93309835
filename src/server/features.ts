/**
 * The optional protocol features a server uses on a stream (PROTOCOL.md,
 * "Features"): those the hello names that this server supports. "head" and "single-result" always;
 * "replica-set" only with peers, the only case where a replica knows the set.
 *
 * @internal
 */
import type { ResolvedServerOptions } from "./options.ts";

const always = ["head", "single-result"];
const withPeers = ["head", "single-result", "replica-set"];

/** The features of `asked` (Hello.features) this server uses, in the hello's order, each once. */
export function negotiateFeatures(asked: readonly string[], o: Pick<ResolvedServerOptions, "peers">): string[] {
  const supported = o.peers.length > 0 ? withPeers : always;
  return [...new Set(asked.filter((f) => supported.includes(f)))];
}
