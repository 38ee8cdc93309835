/**
 * The replica set a server announces (Welcome.replica_ids and
 * replicas_per_client, or a ReplicaSet frame), checked before the client
 * believes it: a server is not trusted, so a set of more than `maxReplicas`
 * ids, or with an id that is empty, longer than 128 characters, not
 * header-safe or repeated, ends the stream with one clear line. The check
 * stops at the first fault: bounded cost whatever the server sends.
 *
 * @internal
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { headerSafe } from "../shared/replica-header.ts";
import { maxServerIdLength } from "./server-limits.ts";

/** A replica set as the client keeps it. */
export interface ReplicaSet {
  /** The replica ids, sorted. */
  ids: string[];
  /** Replicas each client holds; 0: every replica. */
  perClient: number;
}

/**
 * The line a set of more than `maxReplicas` ids ends the stream with (said without their number: a frame is refused
 * at the first id over, before the others are read; frame-entries.ts).
 */
export function tooManyReplicas(from: string, maxReplicas: number): ConnectError {
  return new ConnectError(`the server's ${from} announces a replica set of over ${maxReplicas} replicas, more than this client holds (maxReplicas ${maxReplicas})`, Code.FailedPrecondition);
}

/** Checks an announced set; undefined for an empty one (unknown); throws a ConnectError (FailedPrecondition) for a bad one. */
export function checkReplicaSet(ids: readonly string[], perClient: number, maxReplicas: number, from: string): ReplicaSet | undefined {
  if (ids.length === 0) return undefined;
  const bad = (what: string) => new ConnectError(`the server's ${from} announces a replica set ${what}`, Code.FailedPrecondition);
  if (ids.length > maxReplicas) throw tooManyReplicas(from, maxReplicas);
  const seen = new Set<string>();
  for (const id of ids) {
    if (!(id.length <= maxServerIdLength && headerSafe(id))) throw bad(`with an id of ${id.length} characters that is not a short header-safe id (at most ${maxServerIdLength})`);
    if (seen.has(id)) throw bad("naming a replica twice");
    seen.add(id);
  }
  return { ids: [...seen].sort(), perClient };
}
