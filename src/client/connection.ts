import { Code, ConnectError } from "@connectrpc/connect";
import type { Hello, ServerFrame, Welcome } from "../../gen/promproxy/v1/scrape_pb.ts";
import { noRenegotiation, resolveClientTls } from "../auth/client/client-tls.ts";
import { pinnedLookup } from "./endpoints.ts";
import type { ResolvedClientOptions } from "./options.ts";
import type { ScrapeSlots } from "./scrape-slots.ts";
import { noteFailedUrl } from "./transport-words.ts";
import { headerSafe } from "../shared/replica-header.ts";
import { createOutQueue } from "./out-queue.ts";
import { checkReplicaSet, type ReplicaSet } from "./replica-set.ts";
import { startScrape, type ScrapeRun } from "./scrape-run.ts";
import { checkOrder, chunkHighWaterBytes, clampDuration, heartbeatRangeMs, maxServerIdLength, minChunkBytes } from "./server-limits.ts";
import { frameEntriesCheck, maxWelcomeFeatures, tooManyFeatures } from "./frame-entries.ts";
import { createH2Connection } from "./h2-connection.ts";
import type { H2Budgets } from "./h2-budget-share.ts";
import type { FrameShare } from "./frame-budget.ts";
import { sayFastServer } from "./fast-server-warning.ts";
import { watchStream } from "./stream-watchdog.ts";
import type { WelcomePatience } from "./welcome-patience.ts";
import { ScrapeErrorReason, TargetError, type ScrapeTarget } from "./targets/target.ts";
import { runStream } from "./run-stream.ts";
import { explain } from "./connect-words.ts";
import { inGoawayWords } from "./goaway-words.ts";

/** What one connection attempt needs from its client. @internal */
export interface ConnectionContext {
  options: ResolvedClientOptions;
  /** The server URL dialled. */
  base: URL;
  /** An address to dial instead of resolving `base`'s host name (which stays the TLS name and `:authority`). */
  address?: string;
  hello: Hello;
  targets: ScrapeTarget[];
  /** The client's places for scrapes at work, over all of its streams. */
  slots: ScrapeSlots;
  /** The client's budgets: frames (maxServerFramesPerSecond) shared by its streams, h2 (maxServerControl…, maxServerOverhead…) by its connections. */
  frames: FrameShare;
  h2: H2Budgets;
  /** The client's wait for a welcome, over all of its streams. */
  welcomePatience: WelcomePatience;
  /** Aborted when the client stops: the stream ends at once. */
  stopped: AbortSignal;
  /** Called once the server has welcomed this connection, with the replica set it announced (undefined: none). */
  onWelcome(welcome: Welcome, set: ReplicaSet | undefined): void;
  /** A ReplicaSet frame on this stream (feature "replica-set"), checked. */
  onReplicaSet?(set: ReplicaSet): void;
}

/** Changed replica sets a server may send at once before the one-a-second pace holds. */
const setBurst = 5;

/** While our answers pile up unsent, how often reading checks whether they have left: at first, and at the sparsest. */
const backlogRecheckMs = 5;
const backlogMaxRecheckMs = 250;

/** How long a stopping client waits for the server to end the stream after its goodbye. */
const goodbyeMs = 1_000;

/**
 * One connection attempt: dials, sends the hello, waits at most
 * `welcomeTimeoutMs` for the welcome (longer after attempts that timed out
 * waiting: src/client/welcome-patience.ts), then serves orders until the stream
 * ends. Resolves only when the client was stopped; otherwise throws a
 * `ConnectError` saying why the stream failed or ended. Every socket, session
 * and stream error ends up here: none escapes to the host application.
 * `attempt.welcomed` tells whether the server welcomed it, `attempt.welcomedAt`
 * when (`performance.now()`): how long a welcomed stream lived decides whether
 * the backoff starts over (src/client/backoff.ts `stableStreamMs`).
 *
 * @internal
 */
