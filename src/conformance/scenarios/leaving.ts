/**
 * Scenarios about leaving: on SIGTERM the client half-closes its stream
 * (END_STREAM on the request side, before its connection closes), so that the
 * server delists it at once instead of keeping it as vanished; and when the
 * server never answers that goodbye, the client still ends the call soon.
 *
 * @internal
 */
import { connectClient, scrapeOk } from "../harness.ts";
import { check, pass, sleep, type Scenario } from "../scenario.ts";
import { endedWithin } from "./watchdogs.ts";

const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

/** How long after SIGTERM the half-close may come (an interpreter finishing its work). */
const leaveWithinMs = 5_000;
/** PROTOCOL.md: a client waits at most 2 s for the server to answer its goodbye. */
const goodbyeWaitMs = 2_000;
/** What a loaded machine may add. */
const goodbyeSlackMs = 3_000;

export const leave: Scenario = {
  id: "leave",
  title: "SIGTERM: the request side ends cleanly (END_STREAM) before the connection closes; no redial",
  timeoutMs: 40_000,
  async run(ctx) {
    const { server, session, client } = await connectClient(ctx);
    await scrapeOk(session);
    const signalledAt = Date.now();
    client.terminate();
    const endedAt = await endedWithin(session, leaveWithinMs);
    check(endedAt !== undefined, `the stream is still up ${secs(leaveWithinMs)} after SIGTERM`);
    check(
      session.halfClosedAt !== undefined,
      () => `the stream broke instead of a half-close (${session.endedHow}): the server would keep the client listed as vanished`,
    );
    await sleep(1_000);
    const again = server.attempts.length - 1;
    check(again === 0, `the client dialled again ${again} time(s) after it was told to leave`);
    return pass(`half-closed ${secs(session.halfClosedAt - signalledAt)} after SIGTERM; no redial`);
  },
};

export const leaveUnanswered: Scenario = {
  id: "leave-unanswered",
  title: "SIGTERM, and the server never ends its side: the client ends the call within 2 s of its half-close",
  timeoutMs: 40_000,
  async run(ctx) {
    const { session, client } = await connectClient(ctx, { server: { holdAfterHalfClose: true } });
    await scrapeOk(session);
    client.terminate();
    const endedAt = await endedWithin(session, leaveWithinMs + goodbyeWaitMs + goodbyeSlackMs);
    const halfClosedAt = session.halfClosedAt;
    check(halfClosedAt !== undefined || endedAt !== undefined, `the stream is still up ${secs(leaveWithinMs + goodbyeWaitMs + goodbyeSlackMs)} after SIGTERM`);
    check(halfClosedAt !== undefined, () => `the stream broke instead of a half-close (${session.endedHow})`);
    check(endedAt !== undefined, `the client still waits for the server ${secs(Date.now() - halfClosedAt)} after its half-close (at most ${secs(goodbyeWaitMs)})`);
    const waited = endedAt - halfClosedAt;
    check(waited <= goodbyeWaitMs + goodbyeSlackMs, `the client waited ${secs(waited)} for the server after its half-close (at most ${secs(goodbyeWaitMs)})`);
    return pass(`half-closed, then ended the call ${secs(waited)} later (${session.endedHow})`);
  },
};
