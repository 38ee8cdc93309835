import type { ServerResponse } from "node:http";
import type { Http2ServerResponse, ServerHttp2Session } from "node:http2";
import type * as net from "node:net";
import { joinBody, sliceReader, type AnswerBody } from "./pieced-body.ts";

/** Bytes per slice: what one write hands the stream. */
export const sliceBytes = 64 * 1024;

/**
 * Slices written at most before the rest waits for the next turn of the
 * event loop (1 MiB). A write the socket takes at once says 'drain' on the
 * next tick, before any I/O: to a reader as fast as loopback a 58 MB
 * `/clients` went out in one chain of 900 writes while every scrape waited
 * (180-260 ms on a loaded 2-core machine).
 */
export const slicesPerTurn = 16;

/**
 * Answer bytes held for streams that have not taken them yet, and the most
 * they may be: one per connection (HTTP/2 or HTTP/1.1), and one for all the
 * connections of a listener. A body is counted once per budget however many of its streams
 * hold it (a cached page asked on many streams is one buffer in memory), and
 * whole until the last of them has closed (a slice is a view of its body:
 * the stream holding it holds the body).
 * @internal
 */
export interface UnsentBudget {
  held: number;
  readonly max: number;
  /**
   * First credit reserved by proxied scrapes ({@link reserveCredit}): they take from the room pages leave, and
   * pages are not refused for it (a Prometheus' http_sd beside its own scrapes in flight). Absent: none.
   */
  credit?: number;
  /**
   * Told each answer refused because this budget is spent: the words of its
   * 503, the address that asked, and the connection holding the most now.
   */
  onRefused?: (message: string, remote: string | undefined, top: { remote: string | undefined; bytes: number } | undefined) => void;
  /** Streams holding each body counted (internal). */
  bodies?: Map<AnswerBody, number>;
  /** For a listener's total: the connections' own budgets holding bytes now, with their addresses (internal). */
  holders?: Map<UnsentBudget, string | undefined>;
  /** For a listener's total: each source address's share, at most {@link addressShare} of it (internal). */
  addresses?: Map<string, UnsentBudget>;
}

/**
 * The share of a listener's total one source address may hold: a quarter. Without it a stranger's few
 * connections that ask for a large `/clients` and read nothing (each a different version of it) held the whole
 * total, and every other reader, Prometheus' http_sd too, got 503 for as long as they kept it up (an outside
 * review). One answer alone always goes, as for a connection.
 */
export const addressShare = 1 / 4;

/** A connection: an HTTP/2 session, or an HTTP/1.1 connection's socket. */
type Connection = ServerHttp2Session | net.Socket;

/** Per connection: its own budget, and its listener's total when there is one. */
const budgets = new WeakMap<Connection, { own: UnsentBudget; total?: UnsentBudget }>();

/**
 * Caps the bytes of sliced answers a connection may hold unsent: a new
 * answer is refused when the connection already holds some and the new one
 * would take it past `maxBytes` (one answer alone always goes), or when the
 * connections sharing `total` hold some and it would take them past
 * `total.max`. Called for each HTTP/2 session and each HTTP/1.1 connection. @internal
 */
export function limitUnsentAnswers(connection: Connection, maxBytes: number, total?: UnsentBudget): void {
  budgets.set(connection, { own: { held: 0, max: maxBytes }, total });
}

/** The HTTP/2 stream under a response (the front types both kinds as HTTP/1.1 ones), or undefined. */
function streamOf(res: ServerResponse) {
  return (res as unknown as Partial<Http2ServerResponse>).stream;
}

/** True when a budget already holds some bytes and `body` would take it past its maximum (a body it counts already adds nothing). */
const spent = (b: UnsentBudget, body: AnswerBody) => b.held > 0 && !b.bodies?.has(body) && b.held + body.length > b.max;

