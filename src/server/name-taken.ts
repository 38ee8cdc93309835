import { Code, ConnectError } from "@connectrpc/connect";
import { headerSafe, replicaIdKey } from "../shared/replica-header.ts";

/**
 * The refusal of a hello for a name a live client holds here: `AlreadyExists`,
 * naming this replica in the message and as `promproxy-replica-id` metadata,
 * so that a client searching for replicas tells a replica it holds from a
 * name clash.
 *
 * @internal
 */
export function nameTaken(name: string, sessionId: string, replicaId: string): ConnectError {
  const metadata = headerSafe(replicaId) ? new Headers({ [replicaIdKey]: replicaId }) : undefined;
  return new ConnectError(`the name "${name}" is held by another connected client (session ${sessionId}) on replica ${replicaId}`, Code.AlreadyExists, metadata);
}
