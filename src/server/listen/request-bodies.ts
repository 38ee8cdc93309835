/**
 * Bodies on requests that take none. Only the Scrape RPC (HTTP/2: gRPC,
 * Connect) reads a request body; proxied scrapes, `/clients`, the pages,
 * `/metrics`, `/healthz`, 404s and 405s never do. Left alone, Node pulls an
 * unread body off the wire after the answer to keep the connection alive
 * (HTTP/1.1), and nghttp2 takes DATA sent on a stream it has reset and opens
 * the connection's window for more (HTTP/2): 4 connections streaming endless
 * chunked bodies to `GET /clients` made the server read 19 GB in 12 s at
 * 92-97 % CPU (an outside review, round 18a). Here such a body is read up to
 * the listen option `maxRequestBodyBytes` and no further: past it (or
 * announced past it, or of unknown length over HTTP/1.1) the request is
 * answered `413` and its connection closed.
 *
 * @internal
 */
import type * as http from "node:http";
import * as http2 from "node:http2";

/** Default of the listen option `maxRequestBodyBytes` (64 KiB). */
export const maxRequestBodyBytes = 64 * 1024;

/**
 * HTTP/2: how long after its HEADERS a request body on a stream that takes none may take to end (as HTTP/1.1's
 * `requestTimeout` for a whole request); then it is answered 408 and its connection closed.
 */
export const bodyEndWithinMs = 60_000;

/** How long a refusal that closes an HTTP/2 connection may take to go out before the connection closes anyway. */
const closeAnswerWithinMs = 1_000;

/** The one-line refusal of a body past the bound (without the `promproxy: ` prefix). */
export function tooLarge(what: string, max: number): string {
  return `${what} on a request that takes none: at most ${max} bytes are read (listen option maxRequestBodyBytes): closing the connection`;
}

/**
 * HTTP/1.1: why a request's body is refused before a byte of it is read, or undefined. Every HTTP/1.1 request
 * takes none (the Scrape RPC needs HTTP/2): a body of unknown length (Transfer-Encoding) is refused; one of a known
 * length up to `max` is served and Node reads it after the answer (no more than that length), keeping the
 * connection; a longer one is refused. Node's parser already answers Transfer-Encoding with Content-Length 400.
 */
export function h1BodyRefusal(req: http.IncomingMessage, max: number): string | undefined {
  if (req.headers["transfer-encoding"] !== undefined) return tooLarge("a request body of unknown length (Transfer-Encoding)", max);
  const length = Number(req.headers["content-length"] ?? 0);
  return length > max ? tooLarge(`a request body of ${length} bytes`, max) : undefined;
}

/** Answers a refused HTTP/2 request itself (`status` and a one-line body), then closes the connection once it went out. */
function refuseAndClose(stream: http2.ServerHttp2Stream, status: number, message: string): void {
  const session = stream.session;
  // GOAWAY, then the socket closes: its other streams end too (a peer that sends bodies where none is taken).
  const close = () => session?.destroyed || session?.destroy();
  stream.pause(); // nothing more of the body is taken meanwhile
  if (stream.headersSent || stream.destroyed) return void close();
  setTimeout(close, closeAnswerWithinMs).unref(); // a peer that does not take the answer either
  const body = `promproxy: ${message}\n`;
  stream.respond({ ":status": status, "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body), "cache-control": "no-store" });
  stream.end(body, close);
}

/**
 * HTTP/2: holds a stream that takes no body but has one (no END_STREAM on its HEADERS) until its body has ended,
 * reading and dropping it, then hands it on (`pass`: Node's compat layer, then the front). Reset, it would leave
 * nghttp2 taking what the peer sends on it unseen; read, every byte is counted. A body past `max` bytes (or
 * announced past it), or not ended within {@link bodyEndWithinMs}, is answered 413 (408) here and its connection
 * closed (GOAWAY): a peer that sends on regardless meets a closed socket. Returns false when the stream has no body.
 */
export function holdUnwantedBody(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, max: number, pass: () => void): boolean {
  if (flags & http2.constants.NGHTTP2_FLAG_END_STREAM || stream.readableEnded) return false;
  const announced = Number(headers["content-length"] ?? 0);
  if (announced > max) {
    refuseAndClose(stream, 413, tooLarge(`a request body of ${announced} bytes`, max));
    return true;
  }
  stream.on("error", () => {}); // its session may be destroyed before Node's compat layer (which listens) takes it
  let read = 0;
  let done = false;
  const finish = (then: () => void) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    stream.off("data", onData);
    then();
  };
  const onData = (chunk: Buffer) => {
    read += chunk.length;
    if (read > max) finish(() => refuseAndClose(stream, 413, tooLarge(`a request body of more than ${max} bytes`, max)));
  };
  const timer = setTimeout(() => finish(() => refuseAndClose(stream, 408, `the request body did not end within ${bodyEndWithinMs / 1000}s: closing the connection`)), bodyEndWithinMs);
  timer.unref();
  stream.on("data", onData);
  stream.once("end", () => finish(pass));
  stream.once("close", () => finish(() => {}));
  return true;
}
