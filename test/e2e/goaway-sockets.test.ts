/**
 * A server that sends GOAWAY as soon as a connection opens (and refuses the
 * stream if it got it) makes the client fail and dial again, on either
 * transport. Each failed attempt must free its socket at once, and stop()
 * every one: Node's HTTP/2 session, destroyed after a GOAWAY with no stream
 * left, ends its socket's writable side and stops reading it, so the socket
 * waited for the server to close its end, which a server that sent GOAWAY
 * and has nothing more to read never does (Node's own HTTP/2 server stops
 * reading such a session and keeps it, as this one does). The host held one
 * socket per attempt, also after stop() (src/client/h2-sockets.ts).
 *
 * What is counted is what the kernel says: the TCP sockets to the server's
 * port that a process still holds (an inode in /proc/net/tcp; a socket closed
 * by its process and still finishing its FIN handshake has none). The
 * client and the server share this process, so the sockets whose remote end
 * is the server's port are the client's.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createClient } from "../../src/client/index.ts";
import { silentLogger } from "../../src/server/index.ts";
import { testRegistry, waitFor } from "../helpers.ts";

/** TCP sockets (IPv4) whose remote end is 127.0.0.1:`port` that a process still holds. */
function heldTo(port: number): number {
  const remote = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return fs
    .readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[2] === remote && f[9] !== undefined && f[9] !== "0").length;
}

/** A raw HTTP/2 server: GOAWAY (NO_ERROR) on every connection as soon as it opens; a stream that gets in is refused. */
async function startGoawayServer() {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  const state = { connections: 0, streams: 0 };
  server.on("session", (s) => {
    state.connections++;
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
    s.on("error", () => {});
    setImmediate(() => {
      if (!s.destroyed) s.goaway(http2.constants.NGHTTP2_NO_ERROR);
    });
  });
  server.on("stream", (stream) => {
    state.streams++;
    stream.on("error", () => {});
    stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    state,
    port,
    url: `http://127.0.0.1:${port}`,
    open: () => sessions.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

for (const transport of ["fast", "connect"] as const) {
  test(`GOAWAY at connect (${transport} transport): each failed attempt frees its socket, and stop() every one`, { timeout: 60_000 }, async (t) => {
    const server = await startGoawayServer();
    const client = createClient({
      name: "app-1",
      serverUrl: server.url,
      registry: testRegistry("app-1"),
      logger: silentLogger,
      backoff: { initialMs: 50, maxMs: 200 },
      ...(transport === "connect" ? { transport } : {}),
    });
    try {
      void client.start().catch(() => {});
      let most = 0;
      await waitFor(
        "eight attempts",
        () => {
          most = Math.max(most, heldTo(server.port));
          return server.state.connections >= 8;
        },
        40_000,
        20,
      );
      const during = heldTo(server.port);
      // One attempt at a time: its socket, and the previous one's while it is let go. One socket per attempt before.
      assert.ok(most <= 3, `the client held up to ${most} sockets to the server over ${server.state.connections} attempts`);
      await client.stop();
      const stoppedAt = Date.now();
      await waitFor("no socket to the server held after stop()", () => heldTo(server.port) === 0, 10_000, 20);
      t.diagnostic(
        `${server.state.connections} attempts (${server.state.streams} streams reached the server); sockets held: at most ${most} during, ` +
          `${during} at the eighth attempt, 0 ${Date.now() - stoppedAt} ms after stop(); sessions the server keeps open: ${server.open()}`,
      );
    } finally {
      await client.stop();
      await server.close();
    }
  });
}
