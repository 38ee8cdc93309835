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

/** A pino logger writing JSON lines into an array (the raw lines too: a repeated key shows only there). */
function collectingPino(options: { name?: string } = {}) {
  const raw: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) {
        if (!l.trim()) continue;
        raw.push(l);
        lines.push(JSON.parse(l) as Record<string, unknown>);
      }
      done();
    },
  });
  return { logger: pino({ level: "debug", ...options }, sink), lines, raw };
}

/** The keys of one JSON line in order, repeats kept (JSON.parse keeps only the last of a repeated key). */
function keysOf(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"(\s*:)?|[{}[\]]/g)) {
    if (m[0] === "{" || m[0] === "[") depth++;
    else if (m[0] === "}" || m[0] === "]") depth--;
    else if (m[2] && depth === 1) keys.push(m[1] ?? "");
  }
  return keys;
}

/**
 * A bunyan-shaped logger (bunyan is not installed): fields first, child()
 * bindings, and every record written as bunyan writes it, its own fields
 * (name, hostname, pid, level, msg, time, v) and then the others.
 */
function fakeBunyan(name: string) {
  const records: string[] = [];
  type Fields = Record<string, unknown>;
  type Log = { [L in "debug" | "info" | "warn" | "error"]: (fields: Fields, msg: string) => void } & { child(more: Fields): Log };
  const make = (bindings: Fields): Log => {
    const write = (level: number) => (fields: Fields, msg: string) => {
      const rec = { name, hostname: "host-1", pid: 42, ...bindings, level, ...fields, msg, time: new Date().toISOString(), v: 0 };
      // bunyan serialises with JSON.stringify on an object: a field named like one of its own overwrites it silently.
      records.push(JSON.stringify(rec));
    };
    return { debug: write(20), info: write(30), warn: write(40), error: write(50), child: (more: Fields) => make({ ...bindings, ...more }) };
  };
  return { logger: make({}), records };
}

test("pino loggers: fields first, a child with component=promproxy, nothing lost", { timeout: 30_000 }, async () => {
  const s = collectingPino();
  const c = collectingPino();
  const server = createServer({ logger: s.logger });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  const client = createClient({ name: "app-1", serverUrl: `http://127.0.0.1:${port}`, registry: testRegistry("app-1"), logger: c.logger });
  try {
    void client.start();
    await client.ready({ timeoutMs: 10_000 });
    assert.equal((await proxyGet(port, "http://app-1/metrics")).status, 200);
    await waitFor("the server logged the client", () => s.lines.some((l) => l["msg"] === "client connected"));
    const connected = s.lines.find((l) => l["msg"] === "client connected");
    assert.equal(connected?.["component"], "promproxy");
    assert.equal(connected?.["client"], "app-1");
    assert.match(String(connected?.["session"]), /^[0-9a-f-]{36}$/);
    const listening = s.lines.find((l) => l["msg"] === "listening");
    assert.equal(listening?.["port"], port);
    const welcomed = c.lines.find((l) => l["msg"] === "connected");
    assert.equal(welcomed?.["client"], "app-1", JSON.stringify(c.lines));
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

test("our fields never collide with pino's or bunyan's own: the service's name survives, the client is `client`", { timeout: 30_000 }, async () => {
  const own = ["name", "hostname", "pid", "level", "time", "msg", "v"];
  const s = collectingPino({ name: "proxy-svc" });
  const c = collectingPino({ name: "checkout-svc" });
  const b = fakeBunyan("checkout-bunyan");
  const server = createServer({ logger: s.logger });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  const client = createClient({ name: "app-9", serverUrl: `http://127.0.0.1:${port}`, registry: testRegistry("app-9"), logger: c.logger });
  const other = createClient({ name: "app-8", serverUrl: `http://127.0.0.1:${port}`, registry: testRegistry("app-8"), logger: b.logger });
  // A server that is not there: the client's failure lines carry fields too.
  const lost = createClient({ name: "app-7", serverUrl: "http://127.0.0.1:1", logger: c.logger, backoff: { initialMs: 50, maxMs: 100 } });
  try {
    await Promise.all([client.start(), other.start(), lost.start()]);
    await Promise.all([client.ready({ timeoutMs: 10_000 }), other.ready({ timeoutMs: 10_000 })]);
    assert.equal((await proxyGet(port, "http://app-9/metrics")).status, 200);
    await waitFor("the lost client's failure logged", () => c.lines.some((l) => l["msg"] === "connection attempt failed"));
    await client.stop();
    await other.stop();
    await waitFor("the server logged both disconnects", () => s.lines.filter((l) => l["msg"] === "client disconnected").length === 2);
  } finally {
    await Promise.all([client.stop(), other.stop(), lost.stop()]);
    await server.close();
  }
  for (const [who, raw, service] of [["server (pino)", s.raw, "proxy-svc"], ["client (pino)", c.raw, "checkout-svc"], ["client (bunyan)", b.records, "checkout-bunyan"]] as const) {
    assert.ok(raw.length >= 2, `${who} logged: ${raw.join("\n")}`);
    for (const line of raw) {
      const keys = keysOf(line);
      assert.equal(new Set(keys).size, keys.length, `${who}: a key repeats in ${line}`);
      const o = JSON.parse(line) as Record<string, unknown>;
      assert.equal(o["name"], service, `${who}: the service's name is kept in ${line}`);
      for (const k of own) assert.ok(!(k in o) || typeof o[k] !== "undefined", line);
    }
  }
  // Bunyan overwrites silently instead of repeating keys: the name must still be the service's on every record.
  assert.ok(b.records.some((l) => (JSON.parse(l) as Record<string, unknown>)["client"] === "app-8"), b.records.join("\n"));
  assert.ok(c.lines.some((l) => l["msg"] === "connected" && l["client"] === "app-9"), c.raw.join("\n"));
  assert.ok(c.lines.some((l) => l["msg"] === "connection attempt failed" && l["client"] === "app-7"), c.raw.join("\n"));
  assert.ok(s.lines.some((l) => l["msg"] === "client connected" && l["client"] === "app-9"), s.raw.join("\n"));
});
