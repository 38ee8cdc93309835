import * as http from "node:http";
import * as https from "node:https";
import { version } from "../../shared/version.ts";
import { ScrapeErrorReason, TargetError, type ServeRequest } from "./target.ts";

/** Where a target's requests go: the exporter's origin and the keep-alive agents for it. @internal */
export interface ExporterOrigin {
  base: URL;
  httpAgent: http.Agent;
  httpsAgent: https.Agent;
}

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

/**
 * Sends `GET path` to the exporter; resolves with its response head, rejects
 * with the socket error (marked `reusedSocket` when a kept-alive connection
 * failed) or when `signal` aborts.
 *
 * @internal
 */
export function exporterRequest(
  origin: ExporterOrigin,
  secure: boolean,
  path: string,
  headers: Record<string, string>,
  signal: AbortSignal,
): Promise<http.IncomingMessage> {
  const { base } = origin;
  return new Promise((resolve, reject) => {
    const options: http.RequestOptions = {
      protocol: secure ? "https:" : "http:",
      hostname: base.hostname.startsWith("[") ? base.hostname.slice(1, -1) : base.hostname,
      port: base.port || (secure ? 443 : 80),
      method: "GET",
      path,
      headers: { ...headers, host: base.host },
      agent: secure ? origin.httpsAgent : origin.httpAgent,
    };
    const r = secure ? https.request(options) : http.request(options);
    const onAbort = () => r.destroy(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
    if (signal.aborted) onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    r.once("response", (res) => {
      signal.removeEventListener("abort", onAbort);
      resolve(res);
    });
    r.once("error", (e: Error & { reusedSocket?: boolean }) => {
      signal.removeEventListener("abort", onAbort);
      e.reusedSocket = r.reusedSocket;
      reject(e);
    });
    r.end();
  });
}

const tlsCodes = /^(ERR_TLS_|ERR_SSL_|EPROTO$|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|UNABLE_TO_|HOSTNAME_MISMATCH$)/;

/** Turns a socket-level error into a TargetError that names the target and the cause. @internal */
export function describe(e: unknown, where: string): TargetError {
  const err = e as NodeJS.ErrnoException & { hostname?: string };
  const code = typeof err?.code === "string" ? err.code : "";
  const msg = e instanceof Error ? e.message : String(e);
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
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "ETIMEDOUT":
    case "EADDRNOTAVAIL":
      return with_(`unreachable (${msg})`);
    case "HPE_INVALID_CONSTANT":
    case "HPE_INVALID_VERSION":
      return with_(`answered something that is not HTTP (${code}); is it an https:// exporter?`);
    case "HPE_HEADER_OVERFLOW":
      return with_(`answered with a response head larger than ${http.maxHeaderSize} bytes (${code})`);
    default:
      if (tlsCodes.test(code)) return with_(`TLS handshake failed: ${msg} (${code})`);
      if (code.startsWith("HPE_")) return with_(`answered malformed HTTP: ${msg.replace(/^Parse Error: /, "")} (${code})`);
      return with_(code ? `${msg} (${code})` : msg);
  }
}
