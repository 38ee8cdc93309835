/**
 * Logging as operators run it: pino loggers handed to the server and the
 * client keep every field; the CLIs write one JSON object per line with
 * stable names, and never a secret.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { Writable } from "node:stream";
import { test } from "node:test";
import { pino } from "pino";
import { createClient } from "../../src/client/index.ts";
import { createServer } from "../../src/server/index.ts";
import { proxyGet, testRegistry, waitFor } from "../helpers.ts";
import { runCli } from "./prometheus.ts";

/** A pino logger writing JSON lines into an array. */
function collectingPino() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: "debug" }, sink), lines };
}

test("pino loggers: fields first, a child with component=promproxy, nothing lost", { timeout: 30_000 }, async () => {
  const s = collectingPino();
  const c = collectingPino();
  const server = createServer({ logger: s.logger });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  const client = createClient({ name: "app-1", serverUrl: `http://127.0.0.1:${port}`, registry: testRegistry("app-1"), logger: c.logger });
  try {
    await client.start({ timeoutMs: 10_000 });
    assert.equal((await proxyGet(port, "http://app-1/metrics")).status, 200);
    await waitFor("the server logged the client", () => s.lines.some((l) => l["msg"] === "client connected"));
    const connected = s.lines.find((l) => l["msg"] === "client connected");
    assert.equal(connected?.["component"], "promproxy");
    assert.equal(connected?.["name"], "app-1");
    assert.match(String(connected?.["session"]), /^[0-9a-f-]{36}$/);
    const listening = s.lines.find((l) => l["msg"] === "listening");
    assert.equal(listening?.["port"], port);
    const welcomed = c.lines.find((l) => l["msg"] === "connected");
    assert.equal(welcomed?.["name"], "app-1", JSON.stringify(c.lines));
    assert.equal(welcomed?.["component"], "promproxy");
  } finally {
    await client.stop();
    await server.close();
  }
});

test("--log-format json: one object per line with time, level, component, msg; no secret in any line", { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "promproxy-logs-"));
  const token = "s3cr3t-token-do-not-log-0123456789";
  const tokens = path.join(dir, "tokens");
  const tokenFile = path.join(dir, "token");
  await writeFile(tokens, `${token} app-*\n`);
  await writeFile(tokenFile, `${token}\n`);
  const server = runCli(["server", "--listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug", "--drain-delay", "0s", "--client-token-file", tokens]);
  let client: ReturnType<typeof runCli> | undefined;
  try {
    await server.waitForOutput(/listening on 127\.0\.0\.1:\d+/);
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(server.stdout())?.[1]);
    client = runCli(["client", "--server", `http://127.0.0.1:${port}`, "--name", "app-1", "--token-file", tokenFile, "--target", `http://127.0.0.1:${port}/metrics`, "--log-format", "json", "--log-level", "debug"]);
    await waitFor("the client connected", () => /"msg":"client connected"/.test(server.stderr()), 20_000);
    client.child.kill("SIGTERM");
    await client.exited;
    server.child.kill("SIGTERM");
    await server.exited;
    for (const [who, text] of [["server", server.stderr()], ["client", client.stderr()]] as const) {
      const lines = text.split("\n").filter((l) => l.trim());
      assert.ok(lines.length >= 2, `${who} logged: ${text}`);
      for (const l of lines) {
        const o = JSON.parse(l) as Record<string, unknown>;
        assert.deepEqual(Object.keys(o).slice(0, 4), ["time", "level", "component", "msg"], l);
        assert.ok(!Number.isNaN(Date.parse(String(o["time"]))), l);
        assert.ok(["debug", "info", "warn", "error"].includes(String(o["level"])), l);
      }
      assert.ok(!text.includes(token), `${who} never logs the token`);
    }
  } finally {
    await client?.kill();
    await server.kill();
    await rm(dir, { recursive: true, force: true });
  }
});
