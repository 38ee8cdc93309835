/**
 * The client's own HTTP/2 PINGs (src/client/h2-ping.ts, in place of connect-node's): a server, or a path, that
 * welcomes and then answers no PING is dropped within about pingIntervalMs + pingTimeoutMs, and the client
 * dials again; a PING goes out at most once an interval, never a second while one is unanswered. A server that
 * answers keeps its connection, and a stopped client leaves no timer running.
 *
 * The server is raw HTTP/2 on TCP (fixtures/hostile-server/control-server.ts, mode "quiet"): nghttp2 would
 * acknowledge every PING by itself. The client runs in its own process (fixtures/hostile-server/host.ts).
 * Time bounds are wide: they separate "dropped by the PING" from the next thing that would drop the
 * connection (the welcome's heartbeat, 10 s, three times over).
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { waitFor } from "../helpers.ts";
import { startHost } from "./fixtures/hostile-server/harness.ts";
import { startControlServer } from "./fixtures/hostile-server/control-server.ts";

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const intervalMs = 200;
const timeoutMs = 100;
const pingOptions = { pingIntervalMs: intervalMs, pingTimeoutMs: timeoutMs, backoff: { initialMs: 50, maxMs: 100 } };

for (const transport of ["fast", "connect"] as const) {
  test(`${transport}: a server that welcomes and answers no PING is dropped after one PING, within about pingIntervalMs + pingTimeoutMs, and dialled again`, async (t) => {
    const server = await startControlServer({ kind: "ping", mode: "quiet", pingAcks: false });
    cleanups.push(() => server.close());
    const host = startHost(server.url, { client: { transport, ...pingOptions } });
    cleanups.push(() => host.stop());
    await waitFor("three connections, two of them dropped", () => server.closed[0] && server.closed[1] && server.openedAt.length >= 3, 20_000);
    for (const i of [0, 1]) {
      const lived = server.closedAt[i]! - server.openedAt[i]!;
      t.diagnostic(`connection ${i}: dropped after ${lived.toFixed(0)} ms, ${server.pings[i]} PING(s) sent on it`);
      assert.equal(server.pings[i], 1, "one PING, unanswered, then the drop: never a second one outstanding");
      assert.ok(lived >= intervalMs + timeoutMs - 20, `dropped after ${lived.toFixed(0)} ms: before its PING could time out`);
      assert.ok(lived < 5_000, `dropped after ${lived.toFixed(0)} ms: want about ${intervalMs + timeoutMs} ms`);
    }
    const reason = /^log warn disconnected .*"reason":"the server answered no HTTP\/2 PING within 0\.1s \(pingTimeoutMs\)"/;
    assert.ok(host.logs().some((l) => reason.test(l)), host.logs().join("\n"));
    assert.equal(host.script.stderr(), "");
  });
}

test("a server that answers its PINGs keeps its connection; a PING at most every pingIntervalMs; no timer left once the client stops", async (t) => {
  const server = await startControlServer({ kind: "ping", mode: "quiet" });
  cleanups.push(() => server.close());
  const host = startHost(server.url, { client: pingOptions });
  cleanups.push(() => host.stop());
  await waitFor("the connection", () => server.openedAt.length === 1, 20_000);
  await waitFor("a few PINGs answered", () => (server.pings[0] ?? 0) >= 3, 20_000);
  await pause(1_000);
  const lived = performance.now() - server.openedAt[0]!;
  const pings = server.pings[0]!;
  t.diagnostic(`${pings} PINGs in ${lived.toFixed(0)} ms`);
  assert.equal(server.openedAt.length, 1, "one connection all along");
  assert.equal(server.closed[0], false);
  assert.ok(pings <= lived / intervalMs + 1, `${pings} PINGs in ${lived.toFixed(0)} ms: more than one an interval`);
  assert.deepEqual(host.logs().filter((l) => /disconnected/.test(l)), []);

  await host.stopClient();
  await pause(2_500); // well past connect-node's idle timer, which closing the stream re-arms for idleConnectionTimeoutMs (1 s)
  await host.stats(); // counts timer callbacks from here
  await pause(1_000);
  const { timerCalls } = await host.stats();
  const pingsAfter = server.pings[0];
  await pause(500);
  assert.equal(server.pings[0], pingsAfter, "no PING after the client stopped");
  assert.equal(timerCalls, 0, "no timer runs once the client stopped");
  assert.equal(host.script.stderr(), "");
});
