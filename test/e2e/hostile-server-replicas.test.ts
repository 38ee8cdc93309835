/**
 * The client's HTTP/2 budgets are the client's, not each connection's: maxServerOverheadBytesPerSecond and
 * maxServerControlFramesPerSecond are shared by all of its connections (src/client/h2-budget-share.ts). Given to
 * each connection whole, they multiplied with the replicas a server names: a server behind one URL that announced
 * 64 replica ids and welcomed each new connection as another replica had the client hold 64 connections, each sent
 * 950 KB/s of WINDOW_UPDATE just under the limit and never cut: 44-48 % of a core, 1.67 GB taken in 40 s (outside
 * review, round 18b). Here a server names a set of 8 and floods each connection at half to three quarters of the
 * limit: the connections are cut, and what the server got out is a fraction of what 8 whole budgets let through.
 * Honest servers of a set of 8 (the client's HTTP/2 PINGs after each quiet second, scrapes) are never cut, at the
 * default limits nor at the lowest (10 control frames, 64 KiB a second: 1.25 frames and 8 KiB a connection).
 *
 * A connection is first judged a second or so after it opened, so each new connection takes that second's worth
 * before its cut. When the client searched again at once after each cut, the server got 2-3 whole budgets out on
 * average (47-62 % of 8 whole budgets; 98-100 % without the shared budgets). A budget cut counts against the client
 * as a whole (src/client/fault-backoff.ts): its next dials go one at a time, each after a backoff that grows with
 * the cuts in a row, so over the flood the client takes about one budget (a connection alone flooded at 3/4 of it is
 * never cut: that is what the budget allows). The bound: 1.5 budgets averaged over the span, and few dials.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { createServer, silentLogger } from "../../src/server/index.ts";
import type { PromproxyClient } from "../../src/client/index.ts";
import { proxyGet, startClient, waitFor } from "../helpers.ts";
import { cleanupsAfterAll, mb, pause, startHost } from "./fixtures/hostile-server/harness.ts";
import { startControlServer, type ControlServer } from "./fixtures/hostile-server/control-server.ts";
import { freePorts, ready } from "./fixtures/ha/cluster.ts";
import { startRoundRobin } from "./fixtures/ha/round-robin.ts";

const cleanups = cleanupsAfterAll();
const replicas = 8;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
/** The client's default backoff (the host fixture's is shorter): a connection cut for its overhead never lived. */
const budgets = 1.5;
/** Dials past the first round of 8: one at a time after a cut, with a growing backoff (every one at once: 40-50). */
const maxRedials = 16;
const backoff = { initialMs: 500, maxMs: 30_000 };

/** Runs `server`'s flood against a host for `ms` and returns what it got out over its connections, and the host's log. */
async function flood(server: ControlServer, client: object, ms: number) {
  const host = startHost(server.url, { client: { ...client, backoff } });
  cleanups.push(() => host.stop());
  await waitFor(`${replicas} connections`, () => server.sent.length >= replicas, 20_000);
  const started = Math.min(...server.openedAt);
  await pause(ms);
  const lived = server.openedAt.map((t, i) => (server.closedAt[i] ?? performance.now()) - t);
  return { host, seconds: (performance.now() - started) / 1000, lived };
}

test(`a server naming ${replicas} replicas floods each connection with WINDOW_UPDATE at 3/4 of maxServerOverheadBytesPerSecond: cut, a fraction of ${replicas} budgets taken`, async (t) => {
  const limit = 1 << 16;
  // 13-byte frames every 100 ms: 380 of them ~48 KiB a second on each connection, ~386 KiB on the 8.
  const server = await startControlServer({ kind: "window", mode: "paced", perTick: 380, replicas });
  cleanups.push(() => server.close());
  const { host, seconds, lived } = await flood(server, { maxServerOverheadBytesPerSecond: limit, pingIntervalMs: 1_000 }, 15_000);
  const cut = new RegExp(
    `"reason":"the server sent \\d+ bytes in [\\d.]+ s that carry no data \\(frame headers, WINDOW_UPDATE, PRIORITY, padding, unknown frames\\), more than maxServerOverheadBytesPerSecond \\(${limit} a second\\) allows(, all the client|"|$)`,
  );
  const cuts = host.logs().filter((l) => /disconnected|closed a stream/.test(l) && cut.test(l));
  const taken = sum(server.bytes);
  const whole = replicas * 380 * 13 * 10 * seconds; // what 8 whole budgets let through: every connection kept
  const perSecond = taken / seconds;
  t.diagnostic(`${cuts.length} cuts, ${server.sent.length} connections; ${mb(taken)} taken in ${seconds.toFixed(1)} s (${(perSecond / 1024).toFixed(0)} KiB/s, ${(perSecond / limit).toFixed(2)} budgets; kept whole: ${mb(whole)}); longest connection ${(Math.max(...lived) / 1000).toFixed(1)} s`);
  t.diagnostic(cuts[0]?.slice(0, 400) ?? "no cut");
  assert.ok(cuts.length >= 1, "no connection was cut");
  assert.ok(perSecond <= budgets * limit, `${(perSecond / 1024).toFixed(0)} KiB/s taken: over ${budgets} budgets of ${limit / 1024} KiB/s`);
  assert.ok(server.sent.length <= replicas + maxRedials, `${server.sent.length} connections in ${seconds.toFixed(1)} s`);
  assert.equal(host.script.stderr(), "");
});

