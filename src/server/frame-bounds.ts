/**
 * The most entries a repeated field of a client frame may carry: protocol
 * constants, not options, each far above what any client sends (PROTOCOL.md,
 * the hello's limits and "head (client)"). A ~300 KiB frame of empty entries (two bytes each) would
 * otherwise be decoded into 150,000 strings or objects before any other
 * check: tens of milliseconds of the event loop per frame. Hello fields
 * counted in bytes or bounded by options (labels: `maxLabels` per label set
 * on the wire; targets: `maxTargets`) are held to those.
 *
 * @internal
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** Hello.features: a client names the handful of features it supports (the Node client 3). */
export const maxHelloFeatures = 64;
/**
 * Hello.held_replica_ids: a client lists the replicas it holds a stream to
 * (the Node client at most its `maxReplicas`, 64 by default); the server reads
 * the first 64 of them.
 */
export const maxHeldReplicaIds = 1024;
/** ResultHead.headers and ScrapeResult.headers: a client passes on at most 3 (content-type, -encoding, -length). */
export const maxResultHeaders = 128;

/** The refusal of a hello with too many entries in `field` (the stream ends, nothing is registered). */
export function helloOverBound(field: string, max: number, n?: number): ConnectError {
  const what = n === undefined ? "" : ` (${n})`;
  return new ConnectError(`bad hello: more than the maximum of ${max} ${field}${what}`, Code.InvalidArgument);
}

/** The protocol violation of a result frame with too many headers (the stream ends). */
export function headersOverBound(kind: string, n?: number): ConnectError {
  const what = n === undefined ? "" : ` (${n})`;
  return new ConnectError(`a ${kind} frame with more than the maximum of ${maxResultHeaders} headers${what}`, Code.InvalidArgument);
}
