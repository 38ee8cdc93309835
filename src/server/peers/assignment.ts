/**
 * With `replicasPerClient` K, each client holds K replicas of the set, chosen
 * by rendezvous hashing of its name (src/shared/rendezvous.ts). Clients reach
 * replicas through one balancer address and cannot pick, so a replica refuses
 * the hello of a client it is not assigned: `Unavailable`, naming itself in
 * `promproxy-replica-id` metadata (as `AlreadyExists` does) and the client's
 * replicas in the message. The client searches on; an older client retries
 * with its backoff. Scrapes of the client reach it by forwarding from any
 * replica. While the set is unknown (peers not all heard from yet) every
 * hello is taken.
 *
 * @internal
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Hello } from "../../../gen/promproxy/v1/scrape_pb.ts";
import type { Coordinator } from "../coordinator.ts";
import { checkName } from "../../shared/names.ts";
import { assignedReplicas } from "../../shared/rendezvous.ts";
import { headerSafe, replicaIdKey } from "../../shared/replica-header.ts";

/** The refusal of `hello` by replica `replicaId` under set `ids` and K `perClient`; undefined when it holds the client. */
export function assignmentRefusal(hello: Hello, replicaId: string, ids: readonly string[], perClient: number): ConnectError | undefined {
  if (perClient <= 0 || ids.length <= perClient) return undefined;
  const n = checkName(hello.name);
  if ("error" in n) return undefined; // refused for its name, by the coordinator
  const mine = assignedReplicas(n.name, ids, perClient);
  if (mine.includes(replicaId)) return undefined;
  const metadata = headerSafe(replicaId) ? new Headers({ [replicaIdKey]: replicaId }) : undefined;
  return new ConnectError(
    `replica ${replicaId} does not hold client "${n.name}": each client holds ${perClient} of the ${ids.length} replicas, this one ${mine.join(", ")} (any replica serves its scrapes)`,
    Code.Unavailable,
    metadata,
  );
}

/** `coordinator`, refusing in `join` the hellos of clients this replica is not assigned under the current set. */
export function withAssignment(coordinator: Coordinator, o: { replicaId: string; replicasPerClient: number }, set: () => readonly string[]): Coordinator {
  const join: Coordinator["join"] = (hello, identity, address) => {
    const refusal = assignmentRefusal(hello, o.replicaId, set(), o.replicasPerClient);
    return refusal ? Promise.reject(refusal) : coordinator.join(hello, identity, address);
  };
  // Every other member (getters included) is the coordinator's own.
  return Object.assign(Object.create(coordinator) as Coordinator, { join });
}
