import { Code, ConnectError } from "@connectrpc/connect";
import { withGetters } from "../../shared/with-getters.ts";

/**
 * An incremental reader of gRPC length-prefixed messages (a flag byte, a 4-byte
 * big-endian length, the message): bytes go in as the socket delivers them,
 * split anywhere; each whole message comes out once. A message that arrived in
 * one piece is a view of that piece (no copy); one split across pieces is
 * gathered once into a buffer of its exact size, allocated only after its
 * length passed the read limit.
 *
 * Every problem is one `ConnectError` given to `onError`, after which the
 * reader ignores all input: a message over `readMaxBytes`
 * (`ResourceExhausted`, decided from the prefix, before a byte of it is
 * buffered), a compressed flag (`Internal`: this path only takes streams that
 * announced no `grpc-encoding`, and gRPC forbids compressed messages then), any
 * other flag bit, and a stream that ends inside a message (`InvalidArgument`,
 * as Connect words them). `onMessage` may throw: the reader stops and passes
 * that to `onError` too.
 *
 * `onStart`, when given, is asked about each message that does not fit the
 * piece its prefix came in, with that piece's rest of it: it may take the
 * message piece by piece (returning a function the reader then gives each
 * further piece of the message to, as views, in order, until the message
 * ends) instead of having it gathered.
 *
 * @internal
 */
export interface FrameReader {
  /** Feeds bytes; calls `onMessage` for each message completed. */
  push(chunk: Uint8Array): void;
  /** The peer ended its side: an error when it ended inside a message. */
  end(): void;
  /** Whether the reader stopped on an error. */
  readonly failed: boolean;
}

export interface FrameReaderOptions {
  /** Largest message accepted, in bytes. */
  readMaxBytes: number;
  onMessage(message: Uint8Array): void;
  onError(error: ConnectError): void;
  /** Takes a message piece by piece: given its first bytes and its length, a function for the rest, or undefined. */
  onStart?(first: Uint8Array, length: number): ((piece: Uint8Array) => void) | undefined;
}

const prefixBytes = 5;

export function createFrameReader({ readMaxBytes, onMessage, onError, onStart }: FrameReaderOptions): FrameReader {
  /** Prefix bytes gathered so far (a prefix may itself be split). */
  const prefix = new Uint8Array(prefixBytes);
  let prefixHave = 0;
  /** The message being gathered across pieces, and how much of it is here; undefined between messages. */
  let body: Uint8Array | undefined;
  let bodyHave = 0;
  /** Length of the message whose prefix was read, -1 while reading a prefix. */
  let want = -1;
  /** Where the pieces of a message taken piece by piece go, and how many of its bytes are still to come. */
  let sink: ((piece: Uint8Array) => void) | undefined;
  let sinkLeft = 0;
  let failed = false;

  function fail(e: unknown) {
    if (failed) return;
    failed = true;
    body = undefined;
    sink = undefined;
    onError(e instanceof ConnectError ? e : ConnectError.from(e, Code.Internal));
  }

  /** Checks a complete prefix; returns the message length, or -1 after failing. */
  function header(flags: number, length: number): number {
    if (flags & 1) {
      fail(new ConnectError("received a compressed message, but the stream declared no grpc-encoding", Code.Internal));
      return -1;
    }
    if (flags !== 0) {
      fail(new ConnectError(`protocol error: invalid message flags 0x${flags.toString(16)}`, Code.Internal));
      return -1;
    }
    if (length > readMaxBytes) {
      fail(new ConnectError(`message size ${length} is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted));
      return -1;
    }
    return length;
  }

  function deliver(message: Uint8Array) {
    try {
      onMessage(message);
    } catch (e) {
      fail(e);
    }
  }

  function push(chunk: Uint8Array) {
    let at = 0;
    const n = chunk.byteLength;
    while (at < n && !failed) {
      if (sink !== undefined) {
        const take = Math.min(sinkLeft, n - at);
        const piece = chunk.subarray(at, at + take);
        at += take;
        sinkLeft -= take;
        const to = sink;
        if (sinkLeft === 0) {
          sink = undefined;
          want = -1;
        }
        try {
          to(piece);
        } catch (e) {
          fail(e);
        }
        continue;
      }
      if (want < 0) {
        if (prefixHave === 0 && n - at >= prefixBytes) {
          // The common case: the whole prefix is here.
          const length = ((chunk[at + 1]! << 24) >>> 0) + (chunk[at + 2]! << 16) + (chunk[at + 3]! << 8) + chunk[at + 4]!;
          want = header(chunk[at]!, length);
          if (want < 0) return;
          at += prefixBytes;
        } else {
          const take = Math.min(prefixBytes - prefixHave, n - at);
          prefix.set(chunk.subarray(at, at + take), prefixHave);
          prefixHave += take;
          at += take;
          if (prefixHave < prefixBytes) return;
          prefixHave = 0;
          const length = ((prefix[1]! << 24) >>> 0) + (prefix[2]! << 16) + (prefix[3]! << 8) + prefix[4]!;
          want = header(prefix[0]!, length);
          if (want < 0) return;
        }
        if (want === 0) {
          want = -1;
          deliver(new Uint8Array(0));
          continue;
        }
      }
      if (body === undefined && n - at >= want) {
        // The whole message is in this piece: a view, no copy.
        const message = chunk.subarray(at, at + want);
        at += want;
        want = -1;
        deliver(message);
        continue;
      }
      if (body === undefined && onStart !== undefined) {
        const first = chunk.subarray(at);
        let taken: ((piece: Uint8Array) => void) | undefined;
        try {
          taken = onStart(first, want);
        } catch (e) {
          return fail(e);
        }
        if (taken !== undefined) {
          sink = taken;
          sinkLeft = want - first.byteLength;
          return;
        }
      }
      // Not zero-filled: every byte is written before the message is delivered.
      body ??= Buffer.allocUnsafe(want);
      const take = Math.min(want - bodyHave, n - at);
      body.set(chunk.subarray(at, at + take), bodyHave);
      bodyHave += take;
      at += take;
      if (bodyHave === want) {
        const message = body;
        body = undefined;
        bodyHave = 0;
        want = -1;
        deliver(message);
      }
    }
  }

  const reader = {
    push,
    end() {
      if (!failed && (want >= 0 || prefixHave > 0)) fail(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
    },
  };
  return withGetters(reader, { failed: () => failed });
}
