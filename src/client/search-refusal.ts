/**
 * An `AlreadyExists` refusal met while a client searches for replicas through
 * one address. The server names itself in the refusal's metadata
 * (`promproxy-replica-id`): a replica the client holds means a live stream of
 * ours has the name there, a step of the search (debug); another id, or none
 * (a server that does not name itself), means another client holds our name on that
 * replica: a real name clash, said at warn at most once a minute. Either way
 * the search goes on. "This replica does not serve you" (`Unavailable` naming
 * it) with nothing held is a step of the search `notServedTries` times in a
 * row; past that, a failure like any other (backed off, reported to `onError`),
 * said at warn at most once a minute.
 *
 * @internal
 */
import { Code, type ConnectError } from "@connectrpc/connect";
import type { Logger } from "../shared/logger.ts";
import { oneLine } from "../shared/one-line.ts";
import { replicaIdKey } from "../shared/replica-header.ts";
import { sparseLog } from "./fleet-limits.ts";

export function createSearchRefusals(log: Logger, name: string): (error: ConnectError, held: Set<string>, server: string) => "held" | "clash" {
  const clash = sparseLog(log);
  return (error, held, server) => {
    const by = error.metadata.get(replicaIdKey) ?? "";
    if (notServedHere(error)) {
      log.debug("landed on a replica that does not serve this client; trying again", { name, server, replica: oneLine(by, 128) });
      return "held";
    }
    if (held.has(by)) {
      log.debug("landed on a replica already held; trying again", { name, server });
      return "held";
    }
    const replica = by ? oneLine(by, 128) : undefined; // a server's word: bounded in our host's log
    clash("our name is held by another client on a replica we do not hold; searching on", { name, replica, server, reason: oneLine(error.rawMessage, 512) });
    return "clash";
  };
}

/**
 * Whether a refusal says "this replica does not serve you, another of the set
 * does" (`Unavailable` naming the replica: with `replicas_per_client`, a
 * replica refuses a client it is not assigned): a step of the search.
 */
export function notServedHere(error: ConnectError | undefined): boolean {
  return error?.code === Code.Unavailable && error.metadata.has(replicaIdKey);
}

/**
 * Refusals "not served here" in a row, holding nothing, taken as steps of the search (a prompt retry) before
 * backing off: at least 8 (a round-robin balancer over 8 replicas, this client assigned to one of them), and 4 for
 * each distinct replica that refused (a random balancer over N replicas lands on the right one within 4N tries 98
 * times in 100), the distinct ones counted up to `maxReplicas`.
 */
export const notServedTries = 8;

/** Prompt retries allowed after refusals by `distinct` replicas (see notServedTries). */
export function notServedTriesFor(distinct: number): number {
  return Math.max(notServedTries, 4 * distinct);
}

/** Past `notServedTries`: said at warn at most once a minute. */
export function createNotServedWarning(log: Logger, name: string): (error: ConnectError, server: string) => void {
  const say = sparseLog(log);
  return (error, server) => {
    const replica = oneLine(error.metadata.get(replicaIdKey) ?? "", 128);
    say("every replica reached says it does not serve this client, and none is held: retrying at most 10 s apart (the prompt retries are spent)", { name, server, replica });
  };
}
