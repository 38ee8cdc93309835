/**
 * A target URL whose scheme does not match what its port speaks: an
 * `http://` URL on a TLS port, an `https://` URL on a plain-HTTP port. Told
 * from what the exporter sent (TLS records; Go's 400 answer to a plain
 * request), or, when a TLS port closed the plain request's connection without
 * a byte (Node's and OpenSSL's servers do), from a TLS handshake tried on the
 * port after the scrape failed.
 */
import { speaksTls as probeTls } from "../../shared/tls-probe.ts";
import type { ExchangeSink } from "./exporter-exchange.ts";
import { ScrapeErrorReason, TargetError } from "./target.ts";

/**
 * Whether what the exporter sent starts a TLS record (a handshake, 0x16, or
 * an alert, 0x15, of version 3.x): undici's parser error carries the bytes it
 * could not parse as `data` (as a string).
 *
 * @internal
 */
export function tlsRecord(data: unknown): boolean {
  return typeof data === "string" && /^[\x15\x16]\x03[\x00-\x04]/.test(data);
}

/**
 * Whether a failure before any response head is the connection closed
 * without the exporter sending a byte (undici's socket error, whose socket
 * read nothing): what a TLS port does to a plain request, among others.
 *
 * @internal
 */
export function closedWithoutAByte(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown; socket?: { bytesRead?: unknown } } | null;
  return err?.code === "UND_ERR_SOCKET" && err.message !== "bad response" && err.message !== "bad upgrade" && err.socket?.bytesRead === 0;
}

/** How long the TLS handshake tried on a port may take: a TLS server answers a ClientHello at once. */
const probeMs = 1000;

/** Whether `host`:`port` speaks TLS (one handshake, `probeMs` at most; src/shared/tls-probe.ts). @internal */
export const speaksTls = (host: string, port: number, signal: AbortSignal): Promise<boolean> =>
  probeTls(host, port, { signal, timeoutMs: probeMs, alpn: "http/1.1" });

/**
 * The failure of an `http://` target whose port closed the request's
 * connection without a byte and speaks TLS.
 *
 * @internal
 */
export function tlsOnPlainPort(e: unknown, where: string): TargetError {
  const code = (e as { code?: unknown } | null)?.code;
  return new TargetError(
    ScrapeErrorReason.UNREACHABLE,
    `target ${where}: closed the connection without answering, and speaks TLS on that port: use https:// in the target URL (${String(code)})`,
    { cause: e },
  );
}

/** What Go's net/http answers a plain request on a TLS port: a 400 without headers, this body, then the connection closed. */
const goPlainOnTls = "Client sent an HTTP request to an HTTPS server.";

/** A sink that can hold back the start of an answer, and `finish()`, which hands over what it still holds once the answer has ended. */
export interface HoldingSink extends ExchangeSink {
  finish(): Promise<void> | void;
}

/**
 * Wraps the sink of an `http://` target so that Go's answer to a plain
 * request on a TLS port fails the scrape, telling to use https://, instead
 * of being relayed as the exporter's own 400: a 400 with none of the relayed
 * headers is held back until its body shows whether it is that answer (at
 * most its 48 bytes are held); any other answer passes as it comes.
 *
 * @internal
 */
export function goTlsAnswerCheck(sink: ExchangeSink, where: string): HoldingSink {
  let held: { status: number; headers: Record<string, string> } | undefined;
  let body: Buffer = Buffer.alloc(0);
  const release = (): Promise<void> | void => {
    const { status, headers } = held!;
    held = undefined;
    sink.head(status, headers);
    if (body.byteLength > 0) return sink.data(body);
  };
  return {
    chunkBytes: sink.chunkBytes,
    head(status, headers) {
      if (status === 400 && Object.keys(headers).length === 0) held = { status, headers };
      else sink.head(status, headers);
    },
    data(chunk) {
      if (!held) return sink.data(chunk);
      body = Buffer.concat([body, chunk]);
      const text = body.toString("latin1");
      if (text.startsWith(goPlainOnTls)) {
        throw new TargetError(ScrapeErrorReason.UNREACHABLE, `target ${where}: answered 400 "${goPlainOnTls}": use https:// in the target URL`);
      }
      if (goPlainOnTls.startsWith(text)) return undefined;
      return release();
    },
    finish() {
      if (held) return release();
    },
  };
}
