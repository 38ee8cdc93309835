import { createClient as createRpcClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { ScrapeService, type ServerFrame } from "../../gen/promproxy/v1/scrape_pb.ts";
import { runFastStream } from "./grpc-fast/fast-stream.ts";
import { fastRequest } from "./grpc-fast/request-headers.ts";
import type { ResolvedClientOptions } from "./options.ts";
import type { OutQueue } from "./out-queue.ts";
import { sleep } from "../shared/sleep.ts";

/** What running the stream on either transport needs. */
export interface StreamSetup {
  options: ResolvedClientOptions;
  base: URL;
  sessionManager: Http2SessionManager;
  out: OutQueue;
  signal: AbortSignal;
  readLimit: number;
  onFrame(frame: ServerFrame): void;
  /** Milliseconds to stop reading after reading what costs `cost` frames (0: read on). */
  pace(cost: number): number;
}

/**
 * Runs the stream until the server ends it (resolves) or it fails (throws):
 * on our own gRPC framing (grpc-fast/) unless the options ask for Connect
 * (`transport: "connect"`, `protocol: "connect"`) or an interceptor needs
 * Connect's message pipeline; both read and write on the same guarded session.
 *
 * @internal
 */
export async function runStream(s: StreamSetup): Promise<void> {
  const { options, sessionManager, out, signal, readLimit, onFrame, pace } = s;
  const interceptors = options.interceptors;
  if (options.protocol !== "connect" && options.transport !== "connect") {
    const request = await fastRequest(interceptors, s.base.toString(), signal);
    if (request) return runFastStream({ sessionManager, request, signal, out, readLimit, entries: { maxReplicas: options.maxReplicas }, onFrame, pace });
    s.options.log.debug("an interceptor reads or replaces the stream's messages: this stream uses the Connect transport");
  }
  const transportOptions = {
    baseUrl: s.base.toString(),
    httpVersion: "2" as const,
    sessionManager,
    interceptors,
    // The server is not trusted: a frame is refused at its length prefix when over the read limit (never
    // buffered), no compression is accepted (a compressed frame would inflate past any limit first), and unknown
    // fields are not kept (a welcome packed with them would live as long as its stream).
    readMaxBytes: readLimit, acceptCompression: [], binaryOptions: { readUnknownFields: false },
  };
  const transport = options.protocol === "connect" ? createConnectTransport(transportOptions) : createGrpcTransport(transportOptions);
  for await (const frame of createRpcClient(ScrapeService, transport).scrape(out, { signal })) {
    onFrame(frame);
    // Charged as read (h2-connection.ts); waits while in debt or answers pile up. Not pulling holds the server.
    for (let wait = pace(0); wait > 0 && !signal.aborted; wait = pace(0)) await sleep(wait, signal);
  }
}
