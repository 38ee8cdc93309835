import type * as http2 from "node:http2";
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import {
  type ContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
} from "@connectrpc/connect";
import { ScrapeService, type ClientFrameSchema, type ServerFrameSchema } from "../../../gen/promproxy/v1/scrape_pb.ts";

type Method = typeof ScrapeService.method.scrape;
type ClientMessages = AsyncIterable<MessageShape<typeof ClientFrameSchema>>;
type ServerMessages = AsyncIterable<MessageInitShape<typeof ServerFrameSchema>>;

/**
 * What the server's interceptor chain made of one call.
 * - `fast`: every interceptor passed the request's message stream through
 *   untouched and returned the response's as it got it (bearerAuth, mtlsAuth,
 *   anything that reads headers or context values): the fast path reads and
 *   writes the stream itself.
 * - `wrapped`: some interceptor replaced or read the request's messages, or
 *   replaced the response's: the call then keeps Connect's contract (async
 *   iterables of messages through the chain, see {@link CallCore.wrapped}).
 *
 * @internal
 */
export type CallOutcome =
  | { kind: "fast"; response: StreamResponse<typeof ClientFrameSchema, typeof ServerFrameSchema>; request: StreamRequest<typeof ClientFrameSchema, typeof ServerFrameSchema> }
  | { kind: "wrapped"; response: StreamResponse<typeof ClientFrameSchema, typeof ServerFrameSchema> };

/** The inside of the chain: what runs where Connect would call the handler. */
export interface CallCore {
  /**
   * The handler on Connect's contract, for a chain that wraps messages:
   * takes the (wrapped) request messages, returns the response messages.
   */
  wrapped(messages: ClientMessages, req: StreamRequest): ServerMessages;
  /** The request messages as the fast path would feed them if a chain reads them after all. */
  messages(): ClientMessages;
}

/**
 * The request headers as Connect gives them to interceptors (pseudo-headers
 * left out, repeated headers appended).
 */
export function webHeaders(headers: http2.IncomingHttpHeaders): Headers {
  const h = new Headers();
  for (const k in headers) {
    if (k.charCodeAt(0) === 58 /* ":" */) continue;
    const v = headers[k];
    if (v === undefined) continue;
    if (typeof v === "string") h.append(k, v);
    else for (const e of v) h.append(k, e);
  }
  return h;
}

/**
 * Runs the server's interceptors on a Connect `StreamRequest` built from the
 * stream's headers and context values, exactly as Connect would (same
 * request fields, same order), and tells whether the chain let the fast path
 * own the messages.
 *
 * The detection is by identity, and sound: the request carries a message
 * iterable that only the chain can reach, and the core learns if any
 * interceptor asked it for an iterator (read it) or passed a different one
 * (wrapped it); the response carries a sentinel iterable, and any
 * interceptor that wraps or replaces it returns something else. An
 * interceptor that only reads headers, context values or the signal (every
 * auth interceptor) changes neither. Errors the chain throws reach the caller
 * (a refusal: Trailers-Only).
 *
 * @internal
 */
export async function runChain(
  headers: http2.IncomingHttpHeaders,
  contextValues: ContextValues,
  signal: AbortSignal,
  interceptors: Interceptor[],
  core: CallCore,
): Promise<CallOutcome> {
  let touched = false;
  const input: ClientMessages = {
    [Symbol.asyncIterator]() {
      touched = true;
      return core.messages()[Symbol.asyncIterator]();
    },
  };
  /** The request as it reached the core, and the handler's output once it runs on Connect's contract. */
  let seen: StreamRequest<typeof ClientFrameSchema, typeof ServerFrameSchema> | undefined;
  let wrapped: ServerMessages | undefined;
  const serveWrapped = (req: StreamRequest<typeof ClientFrameSchema, typeof ServerFrameSchema>) => (wrapped ??= core.wrapped(req.message, req));
  // What the core answers with: an interceptor that wraps it reads it later, and then gets the real response stream.
  const sentinel: ServerMessages = {
    [Symbol.asyncIterator]() {
      return serveWrapped(seen!)[Symbol.asyncIterator]();
    },
  };
  const method: Method = ScrapeService.method.scrape;
  const inner = async (req: StreamRequest): Promise<StreamResponse> => {
    seen = req as StreamRequest<typeof ClientFrameSchema, typeof ServerFrameSchema>;
    return {
      stream: true,
      service: ScrapeService,
      method,
      header: new Headers(),
      trailer: new Headers(),
      message: touched || seen.message !== input ? serveWrapped(seen) : sentinel,
    } as StreamResponse;
  };
  // As Connect applies them: the first interceptor is the outermost.
  let next = inner as (req: StreamRequest) => Promise<StreamResponse>;
  for (let i = interceptors.length - 1; i >= 0; i--) next = interceptors[i]!(next as never) as typeof next;
  const authority = headers[":authority"] ?? headers.host ?? "localhost";
  const request: StreamRequest = {
    stream: true,
    service: ScrapeService,
    method,
    requestMethod: "POST",
    url: `${headers[":scheme"] ?? "http"}://${authority}${headers[":path"] ?? ""}`,
    signal,
    header: webHeaders(headers),
    contextValues,
    message: input,
  } as StreamRequest;
  const response = (await next(request)) as StreamResponse<typeof ClientFrameSchema, typeof ServerFrameSchema>;
  if (!wrapped && !touched && seen?.message === input && response.message === sentinel) return { kind: "fast", response, request: seen };
  return { kind: "wrapped", response };
}
