import { version } from "../../shared/version.ts";
import { StatusLineOverflowError } from "./exporter-head.ts";
import { exporterMaxHeaderSize } from "./exporter-pool.ts";
import { tlsRecord } from "./tls-mismatch.ts";
import { ScrapeErrorReason, TargetError, type ServeRequest } from "./target.ts";

/**
 * The headers sent to the exporter: Prometheus' Accept, Accept-Encoding and
 * User-Agent, the scrape's budget as X-Prometheus-Scrape-Timeout-Seconds, and
 * the target's own authorization. Nothing else of the scrape passes.
 *
 * @internal
 */
export function exporterHeaders(req: ServeRequest, budgetMs: number, authorization: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {
    "user-agent": req.headers["user-agent"] ?? `promproxy-forwarder/${version}`,
    "x-prometheus-scrape-timeout-seconds": String(+(budgetMs / 1000).toFixed(3)),
  };
  if (req.headers["accept"] !== undefined) headers["accept"] = req.headers["accept"];
  if (req.headers["accept-encoding"] !== undefined) headers["accept-encoding"] = req.headers["accept-encoding"];
  if (authorization) headers["authorization"] = authorization;
  return headers;
}

const closedCodes = new Set(["UND_ERR_SOCKET", "ECONNRESET", "EPIPE"]);

/**
 * Whether a request that failed before any response head is worth one fresh
 * try: the connection was closed under it, and it was a kept-alive one (the
 * exporter closed it while idle, just as the request went out). `keptFree`
 * says a kept connection was free when the request was dispatched; undici's
 * socket errors also tell how many bytes the connection had read, none on a
 * fresh one. A GET has no effect to repeat.
 *
 * @internal
 */
export function closedUnderKeptRequest(e: unknown, keptFree: boolean): boolean {
  const err = e as { code?: unknown; message?: unknown; socket?: { bytesRead?: unknown } } | null;
  if (!keptFree || typeof err?.code !== "string" || !closedCodes.has(err.code) || err.message === "bad response") return false;
  return err.socket?.bytesRead !== 0;
}

/**
 * Whether a failure after the head means the exporter's connection ended
 * before the answer did (undici: a socket error, or a body shorter than its
 * Content-Length).
 *
 * @internal
 */
export function cutOffError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && (closedCodes.has(code) || code === "UND_ERR_RES_CONTENT_LENGTH_MISMATCH");
}

/**
 * The llhttp code of an undici HTTPParserError that has none (undici 8 leaves
 * it out): its message carries llhttp's reason, "Expected HTTP/" being the
 * status line's HPE_INVALID_CONSTANT; any other reason is an unnamed "HPE_".
 */
function parserCode(err: { name?: unknown } | null, msg: string): string {
  if (err?.name !== "HTTPParserError") return "";
  return /\(Expected HTTP\//.test(msg) ? "HPE_INVALID_CONSTANT" : "HPE_";
}

const tlsCodes = /^(ERR_TLS_|ERR_SSL_|EPROTO$|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|UNABLE_TO_|HOSTNAME_MISMATCH$)/;

/**
 * Turns a socket-level error (Node's codes, and undici's own: UND_ERR_SOCKET,
 * UND_ERR_HEADERS_OVERFLOW, HTTPParserError's HPE_ codes ...) into a
 * TargetError that names the target and the cause.
 *
 * @internal
 */
export function describe(e: unknown, where: string): TargetError {
  const err = e as NodeJS.ErrnoException & { hostname?: string; reason?: unknown; library?: unknown };
  const msg = e instanceof Error ? e.message : String(e);
  const code = typeof err?.code === "string" ? err.code : parserCode(err, msg);
  const with_ = (text: string) => new TargetError(ScrapeErrorReason.UNREACHABLE, `target ${where}: ${text}`, { cause: e });
  switch (code) {
    case "ECONNREFUSED":
      return with_(`connection refused (${msg})`);
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_NONAME":
    case "EAI_FAIL":
      return with_(`DNS lookup failed (${code} ${err.hostname ?? ""})`.replace(" )", ")"));
    case "ECONNRESET":
    case "EPIPE":
      return with_(`connection reset by the exporter (${code})`);
    case "UND_ERR_SOCKET":
      // undici's word for an unasked 100 Continue (a GET expects none); otherwise a connection closed under the request.
      if (msg === "bad response") return with_(`answered malformed HTTP: an interim 100 Continue the request did not ask for (${code})`);
      if (msg === "bad upgrade") return with_(`answered 101 Switching Protocols, an upgrade a GET does not ask for (${code})`);
      return with_(`connection reset by the exporter (${msg}, ${code})`);
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "ETIMEDOUT":
    case "EADDRNOTAVAIL":
    case "UND_ERR_CONNECT_TIMEOUT":
      return with_(`unreachable (${msg})`);
    case "UND_ERR_HEADERS_TIMEOUT":
    case "UND_ERR_BODY_TIMEOUT":
      return new TargetError(ScrapeErrorReason.TIMEOUT, `target ${where} did not answer in time (${code})`, { cause: e });
    case "HPE_INVALID_CONSTANT":
    case "HPE_INVALID_VERSION":
      if (tlsRecord((err as { data?: unknown }).data)) return with_(`answered with TLS, not HTTP: use https:// in the target URL (${code})`);
      return with_(`answered something that is not HTTP (${code}); is it an https:// exporter?`);
    case "UND_ERR_RES_CONTENT_LENGTH_MISMATCH":
      return with_(`answered a body whose length differs from its Content-Length, or a Content-Length that is not one number (${code})`);
    case "HPE_HEADER_OVERFLOW":
    case "UND_ERR_HEADERS_OVERFLOW":
      if (err instanceof StatusLineOverflowError) {
        const { statusLineBytes: n } = err;
        return with_(`answered with a response head larger than ${err.limit} bytes (its status line ${n === undefined ? "alone is longer" : `is ${n} bytes of it`}) (${code})`);
      }
      return with_(`answered with a response head larger than ${exporterMaxHeaderSize} bytes (${code})`);
    case "PROMPROXY_INTERIM_FLOOD":
    case "PROMPROXY_FRAMING_FLOOD":
      // What the exchange may read besides the body (exporter-non-body.ts), reported as a body over maxResponseBytes is.
      return new TargetError(ScrapeErrorReason.TOO_LARGE, `target ${where} sent ${msg}, the maximum`, { cause: e });
    case "ERR_SSL_WRONG_VERSION_NUMBER":
    case "ERR_SSL_PACKET_LENGTH_TOO_LONG":
      // OpenSSL's words for a first answer that is not a TLS record.
      return with_(`answered something that is not TLS (a plain HTTP exporter?): use http:// in the target URL (${code})`);
    default:
      // OpenSSL's messages carry its error stack over several lines; its reason is the one line that says what failed.
      if (tlsCodes.test(code)) return with_(`TLS handshake failed: ${typeof err.reason === "string" && err.library !== undefined ? err.reason : msg.split("\n")[0]} (${code})`);
      // undici words llhttp's reason as "Response does not match the HTTP/1.1 protocol (REASON)".
      if (code === "HPE_") return with_(`answered malformed HTTP: ${/\((.*)\)$/.exec(msg)?.[1] ?? msg}`);
      if (code.startsWith("HPE_")) return with_(`answered malformed HTTP: ${/\((.*)\)$/.exec(msg)?.[1] ?? msg.replace(/^Parse Error: /, "")} (${code})`);
      return with_(code ? `${msg} (${code})` : msg);
  }
}
