import type * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { withoutStack } from "../../shared/without-stack.ts";
import { ClientFrameSchema, ServerFrameSchema, type ClientFrame } from "../../../gen/promproxy/v1/scrape_pb.ts";
import type { ServerFrameInit } from "../session.ts";
import { decodeClientFrameFast } from "./client-frame-decoder.ts";
import { createFrameReader } from "./frame-reader.ts";
import { writePrefix } from "./frame-writer.ts";
import { encodeServerFrameFast } from "./server-frame-encoder.ts";
import { helloDefaults } from "../hello.ts";
import { scanClientFrame, type ScanLimits } from "./repeated-scan.ts";

/**
 * Decodes one client message: the frames of a result and pongs by hand,
 * the rest (a hello, anything unusual) with protobuf-es. Both read `bytes`
 * fields as views of the input: a chunk's body stays in the buffer it arrived in.
 * Repeated fields over their bounds are refused before protobuf-es builds them
 * (repeated-scan.ts): a ConnectError, InvalidArgument.
 */
export function decodeClientFrame(bytes: Uint8Array, limits: ScanLimits = helloDefaults): ClientFrame {
  const fast = decodeClientFrameFast(bytes);
  if (fast) return fast;
  scanClientFrame(bytes, limits);
  try {
    return fromBinary(ClientFrameSchema, bytes);
  } catch (e) {
    throw new ConnectError(`parse binary: ${e instanceof Error ? e.message : String(e)}`, Code.Internal);
  }
}

/**
 * Encodes one server message with its gRPC prefix, as pieces for a corked
 * write (joined once per batch): orders, credit, cancels and pings by hand,
 * the rest (the welcome) with protobuf-es.
 */
export function encodeServerFrame(frame: ServerFrameInit, into: Uint8Array[]): void {
  const fast = encodeServerFrameFast(frame);
  if (fast) {
    into.push(fast);
    return;
  }
  const body = toBinary(ServerFrameSchema, create(ServerFrameSchema, frame));
  const prefix = Buffer.allocUnsafe(5);
  writePrefix(prefix, 0, body.byteLength);
  into.push(prefix, body);
}

/** What ended a stream the client closed or reset, in the words Node uses (end-reason.ts turns them into ours). */
export function closedError(stream: http2.ServerHttp2Stream, error?: Error): ConnectError {
  const code = stream.rstCode;
  const name = (code === undefined ? undefined : rstNameOf.get(code)) ?? `0x${(code ?? 0).toString(16)}`;
  const closed = `Stream closed with error code ${name}`;
  // Both the error (a socket's ECONNRESET) and the stream's close code (CANCEL: the client went away), so that
  // end-reason.ts picks the most telling words: "Session closed with error code 8" alone would read as a protocol error.
  // Made once per stream that ends (a reconnect storm: tens of thousands), and its stack (the close handler's) tells
  // nothing: none is captured (measured: 11 us a call with one, ~2 without).
  return withoutStack(() =>
    error ? new ConnectError(`${error.message} ${(error as { code?: string }).code ?? ""}; ${closed}`, Code.Canceled, undefined, undefined, error) : new ConnectError(closed, Code.Canceled),
  );
}

const rstNames: Record<string, number> = {
  NGHTTP2_NO_ERROR: 0,
  NGHTTP2_PROTOCOL_ERROR: 1,
  NGHTTP2_INTERNAL_ERROR: 2,
  NGHTTP2_FLOW_CONTROL_ERROR: 3,
  NGHTTP2_STREAM_CLOSED: 5,
  NGHTTP2_FRAME_SIZE_ERROR: 6,
  NGHTTP2_REFUSED_STREAM: 7,
  NGHTTP2_CANCEL: 8,
  NGHTTP2_COMPRESSION_ERROR: 9,
  NGHTTP2_CONNECT_ERROR: 10,
  NGHTTP2_ENHANCE_YOUR_CALM: 11,
  NGHTTP2_INADEQUATE_SECURITY: 12,
  NGHTTP2_HTTP_1_1_REQUIRED: 13,
};

const rstNameOf = new Map(Object.entries(rstNames).map(([k, v]) => [v, k]));

/** Messages buffered before the stream is paused (only a chain that wraps messages reads this way). */
const inboxHigh = 32;

/**
 * The request messages as an async iterable (Connect's contract), for a
 * chain that wraps them: read from the stream with back-pressure (paused
 * while `inboxHigh` messages wait), errors thrown to the reader.
 */
export function streamMessages(stream: http2.ServerHttp2Stream, readMaxBytes: number, limits: ScanLimits = helloDefaults): AsyncIterable<ClientFrame> {
  const items: ClientFrame[] = [];
  let error: ConnectError | undefined;
  let ended = false;
  let wake: (() => void) | undefined;
  const wakeUp = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const reader = createFrameReader({
    readMaxBytes,
    onMessage(bytes) {
      items.push(decodeClientFrame(bytes, limits));
      if (items.length >= inboxHigh) stream.pause();
    },
    onError(e) {
      error ??= e;
      wakeUp();
    },
  });
  let started = false;
  const start = () => {
    started = true;
    stream.on("data", (c: Buffer) => {
      reader.push(c);
      wakeUp();
    });
    const onEnd = () => {
      reader.end();
      ended = true;
      wakeUp();
    };
    // An empty DATA frame with END_STREAM ends the stream even unread: it may have ended already.
    if (stream.readableEnded) onEnd();
    else stream.once("end", onEnd);
    stream.once("error", (e) => {
      error ??= closedError(stream, e);
      wakeUp();
    });
    stream.once("close", () => {
      if (!ended && !stream.readableEnded) error ??= closedError(stream);
      wakeUp();
    });
    // Reset before the first read (while the interceptors ran): no 'data', 'end' or 'close' is coming.
    if (stream.destroyed && !stream.readableEnded) error ??= closedError(stream);
  };
  return {
    [Symbol.asyncIterator]() {
      if (started) throw new ConnectError("the request stream can be read once", Code.Internal);
      start();
      return {
        async next(): Promise<IteratorResult<ClientFrame>> {
          for (;;) {
            const item = items.shift();
            if (item) {
              if (items.length < inboxHigh / 4) stream.resume();
              return { value: item, done: false };
            }
            if (error) throw error;
            if (ended) return { value: undefined, done: true };
            stream.resume();
            await new Promise<void>((resolve) => (wake = resolve));
          }
        },
        async return(): Promise<IteratorResult<ClientFrame>> {
          ended = true;
          stream.resume();
          return { value: undefined, done: true };
        },
      };
    },
  };
}
