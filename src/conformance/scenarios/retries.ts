/**
 * Scenarios about retrying: a refusal that retrying cannot fix, before the
 * first welcome, stops the client (it exits non-zero, with no second attempt);
 * UNAVAILABLE refusals are retried with a backoff that starts at 0.5 s and
 * doubles; a stream reset after its welcome is redialled after the first
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

/**
 * Resets watched: enough to tell a jittered first delay (0.25-0.5 s) from a fixed one. Jitter shows twice: some
 * redial comes before the full 0.5 s (a fixed 0.5 s never does, however loaded the machine: noise only adds), and
 * the delays differ. Delays are measured from the reset to the new connection (not its hello, which a loaded
 * machine delays more). For a jittered client with 50 ms of noise, all 12 at 0.49 s or later has odds of 0.36^12.
 */
const resets = 12;
const jitteredBelowMs = 490;
/** The delays of a jittered client spread over 250 ms; all 12 within this has odds of about 12 x 0.24^11. */
const jitterSpreadMs = 60;

export const resetAfterWelcome: Scenario = {
  id: "reset",
  title: `the stream reset (RST_STREAM) after its welcome, ${resets} times: each redial after 0.25-0.5 s, jittered`,
  timeoutMs: 90_000,
  slow: true,
  async run(ctx) {
    const { server, session, client } = await connectClient(ctx);
    await scrapeOk(session);
    let current = session;
    const delays: number[] = [];
    for (let i = 0; i < resets; i++) {
      current.reset();
      const resetAt = Date.now();
      const next = await awaitSession(server, client, ctx.reconnectWithinMs);
      // A new connection's opening, or the hello of a stream on the connection kept.
      const delay = (next.connectedAt >= resetAt ? next.connectedAt : next.helloAt) - resetAt;
      delays.push(delay);
      // The backoff starts over after every welcome, so each redial waits the first step, no less.
      check(delay >= 200, `dialled again ${secs(delay)} after a reset: a welcomed stream that ends is redialled after the first backoff step (0.25-0.5 s)`);
      check(delay <= 2 * firstDelayMs + 2_000, `dialled again only ${secs(delay)} after a reset: the backoff starts over after a welcome (0.5 s)`);
      next.welcome();
      await next.ping(BigInt(i + 1), 5_000); // its pong: the welcome arrived before the next reset
      current = next;
    }
    const shortest = Math.min(...delays);
    const spread = Math.max(...delays) - shortest;
    const shown = delays.map((d) => d.toFixed(0)).join(" ");
    check(shortest < jitteredBelowMs, `${resets} redials after resets, none before ${secs(shortest)}: no jitter, which takes up to half of the 0.5 s off (ms: ${shown})`);
    check(spread >= jitterSpreadMs, `${resets} redials after resets all within ${spread} ms of each other: no jitter (ms: ${shown})`);
    await scrapeOk(current);
    return pass(`${resets} redials after ${Math.min(...delays)}-${Math.max(...delays)} ms (spread ${spread} ms); scrape ok`);
  },
};
