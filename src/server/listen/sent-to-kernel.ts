import type * as net from "node:net";

/**
 * The bytes `socket` has handed to the kernel: what was written to it less what still waits in its own buffer (Node's
 * `bytesWritten` counts both). Growing between two looks means the peer takes bytes, give or take the kernel's send
 * buffer; a `drain` says less, as it waits for the whole buffer to go out. 0 without a socket.
 *
 * Used where a peer is judged stalled: a relayed answer (src/server/relay.ts) and an HTTP/1.1 connection's waiting
 * requests (src/server/listen/h1-server.ts).
 */
export function sentToKernel(socket: net.Socket | null | undefined): number {
  return socket ? socket.bytesWritten - socket.writableLength : 0;
}
