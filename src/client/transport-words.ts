/**
 * Transport failures in transport words. OpenSSL's "wrong version number",
 * HTTP/2's "stream closed with error code CANCEL" and nghttp2's "Protocol
 * error" say what broke, not what the user did: an https:// URL for a
 * cleartext server, an http:// URL for a TLS one, a port that is no promproxy
 * server. The error's cause chain tells some cases apart; for the others one
 * small probe of the port (a few bytes, two seconds at most) looks at what
 * answers there.
 *
 * @internal
 */
import { Code, ConnectError } from "@connectrpc/connect";
import * as net from "node:net";
import { speaksTls } from "../shared/tls-probe.ts";

const probeTimeoutMs = 2_000;
/** The HTTP/2 client preface: a promproxy server answers it with SETTINGS, an HTTP/1.1 server with "HTTP/1.1 400". */
const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * What answers on a port: TLS, HTTP/1.1, cleartext HTTP/2, nothing we can
 * name, or a promproxy server refusing the connection (its one-line 503 at
 * accept time, e.g. over its connection limits) with its reason.
 */
export type PortKind = "tls" | "http1" | "h2" | "unknown" | { refused: string };
/** Bytes of an HTTP/1.1 answer the probe reads at most (a promproxy refusal is one short line). */
const maxAnswerBytes = 4096;

/** The `code`s and messages along an error's cause chain (bounded: a cause chain may loop). */
function chain(e: unknown): { codes: string[]; text: string } {
  const codes: string[] = [];
  let text = "";
  for (let x = e, depth = 0; x && typeof x === "object" && depth < 8; x = (x as { cause?: unknown }).cause, depth++) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    text += ` ${String((x as { message?: unknown }).message ?? "")}`;
  }
  return { codes, text };
}

/** `host:port` of a server URL, with its default port. */
export function hostPort(url: URL): string {
  return `${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}`;
}

/** Words the error alone gives (no probe), or undefined. */
export function wordsOf(error: unknown, url: URL): string | undefined {
  const { codes, text } = chain(error);
  const has = (c: string) => codes.includes(c);
  const where = hostPort(url);
  if (has("ECONNREFUSED")) return `nothing listens on ${where} (connection refused): is the server running, and is the port right?`;
  if (has("ENOTFOUND") || has("EAI_AGAIN")) return `cannot resolve the server's name ${url.hostname} (${codes.find((c) => c.startsWith("E"))})`;
  if (has("EHOSTUNREACH") || has("ENETUNREACH") || has("ETIMEDOUT")) return `${where} cannot be reached (${codes.find((c) => c.startsWith("E"))}): a firewall, or the wrong address?`;
  const untrusted = ["DEPTH_ZERO_SELF_SIGNED_CERT", "SELF_SIGNED_CERT_IN_CHAIN", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"];
  const u = codes.find((c) => untrusted.includes(c));
  if (u) return `the server's certificate is not trusted (${u}): give the CA that signed it (option tls, --server-ca-file)`;
  if (has("CERT_HAS_EXPIRED")) return "the server's certificate has expired";
  if (has("ERR_TLS_CERT_ALTNAME_INVALID")) return `the server's certificate is not for ${url.hostname} (ERR_TLS_CERT_ALTNAME_INVALID)`;
  if (url.protocol === "https:" && /wrong version number|http request|packet length too long/i.test(text)) return "the server is not TLS: use http://";
  return undefined;
}

/** Whether the error could be a wrong scheme or a port that is no promproxy server: worth a probe. */
export function worthProbing(error: unknown, url: URL): boolean {
  const { codes, text } = chain(error);
  if (url.protocol === "https:") return /wrong version number|http request|packet length too long/i.test(text);
  return codes.includes("ERR_HTTP2_ERROR") || codes.includes("ECONNRESET") || /error code CANCEL|Protocol error|without response headers|before the server sent response headers|socket hang up|Premature close|session closed/i.test(text);
}

/** Words for a probed port, or undefined when the probe found nothing more to say. */
export function probedWords(kind: PortKind, url: URL): string | undefined {
  if (typeof kind === "object") return `${hostPort(url)} refused the connection: ${kind.refused}`;
  if (kind === "http1") return `${hostPort(url)} is not a promproxy server (it answered HTTP/1.1)`;
  if (url.protocol === "https:") return kind === "h2" ? "the server is not TLS: use http://" : undefined;
  return kind === "tls" ? "the server speaks TLS: use https://" : undefined;
}

/**
 * A failed attempt in words, and the Connect code the error then carries when
 * the words know a truer one than the transport's.
 */
export interface FailureWords {
  text: string;
  code?: Code;
}

/**
 * A probed port's words as a failure's: a server refusing the connection
 * (over its connection limits) is `Unavailable`, retried later, not the
 * `Internal` of the HTTP/2 error the refusal caused. Undefined as for
 * {@link probedWords}.
 */
export function probedFailure(kind: PortKind, url: URL): FailureWords | undefined {
  const text = probedWords(kind, url);
  if (text === undefined) return undefined;
  return typeof kind === "object" ? { text, code: Code.Unavailable } : { text };
}

/**
 * What answers on `host:port`: first the HTTP/2 preface in cleartext (a
 * promproxy server answers SETTINGS, an HTTP/1.1 server "HTTP/1.", some TLS
 * servers an alert); a port that closes without a byte is then offered a TLS
 * handshake. Never throws; every socket is closed.
 */
export async function probePort(host: string, port: number, signal: AbortSignal): Promise<PortKind> {
  const first = await new Promise<Buffer | undefined>((resolve) => {
    let got = Buffer.alloc(0);
    const socket = net.connect({ host, port });
    const done = (v: Buffer | undefined) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      socket.destroy();
      resolve(v);
    };
    const onAbort = () => done(undefined);
    const timer = setTimeout(() => done(got.length > 0 ? got : undefined), probeTimeoutMs);
    signal.addEventListener("abort", onAbort);
    socket.on("connect", () => socket.write(preface));
    socket.on("data", (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 9 && (!isHttp1(got) || answerComplete(got))) done(got);
    });
    socket.on("error", () => done(got.length > 0 ? got : undefined));
    socket.on("close", () => done(got));
  });
  if (first === undefined || signal.aborted) return "unknown";
  if (isHttp1(first)) {
    const refused = promproxyRefusal(first);
    return refused === undefined ? "http1" : { refused };
  }
  if ((first[0] === 0x15 || first[0] === 0x16) && first[1] === 0x03) return "tls";
  if (first.length >= 9 && first[3] === 0x04) return "h2"; // a SETTINGS frame
  if (first.length > 0) return "unknown";
  return (await speaksTls(host, port, { signal, timeoutMs: probeTimeoutMs, alpn: "h2" })) ? "tls" : "unknown";
}

