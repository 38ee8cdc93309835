import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { seatOf, sharedWords, type BudgetSeat } from "./h2-budget-share.ts";
import { markBudgetCut } from "../shared/budget-cut.ts";

/**
 * How many HTTP/2 control frames a server may send the client (option `maxServerControlFramesPerSecond`, all the
 * client's HTTP/2 sessions together, each an equal share: src/client/h2-budget-share.ts): PING, SETTINGS, ALTSVC,
 * and ORIGIN on a TLS connection. The frame budget
 * (src/client/frame-budget.ts) paces what a stream reads, but these frames are on the connection, answered by
 * nghttp2 itself: a server that keeps its PINGs or SETTINGS under nghttp2's flood detector (at most 256 awaiting
 * their ACK) or sends frames that want no ACK (ORIGIN, ALTSVC) had the host answer ~700,000 PINGs or take ~300,000
 * ORIGIN frames a second, 35-64 % of a core, for as long as it liked, and no log line said so (outside review,
 * round 13a).
 *
 * Each session has a bucket that holds one second's worth of its share (at least {@link connectionBurst} frames: an
 * honest connection's first millisecond brings two, its SETTINGS and the response HEADERS, and 64 connections
 * share 100 as 1.6 each) and fills at its share: a frame past it destroys the
 * session (GOAWAY ENHANCE_YOUR_CALM) with an error that says what the server did; its stream fails with it, the
 * client reports it as the reason the stream ended and dials again after a backoff that grows with such cuts in a
 * row, client-wide (src/client/fault-backoff.ts). An honest server sends a handful: its SETTINGS, an ACK, a PING per
 * heartbeat.
 *
 * What is counted is each time such a frame wakes JavaScript. Node 22 hands PING (not an ACK), SETTINGS (not an
 * ACK) and ALTSVC to JavaScript only while the session has a `ping`, `remoteSettings` or `altsvc` listener (nghttp2
 * ACKs them either way; listening changes nothing else), and every ORIGIN frame, but emits `origin` only on TLS:
 * on cleartext it drops the frame in JavaScript after waking it. Each of these calls the session's private
 * `kUpdateTimer` (it refreshes a session timeout), as does every other frame on the connection itself (HEADERS,
 * GOAWAY, an ACK of our own PING); a stream's DATA and writes call it through the stream's. So the session's own
 * calls, not a stream's, are counted: ORIGIN on cleartext too, and a server's every other connection-level
 * frame that reaches JavaScript. Should a later Node name that symbol otherwise, the four events are counted
 * instead (ORIGIN then only over TLS).
 *
 * @internal
 */

/** The events that each stand for one control frame received. */
const controlEvents = ["ping", "remoteSettings", "altsvc", "origin"] as const;

/** The client's default, all its connections together: far above what an honest server sends, far below what costs the host a share of a core. */
export const defaultControlFramesPerSecond = 100;

/** What a session's bucket holds at least, whatever its share: a server flooding each of N sessions gets this many more, once per connection. */
export const connectionBurst = 10;

/** What the guard of a session needs to know of each of its streams. @internal */
export interface ControlGuard {
  /** Marks `stream` as the session's: what it wakes (DATA, writes) is its own, not a control frame. */
  exempt(stream: http2.Http2Stream): void;
}

/** Node's private `kUpdateTimer` symbol (src/lib/internal/http2/core.js), found by its description. */
function updateTimerKey(session: http2.Http2Session): symbol | undefined {
  for (let p: object | null = session; p; p = Object.getPrototypeOf(p) as object | null) {
    const key = Object.getOwnPropertySymbols(p).find((k) => k.description === "kUpdateTimer");
    if (key) return key;
  }
  return undefined;
}

type Wakeup = Record<symbol, (() => void) | undefined>;

/**
 * Watches `session` for control frames past its share of `budget` (a number: all its own), a bucket holding one
 * second's worth and at least {@link connectionBurst}; its seat is left once the session is seen destroyed (the
 * caller leaves it on "close" as well). Never throws.
 */
export function guardControlFrames(session: http2.Http2Session, budget: number | BudgetSeat, now: () => number = () => performance.now()): ControlGuard {
  const seat = seatOf(budget);
  const since = now();
  let at = since;
  let tokens = Math.max(connectionBurst, seat.perSecond());
  let taken = 0;
  const onFrame = () => {
    if (session.destroyed) return seat.leave();
    taken++;
    const t = now();
    const perSecond = seat.perSecond();
    tokens = Math.min(Math.max(connectionBurst, perSecond), tokens + ((t - at) * perSecond) / 1000) - 1;
    at = t;
    if (tokens >= 0) return;
    const seconds = Math.max(0.1, (t - since) / 1000).toFixed(1);
    const error = new ConnectError(
      `the server sent ${taken} HTTP/2 control frames (PING/SETTINGS/ORIGIN/ALTSVC) in ${seconds} s, more than maxServerControlFramesPerSecond (${seat.total} a second) allows${sharedWords(seat)}`,
      Code.ResourceExhausted,
    );
    seat.leave();
    session.destroy(markBudgetCut(error, "maxServerControlFramesPerSecond"), http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  };
  const key = updateTimerKey(session);
  const own = key && (session as unknown as Wakeup)[key];
  if (!key || typeof own !== "function") {
    for (const e of controlEvents) session.on(e, onFrame);
    return { exempt: () => {} };
  }
  for (const e of controlEvents) session.on(e, ignore); // so that nghttp2 hands them to JavaScript (and to the count)
  let inStream = 0;
  (session as unknown as Wakeup)[key] = function (this: unknown) {
    if (inStream === 0 && !session.destroyed) onFrame();
    own.call(this);
  };
  return {
    exempt(stream) {
      const streamOwn = (stream as unknown as Wakeup)[key];
      if (typeof streamOwn !== "function") return;
      (stream as unknown as Wakeup)[key] = function (this: unknown) {
        inStream++;
        try {
          streamOwn.call(this);
        } finally {
          inStream--;
        }
      };
    },
  };
}

const ignore = () => {};
