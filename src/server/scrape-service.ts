import { Code, ConnectError, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import type { ClientFrame, Hello } from "../../gen/promproxy/v1/scrape_pb.ts";
import { identityKey } from "../auth/stream/identity.ts";
import { peerKey } from "../auth/stream/peer.ts";
import type { RefusalLogs } from "../shared/refusal-log.ts";
import type { Activity } from "./activity.ts";
import { version } from "../shared/version.ts";
import { replicaIdKey } from "../shared/replica-header.ts";
import type { Coordinator } from "./coordinator.ts";
import { endReason } from "./end-reason.ts";
import { streamResetKey, stuckStreamResetKey } from "./stream-reset.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { ResolvedServerOptions } from "./options.ts";
import type { ServerFrameInit, Session } from "./session.ts";
import type { ReplicaSetFeed } from "./peers/replica-set.ts";

/** @internal */
export interface ScrapeServiceDeps {
  options: ResolvedServerOptions;
  coordinator: Coordinator;
  metrics: ServerMetrics;
  activity: Activity;
  /** With peers: the replica set announced in welcomes and ReplicaSet frames. */
  replicaSet?: ReplicaSetFeed;
  /** Where refused streams are logged: at info, a line a minute per Connect code and address at most (a flood of bad hellos is free). */
  refusalLogs: RefusalLogs;
}

/**
 * The server side of the Scrape stream, a thin adapter: hold a place until the
 * hello, let the coordinator admit the client, welcome it, then relay frames
 * between the wire and its session until either side ends.
 *
 * @internal
 */
export function createScrapeHandler({ options, coordinator, metrics, activity, replicaSet, refusalLogs }: ScrapeServiceDeps) {
  const log = options.logger;

  return async function* scrape(requests: AsyncIterable<ClientFrame>, ctx: HandlerContext): AsyncGenerator<ServerFrameInit> {
    const it = requests[Symbol.asyncIterator]();
    let session: Session | undefined;
    let release: (() => void) | undefined;
    let name: string | undefined;
    try {
      release = coordinator.admit();
      const hello = await readHello(it, options.helloTimeoutMs, ctx.signal);
      name = hello.name.slice(0, 253);
      session = await coordinator.join(hello, ctx.values.get(identityKey), ctx.values.get(peerKey)?.remoteAddress);
    } catch (e) {
      const err = reportRefusal({ options, metrics, activity, refusalLogs }, e, name, ctx.values);
      // Not awaited: while a read is pending (no hello yet, readHello timed out), return() waits for that
      // read, which never settles when the client sends nothing; the refusal was then never sent and the
      // stream stayed open for good. Ending the handler closes the request side anyway.
      it.return?.()?.catch(() => {});
      throw err;
    } finally {
      release?.();
    }

    const s = session;
    metrics.sessions.inc({ result: "accepted" });
    log.info("client connected", { client: s.info.name, session: s.info.sessionId, identity: s.info.identity });
    let reason = "stream ended";
    /** Set when the stream ends in any way but the client closing its side cleanly (stop()): it vanished. */
    let broke = true;
    // Closed for good with an error (not reading, replaced, shut down) while Connect's write waits for a client that
    // takes nothing: this handler never resumes, so the stream is reset, not left to the front's unread-answer timeout.
    const stuck = ctx.values.get(stuckStreamResetKey);
    if (stuck) s.whenFailed(() => process.nextTick(stuck));
    try {
      yield welcomeFrame(options, s, replicaSet);
      // Read the client's frames concurrently with writing ours.
      void (async () => {
        try {
          for (;;) {
            const r = await it.next();
            if (r.done) break;
            s.receive(r.value);
          }
          // The request side also ends "cleanly" when the stream is reset or its connection lost (Node ends the
          // body then too): only a stream still open once its request side ended said goodbye.
          broke = (await ctx.values.get(streamResetKey)?.()) === true;
          s.close();
        } catch (e) {
          const err = ConnectError.from(e);
          reason = endReason(err, ctx.signal.reason);
          s.close(new ConnectError(reason, err.code)); // its scrapes in flight are told why, in words
        }
      })();
      yield* s.outbound;
    } catch (e) {
      reason = endReason(e, ctx.signal.reason);
      throw e;
    } finally {
      coordinator.leave(s, { reason, broke });
      s.close();
      log.info("client disconnected", { client: s.info.name, session: s.info.sessionId, reason });
    }
  };
}

/** The first frame the server sends on an admitted stream; a stream that negotiated "replica-set" follows the set from now on. @internal */
export function welcomeFrame(options: ResolvedServerOptions, s: Session, replicaSet?: ReplicaSetFeed): ServerFrameInit {
  const hb = options.heartbeatIntervalMs;
  replicaSet?.subscribe(s);
  return {
    frame: {
      case: "welcome",
      value: {
        sessionId: s.info.sessionId,
        serverVersion: version,
        heartbeatInterval: { seconds: BigInt(Math.floor(hb / 1000)), nanos: Math.round((hb % 1000) * 1e6) },
        limits: { maxChunkBytes: options.maxChunkBytes, maxResponseBytes: BigInt(options.maxResponseBytes), maxInFlight: options.maxScrapesInFlight },
        features: s.features,
        replicaId: options.replicaId,
        replicaCount: options.replicaCount,
        replicaIds: replicaSet?.current() ?? [],
        replicasPerClient: options.replicasPerClient,
      },
    },
  };
}

/** Counts, logs and announces a stream refused before its session began; returns it as a ConnectError. @internal */
export function reportRefusal(
  { options, metrics, activity, refusalLogs }: Pick<ScrapeServiceDeps, "options" | "metrics" | "activity" | "refusalLogs">,
  e: unknown,
  name: string | undefined,
  values: ContextValues,
): ConnectError {
  const err = ConnectError.from(e);
  metrics.sessions.inc({ result: Code[err.code] ?? "unknown" });
  // A client looking for every replica behind a load balancer meets replicas that hold it already, or (with
  // replicasPerClient) replicas that do not hold it: routine (the latter only counted on the status page).
  const notAssigned = err.code === Code.Unavailable && err.metadata.has(replicaIdKey);
  const refusal = { code: Code[err.code] ?? "Unknown", reason: err.rawMessage, name, identity: values.get(identityKey)?.name, peer: values.get(peerKey)?.remoteAddress, ...(notAssigned ? { routine: true } : {}) };
  if (err.code === Code.AlreadyExists || notAssigned) options.logger.debug("client refused", refusal);
  // Per code and address: a stranger's flood of bad hellos hides no one else's refusal (the first of each is said).
  else refusalLogs.refused(`${refusal.code} ${refusal.peer ?? ""}`, "client refused", refusal);
  activity.emit("clientRefused", refusal);
  return err;
}

/** The first frame, a hello; a stream reset meanwhile (the signal) is given up at once, not at the timeout. */
async function readHello(it: AsyncIterator<ClientFrame>, timeoutMs: number, signal: AbortSignal): Promise<Hello> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ConnectError(`no hello within ${timeoutMs / 1000}s`, Code.DeadlineExceeded)), timeoutMs);
    onAbort = () => reject(ConnectError.from(signal.reason ?? new ConnectError("the stream was reset", Code.Canceled)));
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort);
  });
  try {
    const first = await Promise.race([it.next(), timeout]);
    if (first.done) throw new ConnectError("the stream ended before a hello", Code.FailedPrecondition);
    if (first.value.frame.case !== "hello") {
      throw new ConnectError(`the first frame must be a hello, got ${first.value.frame.case ?? "an empty frame"}`, Code.FailedPrecondition);
    }
    return first.value.frame.value;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort!);
  }
}
