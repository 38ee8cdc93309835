/**
 * The words the coordinator, the sessions and the HTTP front share about one
 * scrape: what is ordered, how its result flows, how it ends.
 *
 * @internal
 */
import type { Header } from "../../gen/promproxy/v1/scrape_pb.ts";
import type { CheckedHead } from "./result-head.ts";

/**
 * How a scrape ended, when not in success: the outcome names the cause (the
 * front picks the HTTP status for it; metrics count it), the message says it
 * in one line for the response body. @internal
 */
export interface ScrapeFailure {
  outcome: ScrapeOutcome;
  /** One line, without the "promproxy: " prefix. */
  message: string;
}

/** Every way a scrape can end but success. @internal */
export type ScrapeOutcome =
  | "unknown_client" | "warming_up" | "vanished" | "not_found" | "busy" | "shutting_down" | "timeout" | "disconnected" | "too_large"
  | "bad_result" | "target_unreachable" | "client_error" | "cancelled" | "prometheus_gone" | "bad_request";

/** What the front wants done with a scrape's result, in order. @internal */
export interface ScrapeSink {
  /** The result head, checked (final status, safe headers, a Content-Length the body is held to). */
  onHead(head: CheckedHead): void;
  /** A body chunk. The sink returns the bytes to the client with {@link ScrapeHandle.grant} once it has passed them on. */
  onChunk(data: Uint8Array): void;
  /** The end: success without an argument. Called exactly once, also when the session dies. */
  onEnd(failure?: ScrapeFailure): void;
  /** How long its answer has taken nothing while holding bytes Prometheus does not read (0: none). */
  stalledMs?(): number;
}

/** The front's grip on a scrape in flight. @internal */
export interface ScrapeHandle {
  readonly id: bigint;
  /** Lets the client send `bytes` more body bytes. */
  grant(bytes: number): void;
  /** Tells the client to stop; the sink hears nothing more. */
  cancel(reason: string): void;
}

/** What a scrape order says, before the session gives it an id. @internal */
export interface OrderRequest {
  /** Prometheus' method. HEAD reaches only clients that announced the feature "head"; others get GET. */
  method: "GET" | "HEAD";
  port: number;
  path: string;
  scheme: string;
  headers: Header[];
  timeoutMs: number;
  /** Body bytes the client may send before it waits for credit (the front's reservation); default: server option creditBytes. */
  creditBytes?: number;
}

/** How one proxied request ended. */
export interface ScrapeEvent {
  /** The client's name (lower case), or the requested host when no client had it. */
  name: string;
  /** The port asked for (0 or absent: none), so that `name:port` names the target. */
  port?: number;
  /** `success`, or why not (as `promproxy_scrapes_total{outcome}` counts it). */
  outcome: string;
  /** When it ended. */
  at: Date;
  /** From the request to the end of the response. */
  durationMs: number;
  /** Body bytes relayed. */
  bytes: number;
  /** The one-line answer given to Prometheus, for failures. */
  message?: string;
}
