/**
 * A server that welcomes every stream and resets it (RST_STREAM) 50 ms later:
 * the embedded client's backoff must not start over after such a welcome. Only
 * a stream that lived `stableStreamMs` (10 s) resets the backoff; a shorter
 * one counts as a failed attempt, so the waits grow (0.25-0.5 s, 0.5-1 s,
 * 1-2 s, 2-4 s, 4-8 s ...) instead of a redial every half second (about 25
 * connections in 12 s when every welcome started the backoff over). The
 * client keeps trying, and stop() ends everything.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createClient } from "../../src/client/index.ts";
import { silentLogger } from "../../src/server/index.ts";
import { testRegistry, waitFor } from "../helpers.ts";
import { encodeFrame, envelope, welcome } from "./fixtures/hostile-server/server.ts";

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The client's sockets and HTTP/2 sessions, by the names Node gives them. */
const netHandles = () => process.getActiveResourcesInfo().filter((r) => /TCPSocketWrap|TCPWRAP|Http2/i.test(r)).length;

/** A raw HTTP/2 gRPC server: every Scrape stream is welcomed, then reset `resetAfterMs` later. */
async function startWelcomeThenReset(resetAfterMs: number) {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  const state = { connections: 0, streams: 0 };
  server.on("session", (s) => {
    state.connections++;
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
    s.on("error", () => {});
  });
  server.on("stream", (stream) => {
    state.streams++;
    stream.on("error", () => {});
    stream.respond({ ":status": 200, "content-type": "application/grpc+proto" });
    stream.write(envelope(encodeFrame(welcome())));
    const timer = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), resetAfterMs);
    stream.on("close", () => clearTimeout(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    state,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    open: () => sessions.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

test("a server that welcomes and resets every stream gets a growing backoff, not a redial every half second", { timeout: 60_000 }, async (t) => {
  const handlesBefore = netHandles();
  const server = await startWelcomeThenReset(50);
  const ups: number[] = [];
  const client = createClient({ name: "app-1", serverUrl: server.url, registry: testRegistry("app-1"), logger: silentLogger, onConnected: () => ups.push(Date.now()) });
  const watchMs = 12_000;
  let connections = 0;
  try {
    void client.start();
    await pause(watchMs);
    connections = server.state.connections;
    await client.stop();
    t.diagnostic(`${connections} connections (${server.state.streams} streams, ${ups.length} welcomes) in ${watchMs / 1000} s`);
    // Default backoff (0.5 s doubling, 50 % jitter): waits of at least 0.25, 0.5, 1, 2, 4 s before the 2nd..6th
    // connection (7.75 s), 8 s more before a 7th: at most 6 in 12 s. Restarting it after every welcome made ~25.
    assert.ok(connections <= 8, `${connections} connections in ${watchMs / 1000} s to a server that resets every stream 50 ms after its welcome: the backoff started over after short-lived welcomes`);
    // It keeps trying: the waits at most 0.5, 1, 2 s before the 2nd..4th connection.
    assert.ok(connections >= 3, `only ${connections} connections in ${watchMs / 1000} s: the client gave up or waits too long`);
    assert.ok(ups.length >= 3, `only ${ups.length} welcomes taken`);
    // stop() ends everything: no connection stays open on the server, and the client dials no more.
    await waitFor("every connection closed after stop()", () => server.open() === 0, 10_000);
    const stoppedAt = server.state.connections;
    await pause(1_500); // a redial racing stop() would show here
    assert.equal(server.state.connections, stoppedAt, "the client dialled again after stop()");
  } finally {
    await client.stop();
    await server.close();
  }
  // No socket or HTTP/2 session left in this process.
  await waitFor("no socket or HTTP/2 session left in the process", () => netHandles() <= handlesBefore, 10_000);
});
