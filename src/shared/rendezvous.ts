/**
 * Which replicas of the set a client holds when each client holds `k` of them:
 * rendezvous (highest-random-weight) hashing of its name over the replica ids,
 * so that a change of the set moves only about k/N of the clients. Every
 * language computes the same (PROTOCOL.md, "Replica set"):
 *
 *   weight(name, id) = the first 8 bytes of SHA-256(UTF-8(name) 0x00 UTF-8(id)),
 *                      as an unsigned big-endian 64-bit integer
 *
 * The client's replicas are the `k` ids of highest weight (equal weights: the
 * smaller id first, by UTF-16 code units); `k` 0, or at least the set's size,
 * means every replica. `name` is the canonical (lower-case) client name.
 */
import { createHash } from "node:crypto";

/** The weight of replica `id` for client `name`. */
export function rendezvousWeight(name: string, id: string): bigint {
  return createHash("sha256").update(`${name}\0${id}`, "utf8").digest().readBigUInt64BE(0);
}

/** The replicas of `ids` that client `name` holds, `k` of them (0: all), highest weight first. */
export function assignedReplicas(name: string, ids: readonly string[], k: number): string[] {
  const unique = [...new Set(ids)];
  if (k <= 0 || k >= unique.length) return unique.sort();
  return unique
    .map((id) => ({ id, w: rendezvousWeight(name, id) }))
    .sort((a, b) => (a.w === b.w ? (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) : a.w > b.w ? -1 : 1))
    .slice(0, k)
    .map((e) => e.id);
}