/** Counts `body` held by one more stream (`d` 1) or one fewer (-1): its bytes once, while any stream of the budget holds it. */
function count(b: UnsentBudget, body: AnswerBody, d: 1 | -1) {
  const bodies = (b.bodies ??= new Map());
  const n = (bodies.get(body) ?? 0) + d;
  if (n > 0) bodies.set(body, n);
  else bodies.delete(body);
  if (n === (d > 0 ? 1 : 0)) b.held += d * body.length;
}

/** A source address's share of `total` (made when first asked; dropped again once it holds nothing). */
function addressBudget(total: UnsentBudget, remote: string | undefined): UnsentBudget {
  const addresses = (total.addresses ??= new Map());
  let b = addresses.get(remote ?? "");
  if (!b) addresses.set(remote ?? "", (b = { held: 0, max: Math.floor(total.max * addressShare) }));
  return b;
}

/** The connection a response goes out on. */
const connectionOf = (res: ServerResponse): Connection | undefined => {
  const stream = streamOf(res);
  return stream ? (stream.session as ServerHttp2Session | undefined) : (res.socket ?? undefined);
};
const remoteOf = (c: Connection | undefined) => (c && "remoteAddress" in c ? c.remoteAddress : c?.socket?.remoteAddress);

/** Why a connection's new answer is refused, or undefined. */
function overBudget(connection: Connection | undefined, body: AnswerBody): string | undefined {
  const budget = connection && budgets.get(connection);
  if (!budget) return undefined;
  const { own, total } = budget;
  if (spent(own, body)) {
    return `this connection holds ${own.held} bytes of answers it has not read; ${body.length} more would pass ${own.max}, the maximum (listen option maxUnreadAnswerBytesPerConnection): read them, or ask on another connection`;
  }
  if (total && spent(total, body)) {
    const why = `the server holds ${total.held} bytes of answers their peers have not read (at most ${total.max}, listen option maxUnreadAnswerBytes): retry later`;
    let top: { remote: string | undefined; bytes: number } | undefined;
    for (const [b, remote] of total.holders ?? []) if (!top || b.held > top.bytes) top = { remote, bytes: b.held };
    total.onRefused?.(why, remoteOf(connection), top);
    return why;
  }
  const mine = total?.addresses?.get(remoteOf(connection) ?? ""); // none: the address holds nothing
  if (mine && spent(mine, body)) {
    return `this address holds ${mine.held} bytes of answers its connections have not read; ${body.length} more would pass ${mine.max}, its share of listen option maxUnreadAnswerBytes: read them first`;
  }
  return undefined;
}

/**
 * The smallest first credit a proxied scrape gets however full its budgets are ({@link reserveCredit}): a reader
 * still gets its answer, in steps of this many bytes.
 */
export const floorCreditBytes = 64 * 1024;

/**
 * Reserves a proxied scrape's first credit (what its client may send before
 * Prometheus has read any of it, so what an answer nobody reads pins) in the
 * budgets of the connection `res` goes out on, those local pages count in: its
 * own, its source address's share and the listener's total. The credit is
 * `want` while they have room (what pages and other scrapes' credit leave),
 * else what room is left, never less than {@link floorCreditBytes} (nor more
 * than `want`). Pages do not count it: together they hold at most twice a maximum. Counted until the response
 * closes (its last bytes have left the process). Without it, 280 connections
 * of one address asking a 20 MB target and reading nothing pinned 2 MiB each
 * (an outside review: RSS 108 -> 750 MB). @internal
 */
export function reserveCredit(res: ServerResponse, want: number): number {
  const connection = connectionOf(res);
  const budget = connection && budgets.get(connection);
  if (!budget) return want;
  const remote = remoteOf(connection) ?? "";
  const { own, total } = budget;
  const parts = total ? [own, total, addressBudget(total, remote)] : [own];
  let room = want;
  for (const b of parts) room = Math.min(room, b.max - b.held - (b.credit ?? 0));
  const bytes = Math.max(Math.min(want, floorCreditBytes), room);
  const hold = (d: number) => {
    for (const b of parts) b.credit = (b.credit ?? 0) + d;
    const mine = parts[2];
    if (mine && mine.held === 0 && mine.credit === 0) total?.addresses?.delete(remote);
  };
  hold(bytes);
  // Given back once, at the close (on() and a flag: once() would wrap the listener in two more objects).
  let held = true;
  res.on("close", () => {
    if (!held) return;
    held = false;
    hold(-bytes);
  });
  return bytes;
}

