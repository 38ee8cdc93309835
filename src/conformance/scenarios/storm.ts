/**
 * Scenarios about the two rules that let a reconnect storm settle: a refusal's
 * retry hint (`promproxy-retry-after-ms`) lengthens the next wait, clamped to
 * the client's backoff bounds, and a malformed or hostile one changes nothing
 * harmful (no tight loop, no parking); the welcome timeout doubles after each
 * attempt that got no welcome in time, and a welcome brings it back. Times are
 * checked from below, or against bounds far away.
 *
 * @internal
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { retryAfterKey } from "../../shared/retry-after.ts";
import { awaitSession, connectWithinMs, lastLine, scrapeOk, scriptedServer } from "../harness.ts";
import { check, pass, waitUntil, type Scenario } from "../scenario.ts";
import type { ScriptedServer } from "../scripted-server.ts";
import type { ClientProcess } from "../client-process.ts";
import { endedWithin } from "./watchdogs.ts";

const secs = (ms: number) => `${(ms / 1000).toFixed(2)}s`;

/** A RESOURCE_EXHAUSTED refusal carrying `hint` as the retry hint. */
const shed = (hint: string) => new ConnectError("conformance: too many pending hellos", Code.ResourceExhausted, new Headers({ [retryAfterKey]: hint }));

/**
 * Waits for `n` hellos; the gaps between them. `checkGaps` sees the gaps so far while it waits (so that a client
 * parked after a too-short wait fails on the short wait) and all of them at the end.
 */
async function gapsOf(server: ScriptedServer, client: ClientProcess, n: number, withinMs: number, checkGaps: (gaps: number[]) => void): Promise<number[]> {
  const gaps = () => {
    const times = server.attempts.slice(0, n).map((a) => a.at);
    return times.slice(1).map((t, i) => t - (times[i] ?? t));
  };
  await waitUntil(() => `the client's first attempt (its output: ${lastLine(client)})`, () => server.attempts.length > 0, connectWithinMs);
  await waitUntil(
    () => `${n} attempts (${server.attempts.length} so far, gaps ${gaps().map(secs).join(", ") || "none"}; client ${client.done ? "exited" : "running"}: ${lastLine(client)})`,
    () => {
      checkGaps(gaps());
      return server.attempts.length >= n;
    },
    withinMs,
  );
  checkGaps(gaps());
  return gaps();
}

/** The hint of the retry-hint scenario: longer than the first three backoff steps (at most 0.5, 1 and 2 s). */
const hintMs = 2_500;
/** What a timer may fire early by (noise on a loaded machine only makes waits longer). */
const earlyMs = 200;

export const retryHint: Scenario = {
  id: "retry-hint",
  title: `RESOURCE_EXHAUSTED with a retry hint of ${hintMs / 1000} s: each retry waits at least the hint, then the client gets in`,
  timeoutMs: 90_000,
  slow: true,
  async run(ctx) {
    let refusing = true;
    const server = await scriptedServer(ctx, { refuse: () => (refusing ? shed(String(hintMs)) : undefined) });
    const client = ctx.launch(server.url);
    // Three gaps: 7.5 s with the hint; slack for a loaded machine.
    const gaps = await gapsOf(server, client, 4, 30_000, (gaps) => {
      const shown = gaps.map(secs).join(", ");
      gaps.forEach((g, i) => {
        check(g >= hintMs - earlyMs, `retry ${i + 1} came ${secs(g)} after a refusal hinting ${secs(hintMs)} (gaps ${shown}): a hint lengthens the wait (clamped to 0.5-30 s)`);
        check(g <= hintMs + 6_000, `retry ${i + 1} came as late as ${secs(g)} after a refusal hinting ${secs(hintMs)} (gaps ${shown}): the wait is the longer of the hint and the backoff step, no more`);
      });
    });
    refusing = false;
    const shown = gaps.map(secs).join(", ");
    const next = await awaitSession(server, client, ctx.reconnectWithinMs);
    next.welcome();
    await scrapeOk(next);
    return pass(`gaps ${shown} after hints of ${secs(hintMs)}; welcomed after, scrape ok`);
  },
};

