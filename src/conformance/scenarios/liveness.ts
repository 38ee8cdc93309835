/**
 * Scenarios about the stream's life: pongs with the ping's nonce (64-bit),
 * staying connected through an idle stretch of several heartbeat intervals,
 * and coming back with backoff after the server ended the stream or restarted.
 *
 * @internal
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { assertHealthy, awaitSession, connectClient, scrapeOk, scriptedServer } from "../harness.ts";
import { check, pass, sleep, type Scenario } from "../scenario.ts";
import type { ScriptedServer } from "../scripted-server.ts";

export const pingPong: Scenario = {
  id: "ping-pong",
  title: "Pong for every Ping, with the same 64-bit nonce",
  timeoutMs: 30_000,
  async run(ctx) {
    const { server, session } = await connectClient(ctx);
    const nonces = [1n, 0n, 2n ** 53n + 1n, 2n ** 64n - 1n];
    const rtts = await Promise.all(nonces.map((n) => session.ping(n, 5_000)));
    assertHealthy(server, session);
    return pass(`${nonces.length} pongs (nonces up to 2^64-1), slowest ${Math.max(...rtts).toFixed(0)} ms`);
  },
};

export const idleSurvival: Scenario = {
  id: "idle",
  title: "idle for 5 heartbeat intervals (1 s), pinged: stays connected",
  timeoutMs: 40_000,
  slow: true,
  async run(ctx) {
    const heartbeatMs = 1_000;
    const { server, session } = await connectClient(ctx, { welcome: { heartbeatMs } });
    const rtts: number[] = [];
    for (let i = 1; i <= 5; i++) {
      await sleep(heartbeatMs);
      rtts.push(await session.ping(BigInt(1000 + i), 3 * heartbeatMs));
      assertHealthy(server, session);
    }
    await scrapeOk(session);
    assertHealthy(server, session);
    return pass(`5 s idle on a ${heartbeatMs / 1000} s heartbeat: every ping answered (slowest ${Math.max(...rtts).toFixed(0)} ms), one stream, scrape ok`);
  },
};

/** Seconds, e.g. "0.4s". */
const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

export const reconnectAfterEnd: Scenario = {
  id: "reconnect-end",
  title: "the server ends the stream, then refuses twice (UNAVAILABLE): the client retries with backoff",
  timeoutMs: 60_000,
  slow: true,
  async run(ctx) {
    let refuse = 0;
    const { server, session, client } = await connectClient(ctx, {
      server: {
        refuse: () => (refuse-- > 0 ? new ConnectError("conformance: come back later", Code.Unavailable) : undefined),
      },
    });
    await scrapeOk(session);
    assertHealthy(server, session);
    refuse = 2;
    const endedAt = Date.now();
    session.end(); // a clean end (status OK): the client must dial again anyway
    const next = await awaitSession(server, client, ctx.reconnectWithinMs);
    next.welcome();
    await scrapeOk(next);
    assertHealthy(server, next);
    const times = server.attempts.slice(1).map((a) => a.at);
    check(times.length >= 3, `only ${times.length} attempts after the end`);
    const gaps = [(times[0] ?? endedAt) - endedAt, ...times.slice(1).map((t, i) => t - (times[i] ?? t))];
    const retryGaps = gaps.slice(1);
    const meanRetry = retryGaps.reduce((a, b) => a + b, 0) / retryGaps.length;
    check(meanRetry >= 100, `retried every ${Math.round(meanRetry)} ms after UNAVAILABLE: no backoff`);
    return pass(`dialled again after ${secs(gaps[0] ?? 0)}, retries after ${retryGaps.map(secs).join(", ")}; back and scraping`);
  },
};

export const reconnectAfterRestart: Scenario = {
  id: "reconnect-restart",
  title: "server restart on the same port: the client comes back within its backoff",
  timeoutMs: 75_000,
  slow: true,
  async run(ctx) {
    const { server, session, client } = await connectClient(ctx);
    await scrapeOk(session);
    assertHealthy(server, session);
    const port = server.port;
    await server.close();
    const downMs = 2_000;
    await sleep(downMs);
    let again: ScriptedServer | undefined;
    for (let tries = 0; !again; tries++) {
      try {
        again = await scriptedServer(ctx, { port });
      } catch (e) {
        if (tries >= 20) throw e; // the port is still held: give up
        await sleep(100);
      }
    }
    const restartedAt = Date.now();
    check(!client.done, "the client exited when its server went away");
    const next = await awaitSession(again, client, ctx.reconnectWithinMs);
    next.welcome();
    await scrapeOk(next);
    assertHealthy(again, next);
    return pass(`back ${secs(next.helloAt - restartedAt)} after the restart (${secs(downMs)} down); scrape ok`);
  },
};