export async function connectOnce(ctx: ConnectionContext, attempt: { welcomed: boolean; welcomedAt?: number }): Promise<void> {
  const { options, base } = ctx;
  const { log, name } = options;
  const tls = await resolveClientTls(options.tls); // per attempt: rotated certificate files are re-read
  /** How the Connect transport's pieces are read: within the read limit, paced once the stream runs (below). */
  const read = { limit: options.maxServerFrameBytes, pace: (_cost: number) => 0, check: frameEntriesCheck({ maxReplicas: options.maxReplicas }) };
  const sessionManager = createH2Connection(
    base,
    // The PINGs are our own (src/client/h2-ping.ts): connect-node's are turned off in createH2Connection, as
    // its timeout dropped healthy connections after the host's event loop stalled (test/stalled-loop.test.ts).
    // pingIdleConnection stays off as well: with it on, Connect (2.2) re-arms its PING timer when the stream
    // closes after the session was destroyed; the timer then calls ping() on the dead session, which throws an
    // uncaught ERR_HTTP2_INVALID_SESSION ~pingIntervalMs after every reconnect and crashes the host application
    // (connectrpc/connect-es#1795; test/e2e/faults.test.ts catches it). Ours never touches a destroyed session.
    // idleConnectionTimeoutMs short: Connect re-arms its idle timer (15 min by default) the same way when the
    // stream closes after abort(), and the timer holds the dead session, its stream and our queue's frames: a
    // server that made the client drop its stream several times a second grew the host by ~1.4 MB a drop, for
    // 15 minutes each (test/e2e/hostile-server-reconnects.test.ts). The connection is never idle while in use:
    // it carries our one stream from the moment it is ready until we abort it.
    { pingIntervalMs: options.pingIntervalMs, pingTimeoutMs: options.pingTimeoutMs, pingIdleConnection: false, idleConnectionTimeoutMs: 1_000 },
    // Server push off, whatever the options say: a server's PUSH_PROMISE is then a protocol error that ends the connection
    // (with push on, a server pushing streams as fast as the socket takes them cost the host a core and ~150 MB, silently).
    { ...options.http2Options, settings: { ...options.http2Options.settings, enablePush: false }, ...tls, secureOptions: noRenegotiation(options.http2Options), ...(ctx.address === undefined ? {} : { lookup: pinnedLookup(ctx.address) }) },
    (e) => log.debug("connection error after its stream ended", { name, reason: e.message }),
    read,
    ctx.h2.control,
    ctx.h2.overhead,
  );
  const call = new AbortController();
  const readLimit = options.maxServerFrameBytes;
  const { maxReplicas } = options;
  const maxQueued = options.maxQueuedFrames;
  const out = createOutQueue({
    maxFrames: maxQueued,
    chunkHighWater: chunkHighWaterBytes,
    onOverflow: (n) => call.abort(new ConnectError(`the server has not read the ${n} frames we sent (maxQueuedFrames ${maxQueued})`, Code.ResourceExhausted)),
  });
  // Stopping says goodbye: the request side ends cleanly (END_STREAM), so the server delists the client at once
  // instead of keeping it as vanished; the call is cut if the server has not ended its side soon after.
  let goodbye: NodeJS.Timeout | undefined;
  const onStop = () => {
    for (const s of scrapes.values()) s.abort(new TargetError(ScrapeErrorReason.CANCELLED, "the client is stopping"));
    out.close();
    goodbye ??= setTimeout(() => call.abort(new ConnectError("client stopped", Code.Canceled)), welcome ? goodbyeMs : 0);
  };
  ctx.stopped.addEventListener("abort", onStop);
  const scrapes = new Map<bigint, ScrapeRun>();
  let welcome: Welcome | undefined;
  if (ctx.stopped.aborted) onStop(); // stopped while the TLS options were read
  let lastHeard = Date.now();
  /** Replica set frames: the last one's key, and a bucket of changes (a burst of `setBurst`, then one a second). */
  let lastSetKey = "";
  let setTokens = setBurst;
  let setTokensAt = Date.now();
  let watchdog: NodeJS.Timeout | undefined;
  // A server that accepts the stream (or even just the TCP connection) and never welcomes must not hold the
  // client forever: HTTP/2 PINGs do not catch it when the server answers them. The wait grows after timeouts.
  const patience = ctx.welcomePatience;
  const waitMs = patience.currentMs;
  const welcomeTimer = setTimeout(() => {
    patience.timedOut();
    call.abort(new ConnectError(`no welcome from the server within ${waitMs / 1000}s`, Code.DeadlineExceeded));
  }, waitMs);
  out.push({ frame: { case: "hello", value: ctx.hello } });
  /** One server frame; throws a ConnectError for a frame that ends the stream. */
  const onFrame = (frame: ServerFrame) => {
    lastHeard = Date.now();
    const f = frame.frame;
    if (!welcome) {
      if (f.case === undefined) return; // a frame kind of a newer server: ignored, before the welcome too
      if (f.case !== "welcome") throw new ConnectError(`the server sent ${f.case ?? "an empty frame"} before its welcome`, Code.Internal);
      const chunkLimit = f.value.limits?.maxChunkBytes ?? 0;
      if (chunkLimit > 0 && chunkLimit < minChunkBytes) {
        // Chunks that small would cost a frame per few bytes; larger ones would break the server's limit.
        throw new ConnectError(`the server's welcome sets max_chunk_bytes ${chunkLimit}, below the client's floor of ${minChunkBytes}`, Code.FailedPrecondition);
      }
      for (const [what, id] of [["replica_id", f.value.replicaId], ["session_id", f.value.sessionId]] as const) {
        // Ids the client keeps, logs and repeats in every hello (held_replica_ids): short and header-safe, or refused.
        if (id !== "" && !(id.length <= maxServerIdLength && headerSafe(id))) {
          throw new ConnectError(`the server's welcome has a ${what} of ${id.length} characters that is not a short header-safe id (at most ${maxServerIdLength})`, Code.FailedPrecondition);
        }
      }
      if (f.value.features.length > maxWelcomeFeatures) throw tooManyFeatures(); // a small welcome (a large one: counted before decoding)
      const set = checkReplicaSet(f.value.replicaIds, f.value.replicasPerClient, maxReplicas, "welcome");
      if (set && f.value.replicaId !== "" && !set.ids.includes(f.value.replicaId)) {
        throw new ConnectError(`the server's welcome names replica ${f.value.replicaId} and a replica set without it`, Code.FailedPrecondition);
      }
      welcome = f.value;
      clearTimeout(welcomeTimer);
      patience.welcomed();
      attempt.welcomed = true;
      attempt.welcomedAt = performance.now();
      // Unset or zero: 10 s; clamped to 100 ms - 10 min before it reaches a timer (PROTOCOL.md).
      const intervalMs = clampDuration(welcome.heartbeatInterval, heartbeatRangeMs);
      watchdog = watchStream(intervalMs, options.heartbeatMisses, out, () => lastHeard, (e) => call.abort(e));
      if (!ctx.stopped.aborted) ctx.onWelcome(welcome, set); // a welcome that crossed stop() connects nothing
      return;
    }
    switch (f.case) {
      case "order":
        startScrape(checkOrder(f.value), { name, targets: ctx.targets, slots: ctx.slots, log, welcome, scrapes, out });
        break;
      case "credit":
        scrapes.get(f.value.scrapeId)?.credit(Number(f.value.bytes)); // capped at 2^53 by the scrape
        break;
      case "cancel":
        scrapes.get(f.value.scrapeId)?.abort(new TargetError(ScrapeErrorReason.CANCELLED, `cancelled by the server: ${f.value.reason.slice(0, 200)}`));
        break;
      case "ping":
        out.pong(f.value.nonce); // a few pongs pending at most: a flood of pings is answered by its latest
        break;
      case "replicaSet": {
        if (!welcome.features.includes("replica-set")) break; // not negotiated: ignored
        const key = `${f.value.replicasPerClient}|${f.value.replicaIds.join("\n")}`;
        if (key === lastSetKey) break; // the same set again: nothing to do (and nothing to hash)
        // A server sends at most one a second (PROTOCOL.md): a burst of a few, then one a second, or the stream ends.
        const now = Date.now();
        setTokens = Math.min(setBurst, setTokens + (now - setTokensAt) / 1000);
        setTokensAt = now;
        if (setTokens < 1) throw new ConnectError("the server sends changed replica sets faster than one a second", Code.ResourceExhausted);
        setTokens--;
        lastSetKey = key;
        const set = checkReplicaSet(f.value.replicaIds, f.value.replicasPerClient, maxReplicas, "replica set frame");
        if (set && !ctx.stopped.aborted) ctx.onReplicaSet?.(set);
        break;
      }
      default:
        break; // frames from a newer server version
    }
  };
  const budget = ctx.frames.join(); // left in `finally`: nothing between here and `try` throws
  try {
    const backlog = Math.max(1, maxQueued >> 2);
    // How long to stop reading after reading what costs `cost` frames: past the frame budget, or while our answers
    // pile up unsent (reading more orders would only queue more answers; flow control holds the server meanwhile).
    let backlogWaits = 0;
    const pace = (cost: number) => {
      const wait = budget.spend(cost);
      if (wait > 0 && cost > 0) {
        const say = () => log.warn(`the server sends frames faster than maxServerFramesPerSecond (${options.maxServerFramesPerSecond} a second): reading it no faster (said at most once a minute)`, { name, server: base.host });
        sayFastServer(options, say);
      }
      // Unsent: a quarter of maxQueuedFrames besides body chunks (capped at a quarter by writeChunk: a body kept them at
      // the cap, and stopped reading, while the writer took them), or a full queue of body bytes the writer has not touched
      // for 250 ms (a body streaming to a reading server keeps the queue full too, but is taken from). The checks grow sparser
      // (5 ms doubling to 250 ms): many streams to servers that read nothing must not wake the host thousands of times a second.
      const stuck = out.size - out.chunkFrames >= backlog || (out.full && Date.now() - (out.waitingSinceMs ?? Infinity) >= backlogMaxRecheckMs);
      backlogWaits = stuck ? backlogWaits + 1 : 0;
      return Math.max(wait, backlogWaits === 0 ? 0 : Math.min(backlogMaxRecheckMs, backlogRecheckMs * 2 ** Math.min(backlogWaits - 1, 8)));
    };
    read.pace = pace;
    await runStream({ options, base, sessionManager, out, signal: call.signal, readLimit, onFrame, pace });
    if (!welcome) throw new ConnectError("the server ended the stream without a welcome", Code.Unavailable);
    if (!ctx.stopped.aborted) throw new ConnectError("the server ended the stream", Code.Unavailable);
  } catch (e) {
    if (call.signal.aborted && call.signal.reason instanceof ConnectError) throw noteFailedUrl(call.signal.reason, base);
    const error = explain(ConnectError.from(e), readLimit);
    throw noteFailedUrl(welcome ? inGoawayWords(error, sessionManager) : error, base); // a welcomed stream a GOAWAY ended: said so
  } finally {
    clearTimeout(welcomeTimer);
    clearTimeout(goodbye);
    clearInterval(watchdog);
    budget.leave();
    ctx.stopped.removeEventListener("abort", onStop);
    for (const s of scrapes.values()) s.abort(new TargetError(ScrapeErrorReason.CANCELLED, "the stream ended"));
    out.close();
    call.abort();
    sessionManager.abort();
  }
}
