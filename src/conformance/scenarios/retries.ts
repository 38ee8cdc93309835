/**
 * Scenarios about retrying: a refusal that retrying cannot fix, before the
 * first welcome, stops the client (it exits non-zero, with no second attempt);
 * UNAVAILABLE refusals are retried with a backoff that starts at 0.5 s and
 * doubles; a stream reset soon after its welcome is a failed attempt too (the
 * waits grow), and one reset after it lived 10 s is redialled after the first
 * backoff step (0.25-0.5 s), jittered.
 *
 * @internal
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { awaitSession, connectClient, connectWithinMs, lastLine, scrapeOk, scriptedServer } from "../harness.ts";
import { check, pass, sleep, waitUntil, type Scenario } from "../scenario.ts";

const secs = (ms: number) => `${(ms / 1000).toFixed(2)}s`;

/** How long a refused client may take to exit (an interpreter tearing down). */
const exitWithinMs = 10_000;

function fatalRefusal(code: Code, id: string, name: string): Scenario {
  return {
    id,
    title: `${name} before the first welcome: exit non-zero within ${exitWithinMs / 1000} s, no second attempt`,
    timeoutMs: 60_000,
    async run(ctx) {
      const server = await scriptedServer(ctx, { refuse: () => new ConnectError(`conformance: refused (${name})`, code) });
      const client = ctx.launch(server.url);
      await waitUntil(() => `the client's first attempt (its output: ${lastLine(client)})`, () => {
        check(!client.done || server.attempts.length > 0, () => `the client exited before its first attempt: ${lastLine(client)}`);
        return server.attempts.length > 0;
      }, connectWithinMs);
      const refusedAt = server.attempts[0]?.at ?? Date.now();
      let timer: NodeJS.Timeout | undefined;
      const exit = await Promise.race([client.exited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), exitWithinMs)))]);
      clearTimeout(timer);
      const attempts = server.attempts.length;
      check(attempts === 1, `${attempts} attempts: the client retried after ${name}, which retrying cannot fix`);
      check(exit, `still running ${exitWithinMs / 1000} s after ${name}, with no retry: it must exit (non-zero) and say why`);
      check(exit.code !== 0 && exit.code !== null, `exited with ${exit.signal ?? `code ${exit.code}`} after ${name}; want a non-zero exit code`);
      await sleep(300); // a last attempt racing the exit
      check(server.attempts.length === 1, "the client made a second attempt while it exited");
      return pass(`exited with code ${exit.code} ${secs(Date.now() - refusedAt - 300)} after ${name}; one attempt (${lastLine(client)})`);
    },
  };
}

export const fatalUnauthenticated = fatalRefusal(Code.Unauthenticated, "fatal-unauthenticated", "UNAUTHENTICATED");
export const fatalPermissionDenied = fatalRefusal(Code.PermissionDenied, "fatal-permission-denied", "PERMISSION_DENIED");
export const fatalInvalidArgument = fatalRefusal(Code.InvalidArgument, "fatal-invalid-argument", "INVALID_ARGUMENT");

/** The first backoff delay and the largest, as PROTOCOL.md states them. */
const firstDelayMs = 500;
const attemptsWatched = 5;

export const backoff: Scenario = {
  id: "backoff",
  title: "UNAVAILABLE refusals before a welcome: retried after 0.25-0.5 s, then delays doubling",
  timeoutMs: 60_000,
  slow: true,
  async run(ctx) {
    const server = await scriptedServer(ctx, { refuse: () => new ConnectError("conformance: come back later", Code.Unavailable) });
    const client = ctx.launch(server.url);
    await waitUntil(() => `the client's first attempt (its output: ${lastLine(client)})`, () => server.attempts.length > 0, connectWithinMs);
    // 0.5 + 1 + 2 + 4 s at most between the first and the fifth attempt, and slack for a loaded machine.
    const watchMs = 20_000;
    await waitUntil(
      () => `${attemptsWatched} attempts (${server.attempts.length} so far; client ${client.done ? "exited" : "running"}: ${lastLine(client)})`,
      () => server.attempts.length >= attemptsWatched,
      watchMs,
    );
    const times = server.attempts.slice(0, attemptsWatched).map((a) => a.at);
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? t));
    const shown = gaps.map(secs).join(", ");
    const shortest = Math.min(...gaps);
    // Jitter takes up to half of each delay off: 0.25 s at least before the first retry.
    check(shortest >= 200, `retried after ${secs(shortest)} (gaps ${shown}): the first delay is 0.5 s, with at most half of it taken off as jitter`);
    gaps.forEach((g, i) => {
      const ceiling = firstDelayMs * 2 ** i;
      check(g <= 2 * ceiling + 1_000, `gap ${i + 1} was ${secs(g)}, over the ${secs(ceiling)} of PROTOCOL.md's backoff (gaps ${shown})`);
      const before = gaps[i - 1];
      check(before === undefined || g >= 0.7 * before, `gap ${i + 1} (${secs(g)}) is shorter than the one before (${secs(before ?? 0)}): the delays must grow (gaps ${shown})`);
    });
    const first = gaps[0] ?? 0;
    const last = gaps.at(-1) ?? 0;
    // Doubling makes the fourth 4-16 times the first; twice leaves room for a slow dial on a loaded machine.
    check(last >= 2 * first, `the delays grew from ${secs(first)} to only ${secs(last)} in ${gaps.length} steps (gaps ${shown}); they double`);
    return pass(`gaps ${shown}`);
  },
};

