import type * as net from "node:net";

/**
 * Waits for a connection's first bytes, at most `timeoutMs` (the listen
 * option `prefaceTimeoutMs`): a peer that connects, or finishes its TLS
 * handshake, and then says nothing is closed then, not held by the
 * protocol's own, longer timeouts. `decides(first)` tells whether the bytes
 * so far are enough to choose a server (false: wait for more, still under
 * the timer). Once they are, the timer stops, the bytes are put back unread
 * and `take(first)` gets the socket, paused: it resumes it if its server
 * reads from the stream.
 *
 * @internal
 */
export function awaitFirstBytes(socket: net.Socket, timeoutMs: number, decides: (first: Buffer) => boolean, take: (first: Buffer) => void): void {
  const silent = () => socket.destroy();
  socket.setTimeout(timeoutMs, silent);
  let first: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    first = first.length === 0 ? chunk : Buffer.concat([first, chunk]);
    if (!decides(first)) return;
    socket.off("data", onData);
    socket.setTimeout(0, silent);
    socket.pause();
    socket.unshift(first);
    take(first);
  };
  socket.on("data", onData);
}
