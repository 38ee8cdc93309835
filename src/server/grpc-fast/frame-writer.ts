import type * as http2 from "node:http2";
import { constants as h2 } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { withGetters } from "../../shared/with-getters.ts";

/**
 * The response side of one gRPC stream on a raw `ServerHttp2Stream`: headers
 * with the first message, messages written corked (everything queued in one
 * tick goes out as one write, one DATA frame, not one per message), and the
 * status in trailers, or, for a call that fails before its first message, as
 * Trailers-Only (one HEADERS frame with END_STREAM, as the gRPC spec allows).
 *
 * @internal
 */
export interface FrameWriter {
  /** Whether the stream takes more now (false: wait for `onDrain`). */
  readonly writable: boolean;
  /** Writes length-prefixed messages as one write; sends the headers first if not yet sent. */
  write(messages: readonly Uint8Array[]): void;
  /** Calls `cb` once the stream drained after a write it did not take at once. */
  onDrain(cb: () => void): void;
  /**
   * Ends the call with a status (OK when no error): trailers, or Trailers-Only
   * if nothing was sent. Once. With `hangUp`, nothing more is read, and a
   * client that has not ended its side a second later is told to stop
   * (RST_STREAM NO_ERROR, RFC 9113 §8.1; at once, it would drop the status),
   * rather than read for as long as it keeps on sending.
   */
  end(error?: ConnectError, hangUp?: boolean): void;
  /** Whether `end` was called or the stream is gone. */
  readonly ended: boolean;
}

/** Response headers and trailers an interceptor may have set (Web `Headers`). */
export interface CallMetadata {
  header: Headers;
  trailer: Headers;
}

const protocolHeaders = new Set(["content-type", "content-length", "content-encoding", "te", "trailer", "transfer-encoding", "connection"]);

/** Header names that belong to the protocol and never come from an interceptor's metadata. */
function isProtocolHeader(name: string): boolean {
  return protocolHeaders.has(name) || name.startsWith("grpc-") || name.startsWith(":");
}

/** Longest `grpc-message` sent, encoded: a peer's header list limit must never turn a refusal into a reset. */
const maxMessageChars = 4096;

/**
 * Percent-encodes a `grpc-message` as the gRPC spec says: printable ASCII
 * except `%` passes, every other UTF-8 byte becomes `%XX` (so a refusal in any
 * language reaches the client intact, and no byte can break the header).
 */
export function encodeGrpcMessage(message: string): string {
  let out = "";
  const bytes = Buffer.from(message, "utf8");
  for (const b of bytes) {
    if (out.length >= maxMessageChars) break;
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b < 16 ? "0" : ""}${b.toString(16).toUpperCase()}`;
  }
  return out;
}

/** Prefixes one message with the gRPC framing (flag 0, big-endian length) into `out` at `at`. */
export function writePrefix(out: Uint8Array, at: number, length: number): void {
  out[at] = 0;
  out[at + 1] = length >>> 24;
  out[at + 2] = (length >>> 16) & 0xff;
  out[at + 3] = (length >>> 8) & 0xff;
  out[at + 4] = length & 0xff;
}

function addMetadata(target: http2.OutgoingHttpHeaders, from: Headers | undefined) {
  from?.forEach((value, name) => {
    if (!isProtocolHeader(name)) target[name] = value;
  });
}

function statusHeaders(error: ConnectError | undefined, trailer: Headers | undefined): http2.OutgoingHttpHeaders {
  const h: http2.OutgoingHttpHeaders = {};
  addMetadata(h, trailer);
  if (error) {
    if (!error.isWireError) addMetadata(h, error.metadata);
    h["grpc-status"] = String(error.code);
    const message = encodeGrpcMessage(error.rawMessage);
    if (message) h["grpc-message"] = message;
  } else {
    h["grpc-status"] = "0";
  }
  return h;
}

/** How long a stream ended with an error waits for its client to end its side, unread, before it is reset. */
const hangUpMs = 1_000;

export function createFrameWriter(stream: http2.ServerHttp2Stream, contentType: string, meta: () => CallMetadata | undefined): FrameWriter {
  let headersSent = false;
  let ended = false;
  let blocked = false;
  let drainWaiter: (() => void) | undefined;

  const gone = () => stream.destroyed || stream.closed;

  function sendHeaders() {
    headersSent = true;
    const h: http2.OutgoingHttpHeaders = { ":status": 200, "content-type": contentType };
    addMetadata(h, meta()?.header);
    // Trailers come from the 'wantTrailers' event only; a compat response object on the same stream
    // (when the server is mounted in a user's http2 server) would answer it with empty trailers first.
    stream.removeAllListeners("wantTrailers");
    stream.respond(h, { waitForTrailers: true });
  }

  const writer = {
    write(messages: readonly Uint8Array[]) {
      if (ended || gone() || messages.length === 0) return;
      if (!headersSent) sendHeaders();
      const data = messages.length === 1 ? messages[0]! : Buffer.concat(messages);
      if (!stream.write(data)) {
        blocked = true;
        stream.once("drain", () => {
          blocked = false;
          const w = drainWaiter;
          drainWaiter = undefined;
          w?.();
        });
      }
    },
    onDrain(cb: () => void) {
      drainWaiter = cb;
    },
    end(error?: ConnectError, hangUp = false) {
      if (ended) return;
      ended = true;
      if (gone()) return;
      if (hangUp && !stream.readableEnded) {
        stream.pause();
        setTimeout(() => void (gone() || stream.close(h2.NGHTTP2_NO_ERROR)), hangUpMs).unref();
      }
      const m = meta();
      const status = statusHeaders(error, m?.trailer);
      try {
        if (!headersSent) {
          // Trailers-Only: the status in the only HEADERS frame (no response message was sent).
          headersSent = true;
          const h: http2.OutgoingHttpHeaders = { ":status": 200, "content-type": contentType };
          addMetadata(h, m?.header);
          stream.respond({ ...h, ...status }, { endStream: true });
          return;
        }
        stream.once("wantTrailers", () => {
          try {
            stream.sendTrailers(status);
          } catch {
            stream.close();
          }
        });
        stream.end();
      } catch {
        // The stream broke meanwhile: nothing more to tell.
        stream.close();
      }
    },
  };
  return withGetters(writer, { writable: () => !blocked && !ended && !gone(), ended: () => ended || gone() });
}

/** A ConnectError for anything thrown, as Connect's handlers turn errors into statuses. */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  return new ConnectError("internal error", Code.Internal, undefined, undefined, e);
}
