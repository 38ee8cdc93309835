/**
 * What the client says when its server dies under it (SIGKILL: the kernel
 * closes the connection, no status ever comes): the connection closed
 * before the server sent a status, Unavailable, as a lost connection is.
 * Not "protocol error: missing status", which blames the server for a
 * malformed end of the stream, and which a server that ends the stream
 * without a status (END_STREAM, connection kept) still gets.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { Code, type ConnectError } from "@connectrpc/connect";
import { startClient, waitFor } from "../helpers.ts";
import { runScript } from "./fixtures/faults/util.ts";
import { encodeFrame, envelope, welcome } from "./fixtures/hostile-server/server.ts";

test("server SIGKILLed: the client says the connection closed before the server sent a status", { timeout: 60_000 }, async () => {
  const server = runScript("server-process.ts");
  const ended: (ConnectError | undefined)[] = [];
  const client = await startClient(`http://127.0.0.1:${/^port (\d+)$/.exec(await server.waitLine(/^port \d+$/))?.[1]}`, "app-1", {
    backoff: { initialMs: 60_000, maxMs: 60_000 }, // no redial to muddle the words
    onDisconnected: (e) => ended.push(e),
  });
  try {
    server.child.kill("SIGKILL");
    await server.exited;
    await waitFor("the stream to end", () => ended.length > 0, 10_000);
    // The kernel closes a killed process's connections with a FIN, or with a reset when bytes it had not read were
    // waiting (our pong, say): Node then says ECONNRESET, which is true too.
    const e = ended[0];
    if (e?.rawMessage !== "read ECONNRESET") {
      assert.equal(e?.rawMessage, "the connection closed before the server sent a status");
      assert.equal(e?.code, Code.Unavailable);
    }
  } finally {
    await client.stop();
    await server.kill();
  }
});

test("a server that ends the stream without a status, its connection kept: still a protocol error: missing status", { timeout: 30_000 }, async () => {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
    s.on("error", () => {});
  });
  server.on("stream", (stream) => {
    stream.on("error", () => {});
    stream.respond({ ":status": 200, "content-type": "application/grpc+proto" });
    stream.write(envelope(encodeFrame(welcome())));
    setTimeout(() => stream.end(), 100);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const ended: (ConnectError | undefined)[] = [];
  const client = await startClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, "app-1", {
    backoff: { initialMs: 60_000, maxMs: 60_000 },
    onDisconnected: (e) => ended.push(e),
  });
  try {
    await waitFor("the stream to end", () => ended.length > 0, 10_000);
    assert.equal(ended[0]?.rawMessage, "protocol error: missing status");
    assert.equal(ended[0]?.code, Code.Internal);
  } finally {
    await client.stop();
    await new Promise<void>((resolve) => {
      for (const s of sessions) s.destroy();
      server.close(() => resolve());
    });
  }
});
