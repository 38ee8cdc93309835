import { randomUUID } from "node:crypto";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { ClientFrame, Hello } from "../../gen/promproxy/v1/scrape_pb.ts";
import { identityKey } from "../auth/identity.ts";
import { version } from "../shared/version.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { ResolvedServerOptions } from "./options.ts";
import { checkHello, targetsOf } from "./hello.ts";
import { createSession, oneLine, type ServerFrameInit, type Session } from "./session.ts";
import type { Sessions } from "./sessions.ts";

/** @internal */
export interface ScrapeServiceDeps {
  options: ResolvedServerOptions;
  sessions: Sessions;
  metrics: ServerMetrics;
  /** False once the server is shutting down. */
  accepting(): boolean;
}

/**
 * The server side of the Scrape stream: read and check the hello, take the
 * name, welcome, then relay frames between the wire and the session until
 * either side ends.
 *
 * @internal
 */
export function createScrapeHandler(deps: ScrapeServiceDeps) {
  const { options, sessions, metrics } = deps;
  const log = options.logger;

  return async function* scrape(requests: AsyncIterable<ClientFrame>, ctx: HandlerContext): AsyncGenerator<ServerFrameInit> {
    const it = requests[Symbol.asyncIterator]();
    let session: Session | undefined;
    try {
      if (!deps.accepting()) throw new ConnectError("the server is shutting down", Code.Unavailable);
      const hello = await readHello(it, options.helloTimeoutMs);
      const identity = ctx.values.get(identityKey);
      const name = checkHello(hello, options);
      if (identity && !identity.allows(name)) {
        throw new ConnectError(`identity "${identity.name}" may not use the name "${name}"`, Code.PermissionDenied);
      }
      session = createSession(
        {
          name,
          labels: { ...hello.labels },
          targets: targetsOf(hello.targets),
          sessionId: randomUUID(),
          version: oneLine(hello.version, 128),
          connectedAt: new Date(),
          identity: identity?.name,
        },
        options,
      );
      // A client that reconnects after its path died silently finds its old session still holding
      // the name. Probe the holder: a live one keeps the name (AlreadyExists for the newcomer, so
      // no one steals a live client's name); a dead one is closed and the newcomer takes over.
      const holder = sessions.get(name);
      if (holder && !(await holder.probe(options.takeoverProbeMs))) {
        log.info("replacing a session that did not answer", { name, session: holder.info.sessionId });
        holder.close(new ConnectError("replaced by a new stream for the same name; this one did not answer a ping", Code.Aborted));
        sessions.remove(holder);
      }
      sessions.add(session);
    } catch (e) {
      const err = ConnectError.from(e);
      metrics.sessions.inc({ result: Code[err.code] ?? "unknown" });
      log.info("client refused", { code: Code[err.code], reason: err.rawMessage });
      // Not awaited: while a read is pending (no hello yet, readHello timed out), return() waits for that
      // read, which never settles when the client sends nothing; the refusal was then never sent and the
      // stream stayed open for good. Ending the handler closes the request side anyway.
      it.return?.()?.catch(() => {});
      throw err;
    }

    const s = session;
    metrics.sessions.inc({ result: "accepted" });
    metrics.clients.set(sessions.size);
    log.info("client connected", { name: s.info.name, session: s.info.sessionId, identity: s.info.identity });
    let reason = "stream ended";
    try {
      yield {
        frame: {
          case: "welcome",
          value: {
            sessionId: s.info.sessionId,
            serverVersion: version,
            heartbeatInterval: { seconds: BigInt(Math.floor(options.heartbeatIntervalMs / 1000)), nanos: (options.heartbeatIntervalMs % 1000) * 1e6 },
            limits: {
              maxChunkBytes: options.maxChunkBytes,
              maxResponseBytes: BigInt(options.maxResponseBytes),
              maxInFlight: options.maxScrapesInFlight,
            },
          },
        },
      };
      // Read the client's frames concurrently with writing ours.
      void (async () => {
        try {
          for (;;) {
            const r = await it.next();
            if (r.done) break;
            s.receive(r.value);
          }
          s.close();
        } catch (e) {
          const err = ConnectError.from(e);
          reason = err.rawMessage;
          s.close(err);
        }
      })();
      yield* s.outbound;
    } catch (e) {
      reason = ConnectError.from(e).rawMessage;
      throw e;
    } finally {
      sessions.remove(s);
      s.close();
      metrics.clients.set(sessions.size);
      log.info("client disconnected", { name: s.info.name, session: s.info.sessionId, reason });
    }
  };
}

async function readHello(it: AsyncIterator<ClientFrame>, timeoutMs: number): Promise<Hello> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ConnectError(`no hello within ${timeoutMs / 1000}s`, Code.DeadlineExceeded)),
      timeoutMs,
    );
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
  }
}
