/**
 * Server restarts (in-process and as a killed child process), the http_sd
 * document, and the refusal of a name that is already held.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { createClient, type PromproxyClient } from "../../src/client/index.ts";
import { createServer, silentLogger, type PromproxyServer } from "../../src/server/index.ts";
import { curl, startClient, startServer, testRegistry, waitFor, type TestServer } from "../helpers.ts";
import { freePort, runCli, type CliProcess } from "./prometheus.ts";

/** Scrapes `name` through the server at `port` with `curl -x` and checks the client's own metric. */
async function assertScrapeable(port: number, name: string): Promise<void> {
  const r = await curl(["-x", `http://127.0.0.1:${port}`, `http://${name}/metrics`]);
  assert.equal(r.code, 0, `curl -x for ${name}: ${r.stderr}`);
  assert.match(r.stdout, new RegExp(`^test_up_total\\{name="${name}"\\} 1$`, "m"));
}

/** Waits until `curl -x` gets `name`'s metrics through the server at `port`. */
async function waitScrapeable(port: number, name: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(`${name} to be scrapeable again on port ${port}`, async () => {
    await assertScrapeable(port, name);
    return true;
  }, timeoutMs, 50);
}

interface Tracked {
  client: PromproxyClient;
  connected: number;
  disconnected: number;
}

async function trackedClient(serverUrl: string, name: string): Promise<Tracked> {
  const t: Tracked = { client: undefined as unknown as PromproxyClient, connected: 0, disconnected: 0 };
  t.client = await startClient(serverUrl, name, {
    backoff: { initialMs: 50, maxMs: 300 },
    onConnected: () => t.connected++,
    onDisconnected: () => t.disconnected++,
  });
  return t;
}

test("clients come back on their own after the server closes and a new one listens on the same port", { timeout: 60_000 }, async () => {
  let first: TestServer | undefined;
  let second: PromproxyServer | undefined;
  const tracked: Tracked[] = [];
  try {
    first = await startServer();
    const port = first.port;
    for (const name of ["app-1", "app-2"]) tracked.push(await trackedClient(first.url, name));
    for (const name of ["app-1", "app-2"]) await assertScrapeable(port, name);

    await first.close();
    await waitFor("both clients to notice the server went away", () => tracked.every((t) => t.disconnected === 1 && t.client.state === "connecting"));
    const down = await curl(["-x", `http://127.0.0.1:${port}`, "http://app-1/metrics"]);
    assert.notEqual(down.code, 0, "nothing listens on the port in between");

    second = createServer({ logger: silentLogger });
    assert.equal((await second.listen({ host: "127.0.0.1", port })).port, port);
    const s2 = second;
    await waitFor("both clients to reconnect", () => s2.clients().length === 2, 15_000);
    for (const name of ["app-1", "app-2"]) await waitScrapeable(port, name);
    for (const t of tracked) {
      assert.equal(t.connected, 2);
      assert.equal(t.client.state, "connected");
    }
  } finally {
    for (const t of tracked) await t.client.stop();
    await second?.close({ graceMs: 500 });
    await first?.close();
  }
});

test("clients come back after a server process is killed with SIGKILL and started again on the same port", { timeout: 90_000 }, async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const procs: CliProcess[] = [];
  const tracked: Tracked[] = [];
  const startServerProcess = async () => {
    const p = runCli(["server", "--listen", `127.0.0.1:${port}`, "--log-level", "warn"]);
    procs.push(p);
    await p.waitForOutput(/promproxy server listening on 127\.0\.0\.1:\d+/);
    return p;
  };
  try {
    const p1 = await startServerProcess();
    for (const name of ["app-1", "app-2"]) tracked.push(await trackedClient(url, name));
    for (const name of ["app-1", "app-2"]) await assertScrapeable(port, name);

    p1.child.kill("SIGKILL");
    const exit = await p1.exited;
    assert.equal(exit.signal, "SIGKILL");
    await waitFor("both clients to notice the server died", () => tracked.every((t) => t.disconnected === 1 && t.client.state !== "connected"));

    await startServerProcess();
    for (const name of ["app-1", "app-2"]) await waitScrapeable(port, name);
    const groups = (await (await fetch(`${url}/clients`)).json()) as { targets: string[] }[];
    assert.deepEqual(groups.flatMap((g) => g.targets).sort(), ["app-1", "app-2"]);
    for (const t of tracked) assert.equal(t.connected, 2);
  } finally {
    for (const t of tracked) await t.client.stop();
    for (const p of procs) await p.kill();
  }
});

