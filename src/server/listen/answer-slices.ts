import type { ServerResponse } from "node:http";
import type { Http2ServerResponse, ServerHttp2Session } from "node:http2";

/** Bytes per slice: what one write hands the stream. */
export const sliceBytes = 64 * 1024;

/**
 * Answer bytes not yet handed to their streams, and the most they may be:
 * one per HTTP/2 connection, and one for all the connections of a listener.
 * @internal
 */
export interface UnsentBudget {
  held: number;
  readonly max: number;
  /** Told each answer refused because this budget is spent, with the words of its 503 and the peer's address. */
  onRefused?: (message: string, remote: string | undefined) => void;
}

/** Per HTTP/2 connection: its own budget, and its listener's total when there is one. */
const budgets = new WeakMap<ServerHttp2Session, { own: UnsentBudget; total?: UnsentBudget }>();

/**
 * Caps the bytes of sliced answers a connection may hold unsent: a new
 * answer is refused when the connection already holds some and the new one
 * would take it past `maxBytes` (one answer alone always goes), or when the
 * connections sharing `total` hold some and it would take them past
 * `total.max`. Called by the HTTP/2 server for each session. @internal
 */
export function limitUnsentAnswers(session: ServerHttp2Session, maxBytes: number, total?: UnsentBudget): void {
  budgets.set(session, { own: { held: 0, max: maxBytes }, total });
}

/** The HTTP/2 stream under a response (the front types both kinds as HTTP/1.1 ones), or undefined. */
function streamOf(res: ServerResponse) {
  return (res as unknown as Partial<Http2ServerResponse>).stream;
}

/** True when a budget already holds some bytes and `bytes` more would pass its maximum. */
const spent = (b: UnsentBudget, bytes: number) => b.held > 0 && b.held + bytes > b.max;

/** Why a connection's new answer is refused, or undefined. */
function overBudget(res: ServerResponse, bytes: number): string | undefined {
  const stream = streamOf(res);
  const budget = stream && budgets.get(stream.session as ServerHttp2Session);
  if (!budget) return undefined;
  const { own, total } = budget;
  if (spent(own, bytes)) {
    return `this connection holds ${own.held} bytes of answers it has not read; ${bytes} more would pass ${own.max}, the maximum (listen option maxUnreadAnswerBytesPerConnection): read them, or ask on another connection`;
  }
  if (total && spent(total, bytes)) {
    const why = `the server holds ${total.held} bytes of answers their peers have not read (at most ${total.max}, listen option maxUnreadAnswerBytes): retry later`;
    total.onRefused?.(why, stream.session?.socket?.remoteAddress);
    return why;
  }
  return undefined;
}

/**
 * Answers `status` with `body`: over HTTP/2, in slices of {@link sliceBytes},
 * each after the previous went out ('drain'). The stream then holds one slice
 * at a time, and each one the peer takes is progress the unread-answer watch
 * (src/server/listen/unread-answers.ts) sees, so that a slow reader of a
 * large page is not taken for one that reads nothing. The rest waits here,
 * counted against the connection's cap and its listener's total
 * ({@link limitUnsentAnswers}); an answer over either is `refuse`d (503) instead. Stops when the stream closes
 * (reset). HTTP/1.1 answers are written whole.
 *
 * @internal
 */
export function answerInSlices(
  res: ServerResponse,
  status: number,
  headers: Record<string, string | number>,
  body: Buffer,
  refuse: (message: string) => void,
): void {
  const why = overBudget(res, body.length);
  if (why) return refuse(why);
  res.writeHead(status, headers);
  const stream = streamOf(res);
  if (!stream || body.length <= sliceBytes) return void res.end(body);
  const budget = budgets.get(stream.session as ServerHttp2Session);
  let at = 0;
  const count = (n: number) => {
    if (!budget) return;
    budget.own.held += n;
    if (budget.total) budget.total.held += n;
  };
  const take = (n: number) => {
    at += n;
    count(-n);
  };
  count(body.length);
  stream.once("close", () => take(body.length - at));
  const next = () => {
    while (at < body.length) {
      if (stream.destroyed) return;
      const slice = body.subarray(at, Math.min(at + sliceBytes, body.length));
      take(slice.length);
      if (at === body.length) return void res.end(slice);
      if (!res.write(slice)) return void stream.once("drain", next);
    }
  };
  next();
}
