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
/**
 * The turn's `atTurnEnd` writes, `atEndCount` of them. Emptied slot by slot, not by `length = 0`, which frees the
 * array's backing store only to allocate it again the next turn (once per scrape whose body came in pieces).
 */
const atEnd: ((() => void) | undefined)[] = [];
let atEndCount = 0;
/** Slots kept for the next turns after a burst: more are dropped with the backing store. */
const keptSlots = 1024;
let scheduled = false;

function endTurn(): void {
  let threw = false;
  let error: unknown;
  // Still `scheduled`: what the held answers cork joins this turn's sockets. One that throws does not keep the
  // others' bytes (or the sockets corked this turn) back; its error is thrown after them.
  for (let i = 0; i < atEndCount; i++) {
    const write = atEnd[i]!;
    atEnd[i] = undefined;
    try {
      write();
    } catch (e) {
      if (!threw) [threw, error] = [true, e];
    }
  }
  atEndCount = 0;
  if (atEnd.length > keptSlots) atEnd.length = 0;
  scheduled = false;
  for (const socket of corked) socket.uncork();
  corked.clear();
  if (threw) throw error;
}

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  setImmediate(endTurn);
}

/** Calls `write` when this turn of the loop ends, before the sockets corked in it are uncorked. @internal */
export function atTurnEnd(write: () => void): void {
  atEnd[atEndCount++] = write;
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
