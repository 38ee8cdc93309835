/**
 * The fast path's errors, worded and coded as connect-es words and codes
 * them for the same event (so the fleet's retry decisions and the log lines
 * do not depend on the transport): HTTP status and content type of the
 * response, `grpc-status`/`grpc-message` in Trailers-Only headers or
 * trailers, RST_STREAM codes, and Node.js stream errors.
 *
 * The RST_STREAM and Node.js mappings follow connect-node 2.2's
 * `node-error.ts` (Apache-2.0), which it does not export.
 *
 * @internal
 */
import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, findTrailerError, parseContentType } from "@connectrpc/connect/protocol-grpc";

/** Node's HTTP/2 headers as web Headers (as connect-es hands them to errors' metadata). */
export function webHeaders(h: http2.IncomingHttpHeaders | undefined): Headers {
  const out = new Headers();
  if (!h) return out;
  for (const k of Object.keys(h)) {
    if (k.startsWith(":")) continue;
    const v = h[k];
    if (Array.isArray(v)) for (const x of v) out.append(k, x);
    else if (v !== undefined) out.set(k, String(v));
  }
  return out;
}

/**
 * The error in a status carried by headers or trailers, or undefined for
 * OK or none. A `grpc-message` that is not valid percent-encoding is kept as
 * it came, and an unreadable `grpc-status-details-bin` falls back to the
 * status fields: a garbled status is still the server's status.
 */
export function statusError(h: Headers): ConnectError | undefined {
  try {
    return findTrailerError(h);
  } catch {
    const status = h.get("grpc-status");
    if (status === null || status === "0") return undefined;
    const code = /^\d{1,2}$/.test(status) && Number(status) in Code ? (Number(status) as Code) : undefined;
    if (code === undefined) return new ConnectError(`invalid grpc-status: ${status.slice(0, 40)}`, Code.Internal, h);
    return new ConnectError(h.get("grpc-message") ?? "", code, h);
  }
}

/**
 * Checks the response headers. Returns whether they carry the status
 * (Trailers-Only: no trailers follow), or throws the ConnectError the
 * response means.
 */
export function checkResponse(status: number, h: Headers): { foundStatus: boolean } {
  if (status !== 200) throw new ConnectError(`HTTP ${status}`, codeFromHttpStatus(status), h);
  const type = h.get("content-type");
  const parsed = parseContentType(type);
  if (!parsed) throw new ConnectError(`unsupported content type ${type}`, Code.Unknown);
  const encoding = h.get("grpc-encoding");
  if (encoding !== null && encoding.toLowerCase() !== "identity") {
    throw new ConnectError(`the server sent compressed frames (${encoding.slice(0, 40)}); this client accepts none`, Code.Internal, h);
  }
  const error = statusError(h);
  if (error) throw error;
  if (!parsed.binary) throw new ConnectError(`unsupported content type ${type}: this client reads protobuf only`, Code.Internal);
  return { foundStatus: h.has("grpc-status") };
}

/**
 * The end of a response: its trailers' status (or the headers' one), or a
 * missing status. `connectionLost`: the stream ended because its connection
 * closed (a server killed, a network cut), not with the server's END_STREAM;
 * a status missing then is said as such, not as the server's protocol error.
 */
export function checkTrailers(trailers: Headers, header: Headers, connectionLost = false): ConnectError | undefined {
  const error = statusError(trailers);
  if (error) {
    header.forEach((value, key) => error.metadata.append(key, value));
    return error;
  }
  if (!header.has("grpc-status") && !trailers.has("grpc-status")) {
    return connectionLost ? closedBeforeStatus() : new ConnectError("protocol error: missing status", Code.Internal);
  }
  return undefined;
}

/**
 * A stream whose connection closed before the server sent its status (or, `noHeaders`, anything at all: what a
 * TLS server says to a client dialling it with http://, which src/client/transport-words.ts probes for):
 * Unavailable, as a connection lost is.
 */
export function closedBeforeStatus(noHeaders = false): ConnectError {
  return new ConnectError(`the connection closed before the server sent ${noHeaders ? "response headers" : "a status"}`, Code.Unavailable);
}

const h2CodeNames = [
  "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR",
  "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
];
/** An HTTP/2 error code's name (RFC 9113 section 7), or its number in hex for a code HTTP/2 does not define. */
export function h2CodeName(code: number): string {
  return h2CodeNames[code] ?? `0x${code.toString(16)}`;
}

const h2Codes: Record<number, Code> = {
  1: Code.Internal, 2: Code.Internal, 3: Code.Internal, 4: Code.Internal, 6: Code.Internal, 9: Code.Internal, 10: Code.Internal,
  7: Code.Unavailable, 8: Code.Canceled, 11: Code.ResourceExhausted, 12: Code.PermissionDenied, 13: Code.PermissionDenied,
};

/** The error a stream closed with RST_STREAM `rstCode` ends with; undefined for NO_ERROR and STREAM_CLOSED. */
export function errorFromRstCode(rstCode: number | undefined): ConnectError | undefined {
  const code = rstCode === undefined ? undefined : h2Codes[rstCode];
  if (code === undefined || rstCode === undefined) return undefined;
  return new ConnectError(`http/2 stream closed with error code ${h2CodeNames[rstCode]} (0x${rstCode.toString(16)})`, code);
}

/** A Node.js stream or session error as a ConnectError, coded as connect-node codes it. */
export function errorFromNode(reason: unknown): ConnectError {
  if (reason instanceof ConnectError) return reason;
  const codes = new Set<string>();
  const seen: unknown[] = [];
  for (let r = reason; r instanceof Error && !seen.includes(r); r = (r as { cause?: unknown }).cause) {
    seen.push(r);
    const c = (r as { code?: unknown }).code;
    if (typeof c === "string") codes.add(c);
  }
  let code = Code.Internal;
  if (codes.has("ERR_STREAM_WRITE_AFTER_END") || codes.has("ERR_STREAM_DESTROYED") || codes.has("ERR_HTTP2_INVALID_STREAM") || codes.has("ECONNRESET")) {
    code = Code.Aborted;
  } else if (codes.has("ETIMEDOUT") || codes.has("ENOTFOUND") || codes.has("EAI_AGAIN") || codes.has("ECONNREFUSED")) {
    code = Code.Unavailable;
  }
  const message = reason instanceof Error ? reason.message : "";
  if (brokenHttp2.test(message)) return new ConnectError(`the server broke HTTP/2: ${message}`, code, undefined, undefined, reason);
  const e = ConnectError.from(reason, code);
  if (e !== reason) e.cause = reason;
  return e;
}

/** nghttp2's words for a server that broke the protocol (a session error), said as the server's doing in the reason a stream ended. */
const brokenHttp2 = /^(Protocol error|Flooding was detected|Too many invalid HTTP\/2 frames|Too many CONTINUATION frames)/;
