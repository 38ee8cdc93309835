/**
 * The client trusts no server: HTTP/2 server push. The client's sessions say SETTINGS_ENABLE_PUSH 0, whatever
 * `http2Options` ask, so a PUSH_PROMISE is a protocol error that ends the connection (the client redials with its
 * backoff). With push on (Node's default), a server pushing streams as fast as its socket took them cost the host
 * 54-103 % of a core, ~150 MB of native memory and event-loop stalls of up to 0.57 s, with no log line and no
 * disconnect (an outside review).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { startClient, waitFor } from "../helpers.ts";
import { startControlServer } from "./fixtures/hostile-server/control-server.ts";
import { startHostileServer, welcome } from "./fixtures/hostile-server/server.ts";

test("the client's sessions refuse server push, even when http2Options ask for it", { timeout: 30_000 }, async () => {
  const allowed: boolean[] = [];
  const server = await startHostileServer(async (s) => {
    allowed.push(s.stream.pushAllowed);
    await s.send(welcome());
  });
  const c = await startClient(server.url, "no-push", { http2Options: { settings: { enablePush: true } } });
  try {
    assert.deepEqual(allowed, [false]);
  } finally {
    await c.stop();
    await server.close();
  }
});

test("a server that pushes streams anyway: each connection ends at its first promise, the client redials", { timeout: 30_000 }, async () => {
  // Batches of 100 promises (a PUSH_PROMISE and the pushed stream's HEADERS each), the next only once the client
  // acknowledged the PING that ends the one before it (test/e2e/fixtures/hostile-server/control-server.ts).
  const pusher = await startControlServer({ kind: "push", mode: "flood" });
  const reasons: string[] = [];
  const c = await startClient(pusher.url, "pushed", { onDisconnected: (e?: ConnectError) => void reasons.push(`${Code[e?.code ?? 0]}: ${e?.rawMessage}`) });
  try {
    await waitFor("three connections ended", () => reasons.length >= 3 && pusher.closed.slice(0, 3).every(Boolean), 20_000);
    // A connection ends at the first promise it reads: the two batches written before any answer, at most.
    for (const n of pusher.sent.slice(0, 3)) assert.ok(n <= 2 * 101, `${n} frames written on one connection`);
    assert.match(reasons[0] ?? "", /Protocol error|PUSH|push/i, reasons.join("\n"));
  } finally {
    await c.stop();
    await pusher.close();
  }
});
