/**
 * Scenarios about a server that stops talking: silence after the welcome (the
 * connection stays up and answers HTTP/2 PINGs, so only the client's own
 * watchdog can notice), a stream that is never welcomed, and a frame of an
 * unknown kind before the welcome (ignored: the welcome that follows counts).
 *
 * @internal
 */
import { create } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { ServerFrameSchema } from "../../../gen/promproxy/v1/scrape_pb.ts";
import { assertHealthy, awaitSession, connectClient, scrapeOk } from "../harness.ts";
import { check, pass, sleep, type Scenario } from "../scenario.ts";
import type { ScriptedSession } from "../scripted-session.ts";

/** Seconds, e.g. "3.1s". */
const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

/** When the session ended, or undefined when it was still open after `timeoutMs`. */
export async function endedWithin(session: ScriptedSession, timeoutMs: number): Promise<number | undefined> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([session.ended, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
  return session.endedAt;
}

/** The heartbeat the silence scenario announces: the client's watchdog must fire after 3 of them. */
const silenceHeartbeatMs = 1_000;
/** What a loaded machine may add to a timer that should fire after 3 intervals. */
const silenceSlackMs = 4_000;

export const silence: Scenario = {
  id: "silence",
  title: "silence after the welcome (1 s heartbeat, no pings, connection kept): drop after 3 s, reconnect",
  timeoutMs: 60_000,
  slow: true,
  async run(ctx) {
    const { server, session, client } = await connectClient(ctx, { welcome: { heartbeatMs: silenceHeartbeatMs } });
    const welcomedAt = Date.now();
    const limitMs = 3 * silenceHeartbeatMs;
    const endedAt = await endedWithin(session, limitMs + silenceSlackMs);
    check(endedAt !== undefined, `the stream is still up ${secs(limitMs + silenceSlackMs)} into a silence: no watchdog (3 heartbeat intervals of ${secs(silenceHeartbeatMs)})`);
    const after = endedAt - welcomedAt;
    check(after >= limitMs - 500, `the client dropped the stream after ${secs(after)} of silence, before 3 heartbeat intervals (${secs(limitMs)})`);
    check(!session.endedHow?.startsWith("ended by the server"), () => `the stream ended by the server: ${session.endedHow}`);
    const next = await awaitSession(server, client, ctx.reconnectWithinMs);
    next.welcome();
    await scrapeOk(next);
    assertHealthy(server, next);
    return pass(`dropped after ${secs(after)} of silence (${session.endedHow}); back ${secs(next.helloAt - endedAt)} later, scrape ok`);
  },
};

/** The welcome timeout PROTOCOL.md names, counted from the dial. */
const welcomeTimeoutMs = 10_000;
/** Earliest the kit accepts: a server may take 2 s to welcome (it probes a name's holder first). */
const welcomeTimeoutFloorMs = 5_000;
/** What a loaded machine may add. */
const welcomeSlackMs = 10_000;

export const welcomeTimeout: Scenario = {
  id: "welcome-timeout",
  title: "a stream accepted but never welcomed: the client gives up after 10 s and dials again",
  timeoutMs: 80_000,
  slow: true,
  async run(ctx) {
    const { server, session, client } = await connectClient(ctx, { welcome: false });
    const endedAt = await endedWithin(session, welcomeTimeoutMs + welcomeSlackMs);
    check(endedAt !== undefined, `the stream is still waiting for a welcome ${secs(welcomeTimeoutMs + welcomeSlackMs)} after its hello: no welcome timeout`);
    const after = endedAt - session.helloAt;
    check(after >= welcomeTimeoutFloorMs, `the client gave up ${secs(after)} after its hello, before ${secs(welcomeTimeoutFloorMs)} (a server may probe for 2 s before it welcomes)`);
    const next = await awaitSession(server, client, ctx.reconnectWithinMs);
    next.welcome();
    await scrapeOk(next);
    assertHealthy(server, next);
    return pass(`gave up ${secs(after)} after its hello (${session.endedHow}); dialled again ${secs(next.helloAt - endedAt)} later, scrape ok`);
  },
};

export const unknownBeforeWelcome: Scenario = {
  id: "unknown-first",
  title: "a frame of an unknown kind before the welcome: ignored, the welcome after it counts",
  timeoutMs: 30_000,
  async run(ctx) {
    const { server, session } = await connectClient(ctx, { welcome: false });
    const future = create(ServerFrameSchema, {});
    const inner = new BinaryWriter().tag(1, WireType.Varint).uint32(7).finish();
    future.$unknown = [{ no: 17, wireType: WireType.LengthDelimited, data: new BinaryWriter().bytes(inner).finish() }];
    session.send(future);
    await sleep(500);
    check(session.open, () => `the client ended the stream after a frame of an unknown kind: ${session.endedHow}`);
    check(server.sessions.length === 1, "the client opened another stream after a frame of an unknown kind");
    session.welcome();
    const rtt = await session.ping(99n, 5_000);
    await scrapeOk(session);
    assertHealthy(server, session);
    return pass(`kept the stream; welcomed 0.5 s later, pong in ${rtt.toFixed(0)} ms, scrape ok`);
  },
};