test(`a server naming ${replicas} replicas sends each connection PINGs at half of maxServerControlFramesPerSecond: cut, a fraction of ${replicas} budgets taken`, async (t) => {
  const limit = 20;
  // One PING every 100 ms: 10 a second on each connection, 80 on the 8 (the client's 20 shared: 2.5 each).
  const server = await startControlServer({ kind: "ping", mode: "paced", perTick: 1, replicas });
  cleanups.push(() => server.close());
  const { host, seconds, lived } = await flood(server, { maxServerControlFramesPerSecond: limit }, 15_000);
  const cut = new RegExp(
    `"reason":"the server sent \\d+ HTTP/2 control frames \\(PING/SETTINGS/ORIGIN/ALTSVC\\) in [\\d.]+ s, more than maxServerControlFramesPerSecond \\(${limit} a second\\) allows(, all the client|"|$)`,
  );
  const cuts = host.logs().filter((l) => /disconnected|closed a stream/.test(l) && cut.test(l));
  const taken = sum(server.sent);
  const whole = replicas * 10 * seconds;
  const perSecond = taken / seconds;
  t.diagnostic(`${cuts.length} cuts, ${server.sent.length} connections; ${taken} PINGs taken in ${seconds.toFixed(1)} s (${perSecond.toFixed(1)} a second, ${(perSecond / limit).toFixed(2)} budgets; kept whole: ${whole.toFixed(0)}); longest connection ${(Math.max(...lived) / 1000).toFixed(1)} s`);
  t.diagnostic(cuts[0]?.slice(0, 400) ?? "no cut");
  assert.ok(cuts.length >= 1, "no connection was cut");
  assert.ok(perSecond <= budgets * limit, `${perSecond.toFixed(1)} PINGs a second taken: over ${budgets} budgets of ${limit}`);
  assert.ok(server.sent.length <= replicas + maxRedials, `${server.sent.length} connections in ${seconds.toFixed(1)} s`);
  assert.equal(host.script.stderr(), "");
});

test(`honest servers, a set of ${replicas} (PINGs after each quiet second, scrapes), are never cut, at the default limits nor at the lowest ones`, async (t) => {
  const secret = randomBytes(32).toString("hex");
  const ports = await freePorts(replicas);
  const peers = ports.map((p) => `http://127.0.0.1:${p}`);
  for (const [i, port] of ports.entries()) {
    const server = createServer({ logger: silentLogger, replicaId: `r${i}`, peers, peerSecret: secret, replicasPerClient: 0, vanishedRetentionMs: 0 });
    await server.listen({ host: "127.0.0.1", port });
    cleanups.push(() => server.close({ graceMs: 500, drainDelayMs: 0 }));
  }
  const lb = await startRoundRobin(ports);
  cleanups.push(() => lb.close());
  for (const p of peers) await waitFor(`${p} ready`, () => ready(p), 15_000, 100);
  const ends: string[] = [];
  const onDisconnected = (e: Error | undefined) => void ends.push(e?.message ?? "ended");
  const held = new Map<string, number>();
  const base = { pingIntervalMs: 1_000, probeIntervalMs: 1_000, onDisconnected };
  const clients: PromproxyClient[] = [];
  for (const [name, extra] of [["app-default", {}], ["app-lowest", { maxServerOverheadBytesPerSecond: 1 << 16, maxServerControlFramesPerSecond: 10 }]] as const) {
    const onConnected = () => void held.set(name, (held.get(name) ?? 0) + 1);
    clients.push(await startClient(lb.url, name, { ...base, ...extra, onConnected }));
  }
  cleanups.push(async () => void (await Promise.all(clients.map((c) => c.stop()))));
  await waitFor(`each client holding all ${replicas} replicas`, () => [...held.values()].every((n) => n >= replicas) && held.size === 2, 30_000);
  let scrapes = 0;
  const until = performance.now() + 10_000;
  while (performance.now() < until) {
    for (const [i, port] of ports.entries()) {
      for (const name of ["app-default", "app-lowest"]) {
        const res = await proxyGet(port, `http://${name}/metrics`);
        assert.equal(res.status, 200, `scrape of ${name} through r${i}: ${res.body.slice(0, 200)}`);
        scrapes++;
      }
    }
    await pause(200);
  }
  t.diagnostic(`${scrapes} scrapes over 10 s; streams: ${JSON.stringify(Object.fromEntries(held))}; ends: ${ends.length}`);
  assert.deepEqual(ends, []);
  assert.deepEqual(Object.fromEntries(held), { "app-default": replicas, "app-lowest": replicas });
});
