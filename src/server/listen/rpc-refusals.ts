/**
 * One-line bodies for the answers Connect's Node adapter gives with a status
 * and nothing else: 505 (the bidirectional Scrape stream over HTTP/1.1), 405
 * (a method other than POST), 415 (a content type no RPC protocol takes), 404
 * (a method the service does not have). The status stays; a client (curl, a
 * misconfigured load balancer) learns why.
 *
 * @internal
 */
import type * as http from "node:http";
import type * as http2 from "node:http2";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

/** The line for a bodiless RPC answer, or undefined for a status Connect answers with a body of its own. */
function explain(status: number, req: Request, rpc: string): { message: string; headers?: Record<string, string> } | undefined {
  const path = JSON.stringify((req.url ?? "").slice(0, 200));
  switch (status) {
    case 505:
      return { message: `${path} is a bidirectional stream: it needs HTTP/2 (gRPC, gRPC-web or Connect over h2), this request came over HTTP/${req.httpVersion}` };
    case 405:
      return { message: `method ${req.method} not allowed on ${path}: RPCs are POST`, headers: { allow: "POST" } };
    case 415: {
      const type = JSON.stringify(String(req.headers["content-type"] ?? "").slice(0, 100));
      return { message: `content-type ${type} is not an RPC protocol's: use application/grpc, application/grpc-web or application/connect+proto (or their +json forms)` };
    }
    case 404:
      return { message: `no RPC ${path}: this server serves ${rpc}` };
    default:
      return undefined;
  }
}

/** Whether a writeHead call carries a content-type (then Connect writes a body of its own). */
function hasContentType(args: unknown[]): boolean {
  const headers = args.find((a) => a !== null && typeof a === "object") as Record<string, unknown> | undefined;
  return headers !== undefined && Object.keys(headers).some((k) => k.toLowerCase() === "content-type");
}

/**
 * Makes Connect's bodiless refusals on `res` carry a `promproxy: ` line: its
 * `writeHead` for 404, 405, 415 or 505 without a content type writes the line
 * too (Connect's `end()` then ends it). Other answers pass unchanged.
 */
export function explainRpcRefusals(req: Request, res: Response, rpc: string): void {
  const writeHead = res.writeHead as (...a: unknown[]) => Response;
  res.writeHead = function (this: Response, status: number, ...rest: unknown[]) {
    res.writeHead = writeHead as never;
    const e = hasContentType(rest) ? undefined : explain(status, req, rpc);
    if (!e) return writeHead.call(this, status, ...rest);
    const given = (rest.find((a) => a !== null && typeof a === "object") ?? {}) as Record<string, string>;
    const body = `promproxy: ${e.message}\n`;
    writeHead.call(this, status, { ...given, ...e.headers, "content-type": "text/plain; charset=utf-8", "content-length": String(Buffer.byteLength(body)) });
    (res as http.ServerResponse).write(body);
    return this;
  } as never;
}
