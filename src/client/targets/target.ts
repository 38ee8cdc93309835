import { ScrapeErrorReason } from "../../../gen/promproxy/v1/scrape_pb.ts";

/** One scrape as a target sees it. @internal */
export interface ServeRequest {
  /** Port Prometheus addressed, 0 for none. */
  port: number;
  /** Path and query. */
  path: string;
  /** "http" or "https" (from `_scheme`). */
  scheme: string;
  /** Forwarded request headers, lower-case names. */
  headers: Record<string, string>;
  /** Time left for the scrape. */
  timeoutMs: number;
  /** Aborted on cancel or deadline. */
  signal: AbortSignal;
}

/** Where a target writes its result. Flow control is the writer's business. @internal */
export interface ResultWriter {
  head(status: number, headers: Record<string, string>): void;
  /** Resolves once the bytes are handed to the stream (waits for credit). */
  write(data: Uint8Array): Promise<void>;
  /** The most body bytes one chunk frame carries on this stream (a longer write is split): how much a target may gather per write. */
  readonly chunkBytes?: number;
}

/** Something a client serves: its registry, or a forwarded URL. @internal */
export interface ScrapeTarget {
  /** Port announced (0: any). */
  port: number;
  /** Path prefix announced ("" = "/metrics" exactly). */
  path: string;
  labels: Record<string, string>;
  /** Serves one scrape; throws a {@link TargetError} naming the cause when it fails. */
  serve(req: ServeRequest, out: ResultWriter): Promise<void>;
}

/** A failed scrape with its reason, as it travels to the server. */
export class TargetError extends Error {
  readonly reason: ScrapeErrorReason;
  constructor(reason: ScrapeErrorReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TargetError";
    this.reason = reason;
  }
}

export { ScrapeErrorReason };
