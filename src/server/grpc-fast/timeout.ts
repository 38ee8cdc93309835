import { Code, ConnectError } from "@connectrpc/connect";

const unitMs: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000_001 };

/**
 * Reads a `grpc-timeout` header (gRPC spec: 1 to 8 digits and a unit, H M S m
 * u n) as milliseconds; undefined when absent. The call honours it: past the
 * deadline it ends with DEADLINE_EXCEEDED, as the spec asks of servers. A
 * malformed value is refused with InvalidArgument, as Connect refuses it.
 *
 * @internal
 */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = typeof value === "string" ? /^(\d{1,8})([HMSmun])$/.exec(value) : null;
  if (!m) throw new ConnectError(`protocol error: invalid grpc timeout value: ${String(value).slice(0, 40)}`, Code.InvalidArgument);
  return Number(m[1]) * unitMs[m[2]!]!;
}
