/**
 * A promproxy server over its connection limits refuses a cleartext
 * connection with a one-line HTTP/1.1 503 at accept time, before it reads the
 * HTTP/2 preface. A client on that connection says so (the server refused the
 * connection: too many connections), not "not a promproxy server", and
 * reports it as `Unavailable` (the server is over a limit: retry later), not
 * the `Internal` of the HTTP/2 error the refusal caused.
 */
import assert from "node:assert/strict";
import * as net from "node:net";
import { test } from "node:test";
import { Code, type ConnectError } from "@connectrpc/connect";
import { createClient } from "../../src/client/index.ts";
import { probePort, probedWords } from "../../src/client/transport-words.ts";
import { createServer, silentLogger } from "../../src/server/index.ts";
import { testRegistry, waitFor } from "../helpers.ts";

test("a client over the server's per-address connection limit logs the refusal and its reason", { timeout: 60_000 }, async () => {
  const server = createServer({ logger: silentLogger });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0, maxConnectionsPerAddress: 5 });
  const held: net.Socket[] = [];
  for (let i = 0; i < 5; i++) {
    const s = net.connect(port, "127.0.0.1");
    s.on("error", () => {});
    held.push(s);
    await new Promise((resolve) => s.once("connect", resolve));
  }
  const said: string[] = [];
  const log = (m: string, f?: unknown) => said.push(`${m} ${JSON.stringify(f ?? {})}`);
  const errors: ConnectError[] = [];
  const client = createClient({
    onError: (e) => errors.push(e),
    name: "over-the-limit",
    serverUrl: `http://127.0.0.1:${port}`,
    registry: testRegistry(),
    backoff: { initialMs: 200, maxMs: 1_000 },
    logger: { debug: () => {}, info: () => {}, warn: log, error: log },
  });
  try {
    // The probe over the limit is refused as well, and reads the reason.
    const kind = await probePort("127.0.0.1", port, new AbortController().signal);
    assert.deepEqual(kind, { refused: "too many connections from 127.0.0.1 (5, the maximum per address)" });
    assert.equal(probedWords(kind, new URL(`http://127.0.0.1:${port}`)), `127.0.0.1:${port} refused the connection: too many connections from 127.0.0.1 (5, the maximum per address)`);
    void client.start().catch(() => {});
    const line = await waitFor("the client's words", () => said.find((s) => s.includes("refused the connection")), 20_000);
    assert.match(line ?? "", /refused the connection: too many connections from 127\.0\.0\.1 \(5, the maximum per address\)/);
    assert.match(line ?? "", /"code":"Unavailable"/);
    const refused = errors.find((e) => e.rawMessage.includes("refused the connection"));
    assert.ok(refused, errors.map((e) => e.message).join("\n"));
    assert.equal(refused.code, Code.Unavailable, `${Code[refused.code]}: ${refused.rawMessage}`);
    assert.equal(refused.rawMessage, `127.0.0.1:${port} refused the connection: too many connections from 127.0.0.1 (5, the maximum per address)`);
    assert.ok(!said.some((s) => s.includes("is not a promproxy server")), said.join("\n"));
    // Under the limit again, the client connects.
    held.pop()?.destroy();
    await client.ready({ timeoutMs: 20_000 });
  } finally {
    await client.stop();
    for (const s of held) s.destroy();
    await server.close({ graceMs: 200 });
  }
});
