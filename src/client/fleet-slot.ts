/**
 * One connection slot of the fleet (src/client/fleet.ts): a loop over single connection attempts, bound to one
 * endpoint or free (dialling the single endpoint), and what it holds now.
 *
 * @internal
 */
import type { Endpoint } from "./endpoints.ts";

/** @internal */
export interface Slot {
  /** The endpoint a bound slot dials; free slots dial the single endpoint. */
  endpoint?: Endpoint;
  /** A one-off probe for a replica not met yet. */
  probe: boolean;
  /** The replica id of the stream it holds now ("" for a server without ids). */
  held?: string;
  /** The key of the endpoint that stream was dialled through. */
  via?: string;
  /** Retires the slot: its stream (if any) says goodbye, its loop ends. */
  cancel: AbortController;
  /** Ends the current attempt (its stream cleanly), the slot going on; set while one runs. */
  attempt?: AbortController;
  /** A bound slot's replica that does not serve this client: the slot waits for a change of the set before dialling. */
  unassigned?: string;
}
