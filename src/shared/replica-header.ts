/**
 * The response metadata key naming the replica that answered (a trailer on
 * gRPC, a header or end-of-stream metadata on Connect). A server sets it when
 * it refuses a hello with `AlreadyExists`, so that a client searching through
 * one load-balancer address tells "I already hold this replica" (its id is one
 * the client holds) from "my name is taken" (another id, or none).
 */
export const replicaIdKey = "promproxy-replica-id";

/** Whether `id` can travel as a header value (visible ASCII and spaces, no leading or trailing space). */
export function headerSafe(id: string): boolean {
  return /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/.test(id);
}
