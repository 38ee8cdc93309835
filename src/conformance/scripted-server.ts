/**
 * A promproxy server that does what a scenario tells it, right or wrong: it
 * accepts a Scrape stream (gRPC, gRPC-Web or Connect, over cleartext HTTP/2),
 * reads the hello, and hands the stream to the scenario, which then sends the
 * welcome and any frames it likes (unknown ones included) and reads what the
 * client answers. Built like src/server/server.ts: Connect's node adapter on
 * `node:http2`, nothing of the real server's logic.
 *
 * @internal
 */
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ScrapeService, type ClientFrame, type Hello } from "../../gen/promproxy/v1/scrape_pb.ts";
import { createScriptedSession, type ScriptedSession } from "./scripted-session.ts";

/** Options of {@link startScriptedServer}. */
export interface ScriptedServerOptions {
  /** Port on 127.0.0.1. Default 0: a free port. */
  port?: number;
  /** Refuses a stream after its hello when it returns an error (the stream ends with its code). Default: accept all. */
  refuse?: (hello: Hello) => ConnectError | undefined;
  /** How long a stream may take to send its first frame. Default 15 000 ms. */
  helloTimeoutMs?: number;
  /** After a client's half-close, keep the response side open instead of ending it. Default false. */
  holdAfterHalfClose?: boolean;
  /** Also listen on [::1] at the same port, where the machine has IPv6 loopback (for clients dialling `localhost`). Default false. */
  ipv6Too?: boolean;
}

/** One hello the server read, accepted or refused. */
export interface Attempt {
  at: number;
  name: string;
  refused?: Code;
}

export interface ScriptedServer {
  readonly port: number;
  /** Whether it listens on [::1] too. */
  readonly ipv6: boolean;
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** Every hello read, in order. */
  readonly attempts: Attempt[];
  /** Rules broken before a session existed (a first frame that is no hello). */
  readonly violations: string[];
  /** Every accepted session, in order. */
  readonly sessions: ScriptedSession[];
  /** The next accepted session that no earlier call returned; rejects after `timeoutMs`. */
  nextSession(timeoutMs: number): Promise<ScriptedSession>;
  /** Ends every stream (Unavailable, as a server shutting down does) and closes the port. */
  close(): Promise<void>;
}

const streamIdHeader = "x-promproxy-conformance-stream";

export async function startScriptedServer(o: ScriptedServerOptions = {}): Promise<ScriptedServer> {
  const attempts: Attempt[] = [];
  const violations: string[] = [];
  const sessions: ScriptedSession[] = [];
  let taken = 0;
  const waiters = new Set<() => void>();
  const helloTimeoutMs = o.helloTimeoutMs ?? 15_000;

  /** The HTTP/2 stream of each request, by the id the request handler gave it. */
  const h2Streams = new Map<string, http2.ServerHttp2Stream>();
  /** The `:authority` of each request, by the same id. */
  const authorities = new Map<string, string>();
  /** When each connection was opened. */
  const openedAt = new WeakMap<http2.Http2Session, number>();
  let streamIds = 0;

  async function* scrape(requests: AsyncIterable<ClientFrame>, ctx: HandlerContext) {
    const streamId = ctx.requestHeader.get(streamIdHeader) ?? "";
    const h2Stream = h2Streams.get(streamId);
    const it = requests[Symbol.asyncIterator]();
    let timer: NodeJS.Timeout | undefined;
    const first = await Promise.race([
      it.next(),
      new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), helloTimeoutMs))),
    ]).finally(() => clearTimeout(timer));
    if (first === "late" || first.done || first.value.frame.case !== "hello") {
      const what = first === "late" ? "nothing" : first.done ? "the end of the stream" : `a ${first.value.frame.case ?? "frame of an unknown kind"}`;
      violations.push(`a stream opened with ${what} instead of a hello`);
      it.return?.()?.catch(() => {});
      throw new ConnectError(`the first frame must be a hello, got ${what}`, Code.FailedPrecondition);
    }
    const hello = first.value.frame.value;
    const refusal = o.refuse?.(hello);
    attempts.push({ at: Date.now(), name: hello.name, refused: refusal?.code });
    if (refusal) {
      it.return?.()?.catch(() => {});
      throw refusal;
    }
    const connection = h2Stream?.session;
    const feed = createScriptedSession(hello, {
      connectedAt: (connection && openedAt.get(connection)) ?? Date.now(),
      authority: authorities.get(streamId) ?? "",
      localAddress: connection?.socket?.localAddress ?? "",
      reset: () => h2Stream?.close(http2.constants.NGHTTP2_INTERNAL_ERROR),
      holdAfterHalfClose: o.holdAfterHalfClose,
    });
    sessions.push(feed.session);
    for (const w of [...waiters]) w();
    // A reset by the client, or its connection gone, while the response side is held open.
    ctx.signal.addEventListener("abort", () => feed.closed("broken: the client reset the stream or closed the connection"), { once: true });
    void (async () => {
      try {
        for (;;) {
          const r = await it.next();
          if (r.done) break;
          feed.receive(r.value);
        }
        feed.halfClosed();
      } catch (e) {
        feed.closed(`broken: ${ConnectError.from(e).message}`);
      }
    })();
    yield* feed.outbound;
  }

  const adapter = connectNodeAdapter({ routes: (router) => router.service(ScrapeService, { scrape }) });
  // Each request's HTTP/2 stream, found by the handler through a header of ours, so that a scenario can reset it.
  const connections = new Set<http2.ServerHttp2Session>();
  const listen = async (port: number, host: string) => {
    const h2 = http2.createServer((req, res) => {
      const id = String(++streamIds);
      h2Streams.set(id, req.stream);
      authorities.set(id, req.authority);
      req.stream.once("close", () => {
        h2Streams.delete(id);
        authorities.delete(id);
      });
      req.headers[streamIdHeader] = id;
      adapter(req, res);
    });
    h2.on("session", (s) => {
      openedAt.set(s, Date.now());
      connections.add(s);
      s.on("close", () => connections.delete(s));
      s.on("error", () => {});
    });
    await new Promise<void>((resolve, reject) => {
      h2.once("error", reject);
      h2.listen(port, host, () => {
        h2.off("error", reject);
        resolve();
      });
    });
    h2.on("error", () => {});
    return h2;
  };
  const listeners = [await listen(o.port ?? 0, "127.0.0.1")];
  const port = (listeners[0]?.address() as AddressInfo).port;
  if (o.ipv6Too) {
    // No IPv6 loopback here (a container without it), or the port taken on it: IPv4 only.
    const v6 = await listen(port, "::1").catch(() => undefined);
    if (v6) listeners.push(v6);
  }

  return {
    port,
    ipv6: listeners.length > 1,
    url: `http://127.0.0.1:${port}`,
    attempts,
    violations,
    sessions,
    nextSession(timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const s = sessions[taken];
          if (!s) return;
          taken++;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(s);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no client stream within ${timeoutMs / 1000}s (${attempts.length} hellos so far)`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      for (const s of sessions) s.end(new ConnectError("the server is shutting down", Code.Unavailable));
      const closed = Promise.all(listeners.map((h2) => new Promise<void>((resolve) => h2.close(() => resolve()))));
      // Let the trailers out, then drop what is left.
      await new Promise((r) => setTimeout(r, 100));
      for (const c of connections) c.destroy();
      await closed;
    },
  };
}