function isHttp1(b: Buffer): boolean {
  return b.subarray(0, 5).toString("latin1") === "HTTP/";
}

/** Whether an HTTP/1.1 answer is whole (headers and Content-Length bytes of body) or as long as the probe reads. */
function answerComplete(b: Buffer): boolean {
  if (b.length >= maxAnswerBytes) return true;
  const end = b.indexOf("\r\n\r\n");
  if (end < 0) return false;
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(b.subarray(0, end).toString("latin1"));
  return !length || b.length - end - 4 >= Number(length[1]);
}

/**
 * The reason of a promproxy server's refusal (`503` with the body
 * `promproxy: REASON`), printable characters only, or undefined.
 */
function promproxyRefusal(b: Buffer): string | undefined {
  const text = b.toString("latin1");
  const end = text.indexOf("\r\n\r\n");
  if (!/^HTTP\/1\.[01] 503 /.test(text) || end < 0) return undefined;
  const line = /^promproxy: ([^\r\n]{1,300})/.exec(text.slice(end + 4));
  return line?.[1]?.replace(/[^\x20-\x7e]/g, "?");
}

/** Which server URL each failed attempt dialled, for the words (the error itself does not say). */
const failedUrls = new WeakMap<object, URL>();

/**
 * Notes that `error` ended an attempt to `url` and returns it. Called where the
 * attempt fails (not in an interceptor: one that wraps the messages would keep
 * the stream off the fast path). @internal
 */
export function noteFailedUrl<E>(error: E, url: URL): E {
  if (error && typeof error === "object" && !failedUrls.has(error)) failedUrls.set(error, url);
  return error;
}

/** The same error in words (metadata and the original as its cause kept; the code unless the words give one), or the error itself. */
export function inWords(error: ConnectError, words: FailureWords | undefined): ConnectError {
  if (words === undefined) return error;
  const e = new ConnectError(words.text, words.code ?? error.code, error.metadata, undefined, error);
  e.details = error.details;
  return e;
}

/** How long a probe's finding is reused for the same failure of the same server. */
const probeReuseMs = 60_000;
/** Distinct (server, failure) pairs remembered at most. */
const maxRemembered = 32;

/**
 * The client's translator: words for a failed attempt, from the error or from
 * a probe. A probe runs once per server and failure a minute at most, and ends
 * when `stopped` aborts.
 *
 * @internal
 */
export function createFailureWords(urls: URL[], stopped: AbortSignal) {
  const probed = new Map<string, { at: number; words: Promise<FailureWords | undefined> }>();
  return {
    /** Words at once (or undefined), or a promise of them when a probe has to look. */
    explain(error: ConnectError): FailureWords | undefined | Promise<FailureWords | undefined> {
      const url = failedUrls.get(error) ?? (urls.length === 1 ? urls[0] : undefined);
      if (!url) return undefined;
      const text = wordsOf(error, url);
      const now = text === undefined ? undefined : { text };
      if (now !== undefined && !worthProbing(error, url)) return now;
      if (!worthProbing(error, url)) return undefined;
      const key = `${hostPort(url)} ${error.rawMessage}`;
      const known = probed.get(key);
      if (known && Date.now() - known.at < probeReuseMs) return known.words;
      if (probed.size >= maxRemembered) probed.delete(probed.keys().next().value as string);
      const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
      const host = url.hostname.replace(/^\[|\]$/g, "");
      const words = probePort(host, port, stopped).then(
        (kind) => probedFailure(kind, url) ?? now,
        () => now,
      );
      probed.set(key, { at: Date.now(), words });
      return words;
    },
  };
}
