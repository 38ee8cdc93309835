/**
 * A server's refusal message, whatever bytes it holds, is one clean line
 * where the client shows it: the CLI's stderr (printed raw, so control
 * characters are escaped: a forged log line or a terminal escape stays
 * visible and harmless; 512 characters at most), and the `reason` field of
 * the library's log lines (one line, control characters as spaces; words
 * when the status came without a message, as it does when the message held
 * a raw control byte, which HTTP/2 drops).
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, test } from "node:test";
import type { ConnectError } from "@connectrpc/connect";
import { createClient } from "../../src/client/index.ts";
import { noMessageWords } from "../../src/client/reason-field.ts";
import { testRegistry, waitFor } from "../helpers.ts";
import { encodeFrame } from "./fixtures/hostile-server/server.ts";
import { runCli } from "./prometheus.ts";

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A raw HTTP/2 server answering every stream with a Trailers-Only INVALID_ARGUMENT carrying `message` as is. */
async function refusingServer(message: string): Promise<string> {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
    s.on("error", () => {});
  });
  server.on("stream", (stream) => {
    stream.on("error", () => {});
    stream.respond({ ":status": 200, "content-type": "application/grpc+proto", "grpc-status": "3", "grpc-message": message }, { endStream: true });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test("CLI: a refusal's message with CR LF, a forged log line and a terminal escape is printed as one escaped line", { timeout: 30_000 }, async () => {
  const url = await refusingServer("line1%0D%0A2026-12-07T00:00:00.000Z ERROR promproxy: forged line %1B[31mred");
  const cli = runCli(["client", "--name", "fwd1", "--server", url, "--target", "http://127.0.0.1:9/metrics"]);
  cleanups.push(() => cli.kill());
  assert.equal((await cli.exited).code, 1);
  const err = cli.stderr();
  assert.doesNotMatch(err, /[\r\u001b]/, `raw control characters on stderr:\n${JSON.stringify(err)}`);
  assert.ok(!err.split("\n").some((l) => l.startsWith("2026-12-07T00:00:00.000Z")), `a forged line on stderr:\n${err}`);
  const line = err.split("\n").find((l) => l.startsWith("promproxy: the server refused"));
  assert.equal(line, 'promproxy: the server refused client "fwd1": line1\\r\\n2026-12-07T00:00:00.000Z ERROR promproxy: forged line \\u001b[31mred (InvalidArgument)');
});

test("CLI: a refusal's message of 2 000 characters is cut to 512", { timeout: 30_000 }, async () => {
  const url = await refusingServer("m".repeat(2000));
  const cli = runCli(["client", "--name", "fwd1", "--server", url, "--target", "http://127.0.0.1:9/metrics"]);
  cleanups.push(() => cli.kill());
  assert.equal((await cli.exited).code, 1);
  const line = cli.stderr().split("\n").find((l) => l.startsWith("promproxy: the server refused"));
  assert.equal(line, `promproxy: the server refused client "fwd1": ${"m".repeat(512)}… (InvalidArgument)`);
});

for (const transport of ["fast", "connect"] as const) {
  test(`library (${transport} transport): the reason field is one line, and says so when the message was dropped`, { timeout: 30_000 }, async () => {
    for (const [message, reason] of [
      ["line1%0D%0A2026-12-07 ERROR forged%1B[31m", "line1 2026-12-07 ERROR forged [31m"],
      ["a\u0001b", noMessageWords], // nghttp2 drops a header field with a raw control byte: no message reaches the client
    ] as const) {
      const url = await refusingServer(message);
      const logged: Record<string, unknown>[] = [];
      const keep = (_m: string, f?: Record<string, unknown>) => void (f && logged.push(f));
      const client = createClient({
        name: "app-1",
        serverUrl: url,
        registry: testRegistry("app-1"),
        logger: { debug: () => {}, info: keep, warn: keep, error: keep },
        ...(transport === "connect" ? { transport } : {}),
      });
      void client.start();
      const e = (await client.ready().then(() => undefined, (x: unknown) => x)) as ConnectError | undefined;
      await client.stop();
      assert.equal(e?.code, 3, "refused with the server's InvalidArgument");
      const reasons = logged.map((f) => f["reason"]).filter((r) => r !== undefined);
      assert.deepEqual(reasons, [reason], JSON.stringify(logged));
    }
  });
}

/** A raw HTTP/2 server speaking the Connect streaming protocol: each stream a welcome, then an end-stream message of `message`. */
async function connectEndingServer(message: string): Promise<string> {
  const envelope = (flags: number, payload: Uint8Array) => {
    const head = Buffer.alloc(5);
    head[0] = flags;
    head.writeUInt32BE(payload.byteLength, 1);
    return Buffer.concat([head, payload]);
  };
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
    s.on("error", () => {});
  });
  server.on("stream", (stream) => {
    stream.on("error", () => {});
    stream.respond({ ":status": 200, "content-type": "application/connect+proto" });
    stream.write(envelope(0, encodeFrame({ frame: { case: "welcome", value: { sessionId: "s", heartbeatInterval: { seconds: 5n, nanos: 0 } } } })));
    stream.end(envelope(2, Buffer.from(JSON.stringify({ error: { code: "unavailable", message } }))));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test("library: what a server says reaches onDisconnected, onError and ready() as one line of at most 1 KiB (a 60 KB end-of-stream message, a 5 KB refusal)", { timeout: 30_000 }, async () => {
  const bounded = (e: ConnectError | undefined, what: string) => {
    assert.ok(e, `${what}: an error`);
    assert.ok(e.message.length <= 1024 + 20, `${what}: a message of ${e.message.length} characters`);
    assert.doesNotMatch(e.message, /[\r\n]/, `${what}: one line`);
    assert.match(e.message, /^\[\w+\] (\w+ )?m{1000}/, `${what}: the message's start, cut: ${e.message.slice(0, 80)}`);
  };
  // Connect protocol: the end-stream message is a body, bounded only by the read limit (60 KB here).
  const disconnects: (ConnectError | undefined)[] = [];
  const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
  const client = createClient({
    name: "app-1",
    serverUrl: await connectEndingServer("m".repeat(60_000) + "\nforged line"),
    registry: testRegistry("app-1"),
    protocol: "connect",
    logger: quiet,
    onDisconnected: (e) => void disconnects.push(e),
  });
  void client.start();
  await waitFor("a disconnect", () => disconnects.length >= 1, 20_000);
  await client.stop();
  bounded(disconnects[0], "onDisconnected");
  assert.equal(disconnects[0]?.code, 14, "the server's code (Unavailable) stays");

  // A refusal (Trailers-Only grpc-message): onError and ready()'s rejection.
  const errors: ConnectError[] = [];
  const refused = createClient({
    name: "app-1",
    serverUrl: await refusingServer("m".repeat(5_000) + "%0D%0Aforged line"),
    registry: testRegistry("app-1"),
    logger: quiet,
    onError: (e) => void errors.push(e),
  });
  void refused.start();
  const e = (await refused.ready().then(() => undefined, (x: unknown) => x)) as ConnectError | undefined;
  await refused.stop();
  bounded(errors[0], "onError");
  bounded(e, "ready()");
  assert.equal(e?.code, 3);
});
