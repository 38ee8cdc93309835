import type * as net from "node:net";
import { rawAnswer } from "./bad-request.ts";

/**
 * Drops an HTTP/1.1 connection at once (a peer that pipelined past `maxPipelinedRequests`): a raw one-line 503
 * first only when it would be the next thing the peer reads (`answerBegun` false, nothing unsent), then destroyed.
 *
 * Node aborts every request it parsed of the connection's reads with an Error whose stack it formats: hundreds per
 * dropped connection, most of the CPU of a flood of them (5 ms each, outside review 17b). No stacks are taken during
 * that one "close" (the limit is restored on the next tick).
 *
 * @internal
 */
export function dropConnection(socket: net.Socket, message: string, answerBegun: boolean): void {
  if (!answerBegun && socket.writableLength === 0 && socket.writable) {
    socket.write(rawAnswer({ status: 503, text: "Service Unavailable", message }));
  }
  socket.prependOnceListener("close", () => {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    process.nextTick(() => (Error.stackTraceLimit = limit));
  });
  socket.destroy();
}
