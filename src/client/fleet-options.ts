/**
 * What the fleet of streams (src/client/fleet.ts) needs from its client, and
 * the events it tells it.
 *
 * @internal
 */
import type { ConnectError } from "@connectrpc/connect";
import type { ConnectionContext } from "./connection.ts";
import type { StreamInfo } from "./options.ts";

/** @internal */
export interface FleetOptions {
  /** What every connection attempt shares (the resolved options among it). */
  connection: Omit<ConnectionContext, "base" | "address" | "stopped" | "onWelcome" | "welcomePatience">;
  /** Aborted when the client stops: every stream says goodbye. */
  stopped: AbortSignal;
  onUp(info: StreamInfo): void;
  /** A welcomed stream ended; `byUs` when the fleet closed it itself (endpoint gone, replaced). */
  onDown(info: StreamInfo, error: ConnectError | undefined, byUs: boolean): void;
  /**
   * An attempt through `where.server` failed before a welcome (not a duplicate); `several`: the client has several
   * endpoints; `everywhere`: every endpoint's last attempt was a refusal retrying cannot fix (src/client/fatal-refusal.ts).
   * Returns what the slot does: the client is to "stop", "hold" (retry at the longest backoff step) or "retry".
   */
  onFailed(error: ConnectError, where: { server: string; several: boolean; everywhere: boolean }): "stop" | "hold" | "retry";
}
