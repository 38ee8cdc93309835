/**
 * The request headers of the fast path: the users' Connect interceptors
 * (credentials and the like) run as connect-es runs them, on a `StreamRequest`
 * with the headers the gRPC transport would send, and the headers they leave
 * are what the HTTP/2 stream is opened with.
 *
 * Header-only interceptors (`bearerToken`, anything that sets or reads
 * `req.header`, or awaits before calling `next`) are what the fast path
 * serves. An interceptor that needs the messages cannot be honoured without
 * Connect's message pipeline, so this reports "use Connect" when any
 * interceptor
 * - replaces or starts iterating the request's messages (`req.message`),
 * - replaces or starts iterating the response's messages (`res.message`)
 *   (an interceptor that keeps `res.message` and iterates it only after its
 *   own `next` has resolved is not seen: it reads an empty stream),
 * - changes the request URL or method, or never calls `next` (its own response).
 * Each is detected on the objects themselves (identity, and a flag set the
 * moment an iterator is asked for), not guessed from the interceptor's code.
 * In that case the interceptors run a second time, in the Connect transport.
 *
 * On the fast path `next` resolves at once, before the stream is open: an
 * interceptor sees the response's headers and trailers empty, and the
 * stream's errors are not thrown through it (they end the attempt as usual).
 *
 * @internal
 */
import { createContextValues, type Interceptor, type StreamRequest, type StreamResponse } from "@connectrpc/connect";
import { createMethodUrl } from "@connectrpc/connect/protocol";
import { requestHeaderWithCompression } from "@connectrpc/connect/protocol-grpc";
import { ScrapeService } from "../../../gen/promproxy/v1/scrape_pb.ts";

const method = ScrapeService.method.scrape;

/** What the request will be opened with: the headers and the signal the interceptors left. */
export interface FastRequest {
  /** The path and query of the method URL. */
  path: string;
  headers: Record<string, string>;
  /** The request's signal, when an interceptor replaced the call's own (e.g. with a deadline of its own). */
  signal: AbortSignal;
}

/** Headers as Node's http2 takes them (names are lower case in Headers). */
function nodeHeaders(h: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  h.forEach((value, key) => {
    out[key] = value;
  });
  return out;
}

/** An empty message stream that records whether anybody asked for its iterator. */
function watchedEmpty<T>(): { iterable: AsyncIterable<T>; touched: () => boolean } {
  let touched = false;
  return {
    iterable: {
      [Symbol.asyncIterator]() {
        touched = true;
        return { next: () => Promise.resolve({ done: true as const, value: undefined }) };
      },
    },
    touched: () => touched,
  };
}

/**
 * Runs `interceptors` for one Scrape stream to `baseUrl`. Returns the request
 * to open, or undefined when an interceptor needs Connect's message
 * pipeline (see above). What an interceptor throws is thrown.
 */
export async function fastRequest(interceptors: readonly Interceptor[], baseUrl: string, signal: AbortSignal): Promise<FastRequest | undefined> {
  const url = createMethodUrl(baseUrl, method);
  const header = requestHeaderWithCompression(true, undefined, undefined, [], null);
  const path = new URL(url).pathname;
  if (interceptors.length === 0) return { path, headers: nodeHeaders(header), signal };

  const requestMessages = watchedEmpty<never>();
  const responseMessages = watchedEmpty<never>();
  let seen: StreamRequest | undefined;
  let response: StreamResponse | undefined;
  const req: StreamRequest = {
    stream: true,
    service: ScrapeService,
    method,
    requestMethod: "POST",
    url,
    header,
    contextValues: createContextValues(),
    message: requestMessages.iterable,
    signal,
  } as unknown as StreamRequest;
  let next = (async (r: StreamRequest): Promise<StreamResponse> => {
    seen = r;
    response = {
      stream: true,
      service: ScrapeService,
      method,
      header: new Headers(),
      trailer: new Headers(),
      message: responseMessages.iterable,
    } as unknown as StreamResponse;
    return response;
  }) as (r: StreamRequest) => Promise<StreamResponse>;
  for (const i of [...interceptors].reverse()) next = i(next as never) as unknown as typeof next;
  const result = await next(req);

  if (!seen || !response || result !== response && result.message !== responseMessages.iterable) return undefined;
  if (seen.message !== requestMessages.iterable || requestMessages.touched() || responseMessages.touched()) return undefined;
  if (seen.url !== url || seen.requestMethod !== "POST" || !seen.stream) return undefined;
  return { path, headers: nodeHeaders(seen.header), signal: seen.signal };
}
