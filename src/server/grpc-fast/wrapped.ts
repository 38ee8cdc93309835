import type * as http2 from "node:http2";
import type { ServerFrameInit } from "../session.ts";
import { toConnectError, type FrameWriter } from "./frame-writer.ts";
import { encodeServerFrame } from "./messages.ts";

/**
 * Serves a call whose interceptor chain wraps messages on Connect's contract:
 * the response messages (as the chain returns them) are written one by one as
 * the stream takes them, then the status. Ending early (the stream closed)
 * returns the iterator, so the handler's own cleanup runs.
 *
 * @internal
 */
export async function serveWrapped(writer: FrameWriter, stream: http2.ServerHttp2Stream, messages: AsyncIterable<ServerFrameInit>): Promise<void> {
  let closed = stream.closed || stream.destroyed;
  let wake: (() => void) | undefined;
  const onClose = () => {
    closed = true;
    wake?.();
  };
  stream.once("close", onClose);
  try {
    for await (const m of messages) {
      if (closed) break;
      const pieces: Uint8Array[] = [];
      encodeServerFrame(m, pieces);
      writer.write(pieces);
      if (writer.ended) break;
      if (!writer.writable) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          writer.onDrain(resolve);
        });
        wake = undefined;
      }
    }
    writer.end();
  } catch (e) {
    writer.end(toConnectError(e));
  } finally {
    stream.off("close", onClose);
  }
}