test("/clients is valid http_sd JSON with each client's labels", async () => {
  const s = await startServer();
  const started: PromproxyClient[] = [];
  try {
    const empty = await fetch(`${s.url}/clients`);
    assert.equal(empty.status, 200);
    assert.match(empty.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(await empty.json(), [], "no clients: an empty array, not null");

    const want: Record<string, Record<string, string>> = {
      "app-1": { team: "alpha", env: "prod" },
      "app-2": { team: "beta", "region": "eu-west-1", weird_value: 'quotes " and \\ and ünïcödé' },
      "app-3": {},
    };
    for (const [name, labels] of Object.entries(want)) started.push(await startClient(s.url, name, { labels }));

    const r = await fetch(`${s.url}/clients`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
    const doc: unknown = await r.json();
    // The http_sd format: an array of {targets: string[], labels: {string: string}}, nothing else.
    assert.ok(Array.isArray(doc), "an array");
    const byName = new Map<string, Record<string, string>>();
    for (const g of doc as unknown[]) {
      assert.ok(g !== null && typeof g === "object" && !Array.isArray(g), `an object: ${JSON.stringify(g)}`);
      const group = g as Record<string, unknown>;
      assert.deepEqual(Object.keys(group).sort(), ["labels", "targets"]);
      const { targets, labels } = group as { targets: unknown; labels: unknown };
      assert.ok(Array.isArray(targets) && targets.length > 0 && targets.every((x) => typeof x === "string"), `targets: ${JSON.stringify(targets)}`);
      assert.ok(labels !== null && typeof labels === "object" && !Array.isArray(labels), `labels: ${JSON.stringify(labels)}`);
      for (const [k, v] of Object.entries(labels as object)) {
        assert.match(k, /^[a-zA-Z_][a-zA-Z0-9_]*$/, "a valid Prometheus label name");
        assert.equal(typeof v, "string", `label ${k}`);
      }
      for (const t of targets as string[]) byName.set(t.replace(/:\d+$/, ""), labels as Record<string, string>);
    }
    assert.deepEqual([...byName.keys()].sort(), Object.keys(want).sort());
    for (const [name, labels] of Object.entries(want)) {
      const got = byName.get(name) ?? {};
      for (const [k, v] of Object.entries(labels)) assert.equal(got[k], v, `${name}: label ${k}`);
      assert.equal(got["__meta_promproxy_client"], name);
    }
  } finally {
    for (const c of started) await c.stop();
    await s.close();
  }
});

test("a name held by a connected client is refused for a second client with AlreadyExists; the second keeps retrying", { timeout: 30_000 }, async () => {
  const s = await startServer();
  const holder = await startClient(s.url, "app-1");
  const errors: ConnectError[] = [];
  // Names are DNS names: case does not make a different one.
  const second = createClient({
    name: "APP-1",
    serverUrl: s.url,
    registry: testRegistry("intruder"),
    logger: silentLogger,
    backoff: { initialMs: 20, maxMs: 50 },
    onError: (e) => errors.push(e),
  });
  let settled: string | undefined;
  void second.start();
  const starting = second.ready().then(
    () => (settled = "resolved"),
    (e: unknown) => {
      settled = "rejected";
      throw e;
    },
  );
  starting.catch(() => {});
  try {
    const sessionId = s.server.clients()[0]?.sessionId;
    await waitFor("two refusals of the second client", () => errors.length >= 2, 10_000, 10);
    for (const e of errors) {
      assert.ok(e instanceof ConnectError);
      assert.equal(e.code, Code.AlreadyExists, `code ${Code[e.code]}: ${e.message}`);
      assert.match(e.rawMessage, /app-1/);
    }
    assert.equal(settled, undefined, "ready() keeps waiting (retrying) on AlreadyExists");
    assert.equal(second.state, "connecting");
    // The holder keeps its name and keeps serving.
    assert.deepEqual(s.server.clients().map((c) => [c.name, c.sessionId]), [["app-1", sessionId]]);
    const r = await curl(["-x", s.url, "http://app-1/metrics"]);
    assert.match(r.stdout, /^test_up_total\{name="app-1"\} 1$/m);
    assert.equal(holder.state, "connected");

    await second.stop();
    await assert.rejects(starting, (e: unknown) => e instanceof ConnectError && e.code === Code.Canceled);
    assert.equal(second.state, "stopped");
  } finally {
    await second.stop();
    await holder.stop();
    await s.close();
  }
});
