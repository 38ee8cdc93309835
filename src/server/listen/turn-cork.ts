/**
 * An HTTP/1.1 answer's writes held until the loop's turn ends, then sent in
 * one `writev`.
 *
 * Node corks a response's socket on each `write` and uncorks it on the next
 * tick, but a relayed body arrives in many callbacks within one turn (every
 * HTTP/2 DATA frame of a read is its own callback, its ticks run after it):
 * each chunk went out in a write call of its own, about 1,750 per 20 MB scrape.
 * Corked until `setImmediate` (after the loop's poll phase), the chunks that
 * came in one turn leave together: 20 MB in about 60 writes, and the server's
 * CPU per 20 MB scrape about halved (bench/measurements.md, "one write per
 * turn"). One `setImmediate` serves every socket corked in the turn.
 *
 * HTTP/2 answers (`Http2ServerResponse`) are left alone: nghttp2 gathers its
 * own writes, and their `socket` is the session's.
 *
 * A relay also holds its answer's first turn itself (head and body bytes not yet
 * written, `atTurnEnd`): what is still held can be dropped for a clear 502 when
 * the result fails within the turn (src/server/relay.ts). Those writes are made
 * first, in the same `setImmediate`, so they leave with the turn's others.
 *
 * @internal
 */
import { ServerResponse } from "node:http";
import type { Socket } from "node:net";

const corked = new Set<Socket>();
const atEnd: (() => void)[] = [];
let scheduled = false;

function endTurn(): void {
  try {
    // Still `scheduled`: what the held answers cork joins this turn's sockets.
    for (let i = 0; i < atEnd.length; i++) atEnd[i]!();
  } finally {
    atEnd.length = 0;
    scheduled = false;
    for (const socket of corked) socket.uncork();
    corked.clear();
  }
}

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  setImmediate(endTurn);
}

/** Calls `write` when this turn of the loop ends, before the sockets corked in it are uncorked. @internal */
export function atTurnEnd(write: () => void): void {
  atEnd.push(write);
  schedule();
}

/** Holds `res`'s writes until the end of this turn of the loop (once per socket and turn). @internal */
export function corkForTurn(res: ServerResponse): void {
  const socket = res.socket;
  if (!socket || !(res instanceof ServerResponse) || corked.has(socket)) return;
  socket.cork();
  corked.add(socket);
  schedule();
}