/** Streams reset right after their welcome: their redials wait the backoff's first steps, 0.25-0.5 s up to 2-4 s. */
const quickResets = 4;
/** How long a welcomed stream must live for the backoff to start over (PROTOCOL.md); the stream kept lives longer. */
const stableMs = 10_000;
const keptMs = stableMs + 1_000;
/** What a loaded machine may add to a wait (noticing the reset, dialling): only ever more, never less. */
const slackMs = 2_500;
/** A timer may fire this much early; the reset's own travel makes up for it. */
const earlyMs = 50;

export const resetAfterWelcome: Scenario = {
  id: "reset",
  title: `the stream reset (RST_STREAM) just after its welcome, ${quickResets} times: redials after growing waits (0.25-0.5 s doubling); after one that lived ${stableMs / 1000} s, after 0.25-0.5 s again`,
  timeoutMs: 90_000,
  slow: true,
  async run(ctx) {
    const { server, session, client } = await connectClient(ctx);
    await scrapeOk(session);
    /** The wait from a reset to the next stream's connection (or its hello, on the connection kept). */
    const redial = async (resetAt: number) => {
      const next = await awaitSession(server, client, ctx.reconnectWithinMs);
      return { next, delay: (next.connectedAt >= resetAt ? next.connectedAt : next.helloAt) - resetAt };
    };
    let current = session;
    const delays: number[] = [];
    for (let i = 0; i < quickResets; i++) {
      current.reset();
      const { next, delay } = await redial(Date.now());
      delays.push(delay);
      const full = firstDelayMs * 2 ** i; // the step's largest wait; jitter takes up to half of it off
      const shown = delays.map(secs).join(", ");
      check(delay >= full / 2 - earlyMs, `redial ${i + 1} after a stream reset just after its welcome came ${secs(delay)} after the reset, under the ${secs(full / 2)}-${secs(full)} of backoff step ${i + 1}: a stream that ends soon after its welcome is a failed attempt, and the backoff grows (redials ${shown})`);
      check(delay <= full + slackMs, `redial ${i + 1} came as late as ${secs(delay)} after the reset, over the ${secs(full / 2)}-${secs(full)} of backoff step ${i + 1} and ${secs(slackMs)} of slack (redials ${shown})`);
      next.welcome();
      await next.ping(BigInt(i + 1), 5_000); // its pong: the welcome arrived before the reset
      current = next;
    }
    // A stream that lives: pinged (and ponged) for keptMs, then reset. The backoff starts over: the first step.
    const keptFrom = Date.now();
    for (let n = 1; Date.now() - keptFrom < keptMs; n++) {
      await sleep(1_000);
      await current.ping(BigInt(100 + n), 5_000);
      check(current.open, () => `the stream kept alive ended after ${secs(Date.now() - keptFrom)}: ${current.endedHow}`);
    }
    const lived = Date.now() - keptFrom;
    current.reset();
    const { next, delay } = await redial(Date.now());
    delays.push(delay);
    const shown = delays.map(secs).join(", ");
    check(delay >= firstDelayMs / 2 - earlyMs, `redialled ${secs(delay)} after the reset of a stream that lived ${secs(lived)}: the first backoff step is 0.25-0.5 s (redials ${shown})`);
    check(delay <= firstDelayMs + slackMs, `redialled as late as ${secs(delay)} after the reset of a stream that lived ${secs(lived)}: after a stream that lived ${stableMs / 1000} s the backoff starts over, 0.25-0.5 s (redials ${shown})`);
    // Jitter: some wait comes before its step's full length (a fixed wait never does: noise only adds).
    const early = delays.some((d, i) => d < 0.98 * firstDelayMs * 2 ** (i < quickResets ? i : 0));
    check(early, `no redial came before the full length of its backoff step (redials ${shown}): no jitter, which takes up to half of each step off`);
    next.welcome();
    await scrapeOk(next);
    return pass(`redials after ${shown} (${quickResets} resets just after the welcome, then one after ${secs(lived)}); scrape ok`);
  },
};
