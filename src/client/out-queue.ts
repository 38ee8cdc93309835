import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ClientFrameSchema } from "../../gen/promproxy/v1/scrape_pb.ts";

/** A frame the client sends. @internal */
export type ClientFrameInit = MessageInitShape<typeof ClientFrameSchema>;

/**
 * The frames one stream has to send, bounded: the server decides how fast
 * they leave (HTTP/2 flow control), so nothing it does may make this grow.
 *
 * - Pongs go out before anything else, and at most `maxPongs` wait: a flood
 *   of pings is answered by its latest nonces, the older ones dropped (a
 *   server counts any frame as a sign of life; PROTOCOL.md).
 * - Body chunks wait their turn (`writeChunk`): a scrape hands over its next
 *   chunk only while the chunks queued stay under `chunkHighWater` bytes and
 *   a quarter of `maxFrames` frames, so neither credit however large nor an
 *   exporter answering in 1-byte chunks turns a body into a pile of frames
 *   (the frames of a tiny-chunked body used to fill the queue, and the next
 *   head or end then ended the stream: every scrape on it failed).
 * - Other frames (heads, ends) are queued at once; more than `maxFrames` of
 *   them means the server does not read: `onOverflow` ends the stream.
 * - A frame pushed with body bytes (a one-frame result, feature
 *   "single-result") counts as a chunk: its sender pushes it only while the
 *   queue is not `full`, and sends head, chunk and end otherwise. So the body
 *   bytes queued stay under `chunkHighWater` plus one chunk or result, whatever
 *   the server does (a result used to count nothing: a server reading none of
 *   them, ordering once a second, grew its host by a rendered body an order).
 *
 * A writer takes the next frame only once the previous ones were written
 * (connect-es: one at a time; the fast path: while its HTTP/2 stream drains),
 * so `waitingSinceMs` tells how long the server has read nothing.
 *
 * @internal
 */
export interface OutQueue extends AsyncIterable<ClientFrameInit> {
  /** Queues `frame` at once; `bytes`: the body bytes it carries (a result's data), counted as a chunk's. */
  push(frame: ClientFrameInit, bytes?: number): void;
  /** Answers a ping; beyond `maxPongs` pending, the oldest pending pong is dropped. */
  pong(nonce: bigint): void;
  /**
   * Queues a chunk frame of `bytes` body bytes once there is room; resolves
   * then, or without queueing it when the queue closes or `signal` aborts.
   */
  writeChunk(frame: ClientFrameInit, bytes: number, signal?: AbortSignal): Promise<void>;
  /** Ends the iteration once what is queued was taken. */
  close(): void;
  /**
   * Takes the next frame at once (pongs first), or undefined when none is
   * queued: for a writer that pulls only while its stream drains, as the
   * iterator's consumer does by asking for the next frame.
   */
  take(): ClientFrameInit | undefined;
  /** Called (once per call to `onReady`) when a frame is queued or the queue closes. */
  onReady(callback: () => void): void;
  readonly closed: boolean;
  /** Frames queued now (a pending pong included). */
  readonly size: number;
  /** Body bytes queued now (chunks and results). */
  readonly bytes: number;
  /** Frames queued now that carry body bytes (chunks and results): at most a quarter of `maxFrames` or so, as writers wait for room. */
  readonly chunkFrames: number;
  /** True while a chunk would wait for room: `chunkHighWater` body bytes queued, or a quarter of `maxFrames` chunks. */
  readonly full: boolean;
  /** Since when a frame has waited to be taken (Date.now() ms); undefined while nothing waits. */
  readonly waitingSinceMs: number | undefined;
}

/** Pongs pending at most: a burst of pings (a takeover probe crossing a heartbeat, a conformance kit) is answered whole. */
export const maxPongs = 8;

export function createOutQueue(o: { maxFrames: number; chunkHighWater: number; onOverflow(frames: number): void }): OutQueue {
  let items: ClientFrameInit[] = [];
  let head = 0;
  const sizes: number[] = [];
  let pongs: bigint[] = [];
  let chunkBytes = 0;
  /** Chunk frames queued, at most `chunkFrameCap` (a writer waits for room beyond). */
  let chunkFrames = 0;
  const chunkFrameCap = Math.max(1, Math.floor(o.maxFrames / 4));
  const full = () => chunkBytes >= o.chunkHighWater || chunkFrames >= chunkFrameCap;
  let closed = false;
  let overflowed = false;
  let waitingSince: number | undefined;
  let wake: (() => void) | undefined;
  /** Writers waiting for room, in order. */
  const room: (() => void)[] = [];

  const queued = () => items.length - head + pongs.length;
  function notify() {
    waitingSince ??= Date.now();
    const w = wake;
    wake = undefined;
    w?.();
  }
  /** Queues `frame`; `bytes` > 0: a chunk of that many body bytes. */
  function enqueue(frame: ClientFrameInit, bytes: number) {
    items.push(frame);
    sizes.push(bytes);
    chunkBytes += bytes;
    if (bytes > 0) chunkFrames++;
    notify();
  }
  function admit() {
    while (room.length > 0 && (closed || !full())) room.shift()?.();
  }

  function take(): ClientFrameInit | undefined {
    let frame: ClientFrameInit | undefined;
    const nonce = pongs.shift();
    if (nonce !== undefined) {
      frame = { frame: { case: "pong", value: { nonce } } };
    } else if (head < items.length) {
      frame = items[head] as ClientFrameInit;
      const bytes = sizes[head] ?? 0;
      chunkBytes -= bytes;
      if (bytes > 0) chunkFrames--;
      items[head] = undefined as unknown as ClientFrameInit;
      head++;
      if (head > 1024 && head * 2 > items.length) {
        items = items.slice(head);
        sizes.splice(0, head);
        head = 0;
      }
      admit();
    }
    // Taken: the writer is ready for more. The clock restarts for what is still queued.
    waitingSince = frame && queued() > 0 ? Date.now() : undefined;
    return frame;
  }

  return {
    take,
    onReady(callback) {
      wake = callback;
    },
    push(frame, bytes = 0) {
      if (closed) return;
      enqueue(frame, bytes);
      if (items.length - head > o.maxFrames && !overflowed) {
        overflowed = true;
        o.onOverflow(items.length - head);
      }
    },
    pong(nonce) {
      if (closed) return;
      if (pongs.length >= maxPongs) pongs = pongs.slice(1);
      pongs.push(nonce);
      notify();
    },
    async writeChunk(frame, bytes, signal) {
      // Woken writers look again: another may have taken the room first.
      while (!closed && full() && !signal?.aborted) {
        await new Promise<void>((resolve) => {
          const onAbort = () => {
            const i = room.indexOf(admitted);
            if (i >= 0) room.splice(i, 1);
            resolve();
          };
          const admitted = () => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
          };
          room.push(admitted);
          signal?.addEventListener("abort", onAbort, { once: true });
        });
      }
      if (!closed && !signal?.aborted) enqueue(frame, Math.max(1, bytes));
    },
    close() {
      if (closed) return;
      closed = true;
      admit();
      const w = wake;
      wake = undefined;
      w?.();
    },
    get closed() {
      return closed;
    },
    get size() {
      return queued();
    },
    get bytes() {
      return chunkBytes;
    },
    get chunkFrames() {
      return chunkFrames;
    },
    get full() {
      return full();
    },
    get waitingSinceMs() {
      return waitingSince;
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const frame = take();
        if (frame) {
          yield frame;
          continue;
        }
        if (closed) return;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}
