/**
 * One-line answers for HTTP/1.1 requests the port cannot take: Node's parse
 * errors (by `err.code`, so that a client learns which rule it broke), a
 * missing or repeated Host header (RFC 9112 section 3.2: 400) and an
 * expectation other than 100-continue (417).
 *
 * @internal
 */
import type * as http from "node:http";

/** The body of the 405 for CONNECT (HTTP/1.1 and HTTP/2). */
export const connectRefusal = "promproxy: CONNECT is not supported: this server only proxies GET requests to connected clients\n";

/** A parse error's status line and its one-line message (without the `promproxy: ` prefix). */
export interface ParseErrorAnswer {
  status: number;
  text: string;
  message: string;
}

/** The message for an llhttp error code; `reason` is Node's own wording, which tells cases of one code apart. */
function badRequestMessage(code: string | undefined, reason: string): string {
  switch (code) {
    case "HPE_INVALID_METHOD":
      return "not an HTTP method at the start of the request (another protocol, or TLS, on this cleartext port?)";
    case "HPE_INVALID_URL":
      return "invalid character in the request target (URI)";
    case "HPE_INVALID_CONSTANT":
      return "the request line is not METHOD TARGET HTTP/1.1 (a space in the target?)";
    case "HPE_INVALID_VERSION":
      return /CRLF/i.test(reason) ? "lines must end with CRLF" : "invalid HTTP version in the request line (want HTTP/1.1)";
    case "HPE_STRICT":
    case "HPE_LF_EXPECTED":
    case "HPE_CR_EXPECTED":
      return "lines must end with CRLF";
    case "HPE_INVALID_HEADER_TOKEN":
      if (/value/i.test(reason)) return /whitespace/i.test(reason) ? "a header value continued on the next line (obsolete line folding)" : "invalid character in a header value";
      return "invalid header name (a space or a character not allowed in a header name)";
    case "HPE_INVALID_CONTENT_LENGTH":
      return /transfer-encoding/i.test(reason) ? "both Transfer-Encoding and Content-Length" : "Content-Length is not a number";
    case "HPE_UNEXPECTED_CONTENT_LENGTH":
      return "more than one Content-Length, or Content-Length with Transfer-Encoding";
    case "HPE_INVALID_TRANSFER_ENCODING":
      return /content-length/i.test(reason) ? "both Transfer-Encoding and Content-Length" : "Transfer-Encoding must end with chunked";
    case "HPE_INVALID_CHUNK_SIZE":
      return "invalid chunk size in a chunked body";
    default:
      return reason ? reason.toLowerCase() : (code ?? "unknown parse error");
  }
}

/** What to answer a request Node could not parse (`clientError`). */
export function parseErrorAnswer(err: NodeJS.ErrnoException & { reason?: string }): ParseErrorAnswer {
  if (err.code === "HPE_HEADER_OVERFLOW") return { status: 431, text: "Request Header Fields Too Large", message: "request header fields too large" };
  if (err.code === "HPE_URI_TOO_LONG") return { status: 414, text: "URI Too Long", message: "uri too long" };
  if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") return { status: 408, text: "Request Timeout", message: "request timeout" };
  return { status: 400, text: "Bad Request", message: `bad request: ${badRequestMessage(err.code, typeof err.reason === "string" ? err.reason : "")}` };
}

/** The raw bytes of an answer that closes the connection (for a socket no response object owns). */
export function rawAnswer(a: ParseErrorAnswer): string {
  const body = `promproxy: ${a.message}\n`;
  return `HTTP/1.1 ${a.status} ${a.text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/** Why a parsed request's Host header is unacceptable, or undefined: missing (HTTP/1.1) or given more than once. */
export function hostProblem(req: http.IncomingMessage): string | undefined {
  if (req.headers.host === undefined) return req.httpVersionMinor >= 1 ? "bad request: no Host header (HTTP/1.1 requires one)" : undefined;
  let hosts = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === "host" && ++hosts > 1) return "bad request: more than one Host header";
  }
  return undefined;
}

/** Answers `status` with a one-line `promproxy: ` body and closes the connection after it. */
export function answerAndClose(res: http.ServerResponse, status: number, message: string) {
  const body = `promproxy: ${message}\n`;
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body), connection: "close" });
  res.end(body);
}

/** Whether an Expect value asks for 100-continue alone (the token, any case, repeated in a list or not). */
export function continueOnly(value: string | undefined): boolean {
  return value !== undefined && value.split(",").every((t) => t.trim().toLowerCase() === "100-continue");
}

/** The one-line answer to an expectation other than 100-continue, the value cut to 64 characters. */
export function unsupportedExpectation(value: string): string {
  const shown = value.length > 64 ? `${value.slice(0, 64)}...` : value;
  return `unsupported expectation ${JSON.stringify(shown)}: only 100-continue is supported`;
}
