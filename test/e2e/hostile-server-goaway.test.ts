/**
 * A server's GOAWAY after the welcome is the reason the client gives for its stream's end, on both transports:
 * NO_ERROR is a server shutting down or draining its connections (not nghttp2's "Stream closed with error code
 * NGHTTP2_REFUSED_STREAM" for the stream it refused, nor the CANCEL of a drain that then closed the connection),
 * another code is named, and the GOAWAY's debug data, a peer's text, is said bounded and escaped. The client
 * dials again as it did before. A promproxy server's own graceful close still says its status's words.
 *
 * The hostile server is raw HTTP/2 on TCP (fixtures/hostile-server/control-server.ts, mode "quiet" with a
 * GOAWAY on the first connection); the client runs in its own process (fixtures/hostile-server/host.ts).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createClient } from "../../src/client/index.ts";
import { startServer, testRegistry, waitFor } from "../helpers.ts";
import { cleanupsAfterAll, startHost } from "./fixtures/hostile-server/harness.ts";
import { startControlServer } from "./fixtures/hostile-server/control-server.ts";

const cleanups = cleanupsAfterAll();
const NO_ERROR = 0;
const ENHANCE_YOUR_CALM = 11;
const draining = "the server closed the connection (GOAWAY NO_ERROR): it is shutting down or draining";

/** The reason of the client's first "disconnected" line, once it has dialled the server again. */
async function reasonAfterGoaway(transport: string, goaway: Parameters<typeof startControlServer>[0]["goaway"]): Promise<string> {
  const server = await startControlServer({ kind: "ping", mode: "quiet", goaway });
  cleanups.push(() => server.close());
  const host = startHost(server.url, { client: { transport, backoff: { initialMs: 50, maxMs: 100 } } });
  cleanups.push(() => host.stop());
  await waitFor("the client dialled again", () => server.openedAt.length >= 2 && host.logs().some((l) => l.startsWith("log warn disconnected")), 20_000);
  await waitFor("welcomed again", () => host.logs().filter((l) => l.startsWith("log info connected")).length >= 2, 20_000);
  const line = host.logs().find((l) => l.startsWith("log warn disconnected"))!;
  assert.equal(host.script.stderr(), "");
  return (JSON.parse(line.slice(line.indexOf("{"))) as { reason: string }).reason;
}

for (const transport of ["fast", "connect"] as const) {
  test(`${transport}: a GOAWAY NO_ERROR after the welcome that refuses the stream: the server shuts down or drains; the client dials again`, async () => {
    assert.equal(await reasonAfterGoaway(transport, { code: NO_ERROR }), draining);
  });

  test(`${transport}: a GOAWAY NO_ERROR that lets the stream finish, then the connection closed: the same words, with the debug data escaped`, async () => {
    const reason = await reasonAfterGoaway(transport, { code: NO_ERROR, lastStream: "stream", debug: Buffer.from("drain\r\nlog error forged\x1b[31m"), endAfterMs: 100 });
    assert.equal(reason, 'the server closed the connection (GOAWAY NO_ERROR, debug data "drain\\r\\nlog error forged\\u001b[31m"): it is shutting down or draining');
  });

  test(`${transport}: a GOAWAY with an error code is named, its long debug data cut`, async () => {
    const reason = await reasonAfterGoaway(transport, { code: ENHANCE_YOUR_CALM, debug: Buffer.alloc(10_000, "x") });
    assert.match(reason, /^the server closed the connection with an error \(GOAWAY ENHANCE_YOUR_CALM, debug data "x{100}…"\)$/);
  });
}

test("a GOAWAY with a code HTTP/2 does not define is named by its number", async () => {
  assert.equal(await reasonAfterGoaway("fast", { code: 0x1f }), "the server closed the connection with an error (GOAWAY 0x1f)");
});

test("a promproxy server's graceful close: its status's words, not the GOAWAY that follows", async () => {
  const server = await startServer();
  const lines: string[] = [];
  const line = (level: string) => (message: string, fields?: { reason?: string }) => lines.push(`${level} ${message} ${fields?.reason ?? ""}`);
  const logger = { debug() {}, info: line("info"), warn: line("warn"), error: line("error") };
  const client = createClient({ name: "app-1", serverUrl: server.url, registry: testRegistry(), logger, backoff: { initialMs: 50, maxMs: 100 } });
  await client.start();
  await client.ready({ timeoutMs: 10_000 });
  await server.server.close({ graceMs: 500, drainDelayMs: 0 });
  await waitFor("the disconnect", () => lines.some((l) => l.startsWith("warn disconnected")));
  await client.stop();
  assert.deepEqual(lines.filter((l) => l.startsWith("warn disconnected")), ["warn disconnected the server is shutting down"]);
});