/**
 * Hints a hostile or broken server may send, one per refusal: 0 (a client taking it literally would hammer the
 * server), 11 digits (not a hint: a client clamping it would wait its largest step), a fraction in exponent form,
 * a sign. Each is raised to the first step or ignored: the backoff runs as without a hint.
 */
const hostileHints = ["0", "99999999999", "1e3", "-5", "0"];

export const retryHintHostile: Scenario = {
  id: "retry-hint-hostile",
  title: `hostile retry hints (${hostileHints.map((h) => JSON.stringify(h)).join(", ")}): raised to the first step or ignored, the backoff runs`,
  timeoutMs: 60_000,
  slow: true,
  async run(ctx) {
    const server = await scriptedServer(ctx, { refuse: () => shed(hostileHints[server.attempts.length % hostileHints.length] ?? "0") });
    const client = ctx.launch(server.url);
    // The backoff's own 0.5 + 1 + 2 + 4 s at most, and slack for a loaded machine.
    const gaps = await gapsOf(server, client, 5, 20_000, (gaps) => {
      const shown = gaps.map(secs).join(", ");
      gaps.forEach((g, i) => {
        const hint = JSON.stringify(hostileHints[i]);
        check(g >= 200, `retried ${secs(g)} after a hint of ${hint} (gaps ${shown}): a hint is raised to the first step (0.5 s), never a shortcut`);
        const ceiling = 500 * 2 ** i;
        check(g <= 2 * ceiling + 1_000, `retried as late as ${secs(g)} after a hint of ${hint} (gaps ${shown}): far over the ${secs(ceiling)} step; a hint that is not 1-10 digits is ignored`);
      });
    });
    const shown = gaps.map(secs).join(", ");
    const first = gaps[0] ?? 0;
    const last = gaps.at(-1) ?? 0;
    check(last >= 2 * first, `the delays grew from ${secs(first)} to only ${secs(last)} (gaps ${shown}): the steps grow as without a hint`);
    return pass(`gaps ${shown}`);
  },
};

/** PROTOCOL.md's welcome timeout; the kit's `welcome-timeout` checks the first one. */
const welcomeTimeoutMs = 10_000;
/** What a loaded machine may add to one. */
const slackMs = 10_000;

export const welcomePatience: Scenario = {
  id: "welcome-patience",
  title: "streams never welcomed: the second waits twice as long as the first; after a welcome, the plain timeout again",
  timeoutMs: 180_000,
  slow: true,
  async run(ctx) {
    const server = await scriptedServer(ctx);
    const client = ctx.launch(server.url);
    const waited: number[] = [];
    /** The next stream, never welcomed: how long after its hello the client gave up. */
    const unwelcomed = async (limitMs: number) => {
      const s = await awaitSession(server, client, waited.length === 0 ? connectWithinMs : ctx.reconnectWithinMs);
      const endedAt = await endedWithin(s, limitMs + slackMs);
      check(endedAt !== undefined, `stream ${waited.length + 1}, never welcomed, still waiting ${secs(limitMs + slackMs)} after its hello (waits so far: ${waited.map(secs).join(", ") || "none"})`);
      waited.push(endedAt - s.helloAt);
      return endedAt - s.helloAt;
    };
    const first = await unwelcomed(welcomeTimeoutMs);
    const second = await unwelcomed(2 * welcomeTimeoutMs);
    check(second >= 1.5 * first, `the client gave up after ${secs(first)}, then after ${secs(second)}: the wait for a welcome doubles after an attempt that got none in time`);
    const welcomed = await awaitSession(server, client, ctx.reconnectWithinMs);
    welcomed.welcome();
    await scrapeOk(welcomed);
    welcomed.reset();
    const after = await unwelcomed(welcomeTimeoutMs);
    check(after < 0.75 * second, `after a welcome the client waited ${secs(after)} for the next one (before: ${secs(first)}, ${secs(second)}): a welcome brings the wait back to the plain timeout`);
    return pass(`gave up after ${secs(first)}, then ${secs(second)}; welcomed, scrape ok; reset, then gave up after ${secs(after)}`);
  },
};