/**
 * Answers `status` with `body` in slices of {@link sliceBytes}, each after
 * the previous went out ('drain'). The stream (or HTTP/1.1 connection) then
 * holds one slice at a time, and each one the peer takes is progress the
 * unread-answer watch (src/server/listen/unread-answers.ts) sees, so that a
 * slow reader of a large page is not taken for one that reads nothing. The
 * body counts against the connection's cap and its listener's total until
 * its response closes ({@link limitUnsentAnswers}); an answer over either is
 * `refuse`d (503) instead. An answer of one slice or less goes at once,
 * uncounted. Stops when the response closes (a reset, a connection closed).
 * The body may be pieces (src/server/listen/pieced-body.ts): it is counted
 * as one body, and never joined.
 *
 * @internal
 */
export function answerInSlices(
  res: ServerResponse,
  status: number,
  headers: Record<string, string | number>,
  body: AnswerBody,
  refuse: (message: string) => void,
): void {
  // One slice or less goes at once: nothing waits here, nothing is counted or refused.
  if (body.length <= sliceBytes) return void res.writeHead(status, headers).end(joinBody(body));
  const connection = connectionOf(res);
  const why = overBudget(connection, body);
  if (why) return refuse(why);
  res.writeHead(status, headers);
  const budget = connection && budgets.get(connection);
  let counted = false;
  const hold = (d: 1 | -1) => {
    if (!budget || counted === d > 0) return;
    counted = d > 0;
    count(budget.own, body, d);
    if (!budget.total) return;
    count(budget.total, body, d);
    const remote = remoteOf(connection) ?? "";
    const mine = addressBudget(budget.total, remote);
    count(mine, body, d);
    if (mine.held === 0 && !mine.credit) budget.total.addresses?.delete(remote);
    const holders = (budget.total.holders ??= new Map());
    if (budget.own.held > 0) holders.set(budget.own, remoteOf(connection));
    else holders.delete(budget.own);
  };
  hold(1);
  outOf(res).once("close", () => hold(-1));
  writeSlices(res, body);
}

/** The HTTP/2 stream itself, or the HTTP/1.1 response: what closes, drains and is destroyed. */
const outOf = (res: ServerResponse): { readonly destroyed: boolean; once(event: "close" | "drain", f: () => void): unknown } => streamOf(res) ?? res;

/**
 * Writes `body` to a response whose head is written, in slices of
 * {@link sliceBytes}, each after the previous went out ('drain'), at most
 * {@link slicesPerTurn} in one turn of the event loop, and ends it; stops
 * when the response closes. Uncounted: {@link answerInSlices}
 * counts what it writes.
 * @internal
 */
export function writeSlices(res: ServerResponse, body: AnswerBody): void {
  const out = outOf(res);
  const read = sliceReader(body, sliceBytes);
  let slice = read();
  let n = 0; // slices written since the last wait for the next turn (a 'drain' may come on the next tick)
  const next = () => {
    while (slice) {
      if (out.destroyed) return;
      if (n === slicesPerTurn) return void setImmediate(() => ((n = 0), next()));
      n++;
      const views = slice;
      slice = read();
      // Over HTTP/1.1 the views of one slice go out together (the response corks its socket until the next tick).
      let more = true;
      for (let v = 0; v < views.length - 1; v++) more = res.write(views[v]) && more;
      // The last slice, views of the body, keeps its pieces in memory until it is sent: counted until the response closes.
      if (!slice) return void res.end(views[views.length - 1]);
      if (!(res.write(views[views.length - 1]) && more)) return void out.once("drain", next);
    }
    res.end();
  };
  next();
}
