/**
 * `promproxy client` as a process: usage errors, a YAML config with
 * environment variables over it, secret files, reconnecting after a server
 * restart with one log line per state change, and clean stops.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { bearerAuth, createServer, silentLogger, type PromproxyServer } from "../../src/server/index.ts";
import { proxyGet, waitFor } from "../helpers.ts";
import { freePort, runCli } from "./prometheus.ts";

async function startEcho(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(`auth=${req.headers["authorization"] ?? "none"} path=${req.url}\n`);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

test("usage errors exit 2 with a message; --help exits 0", async () => {
  const help = runCli(["client", "--help"]);
  assert.deepEqual(await help.exited, { code: 0, signal: null });
  assert.match(help.stdout(), /^usage: promproxy client --name NAME --server URL --target \[PORT=\]URL/);

  const noName = runCli(["client", "--server", "http://127.0.0.1:1", "--target", "http://127.0.0.1:2/"], { PROMPROXY_NAME: "" });
  assert.equal((await noName.exited).code, 2);
  assert.match(noName.stderr(), /^promproxy: --name is required/);

  const port80 = runCli(["client", "--name", "a", "--server", "http://127.0.0.1:1", "--target", "80=http://127.0.0.1:2/"]);
  assert.equal((await port80.exited).code, 2);
  assert.match(port80.stderr(), /^promproxy: target 1 \(http:\/\/127\.0\.0\.1:2\/\): port 80 cannot be told apart/);

  const badName = runCli(["client", "--name", "not_a_dns_name!", "--server", "http://127.0.0.1:1", "--target", "http://127.0.0.1:2/"]);
  assert.equal((await badName.exited).code, 2);
  assert.match(badName.stderr(), /^promproxy: option name: /);
});

test("a YAML config with env over it, secret files re-read per scrape, SIGINT exits 0", { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-fwd-cli-"));
  const echo = await startEcho();
  const server = createServer({ logger: silentLogger });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${port}`;
  const cli = (() => {
    fs.writeFileSync(path.join(dir, "token"), "first-token\n");
    fs.writeFileSync(
      path.join(dir, "fwd.yml"),
      `name: from-file
server: ${url}
labels: { env: file, dc: one }
targets:
  - port: 9100
    url: http://127.0.0.1:${echo.port}/metrics
    labels: { exporter: echo }
    bearer-token-file: ${path.join(dir, "token")}
  - 9200=http://127.0.0.1:${echo.port}/
`,
    );
    return runCli(["client", "--config", path.join(dir, "fwd.yml")], { PROMPROXY_NAME: "from-env", PROMPROXY_LABEL: "env=env-wins" });
  })();
  try {
    await waitFor("the client to connect", () => server.clients().some((c) => c.name === "from-env"), 20_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${cli.stdout()}\n${cli.stderr()}`);
    });
    const groups = (await (await fetch(`${url}/clients`)).json()) as { targets: string[]; labels: Record<string, string> }[];
    const g = new Map(groups.map((x) => [x.targets[0], x.labels]));
    assert.deepEqual([...g.keys()].sort(), ["from-env:9100", "from-env:9200"]);
    assert.equal(g.get("from-env:9100")?.["env"], "env-wins");
    assert.equal(g.get("from-env:9100")?.["dc"], "one");
    assert.equal(g.get("from-env:9100")?.["exporter"], "echo");
    assert.equal(g.get("from-env:9200")?.["exporter"], undefined);

    const r1 = await proxyGet(port, "http://from-env:9100/metrics");
    assert.equal(r1.body.toString(), "auth=Bearer first-token path=/metrics\n");
    fs.writeFileSync(path.join(dir, "token"), "rotated-token\n");
    const r2 = await proxyGet(port, "http://from-env:9100/metrics");
    assert.equal(r2.body.toString(), "auth=Bearer rotated-token path=/metrics\n");
    const r3 = await proxyGet(port, "http://from-env:9200/anything?x=1");
    assert.equal(r3.body.toString(), "auth=none path=/anything?x=1\n");

    cli.child.kill("SIGINT");
    assert.deepEqual(await cli.exited, { code: 0, signal: null }, cli.stderr());
    assert.doesNotMatch(cli.stderr() + cli.stdout(), /first-token|rotated-token/, "secrets are never logged");
  } finally {
    await cli.kill();
    await server.close({ graceMs: 100 });
    await echo.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the forwarder reconnects after a server restart, logging each state change once", { timeout: 60_000 }, async () => {
  const echo = await startEcho();
  const port = await freePort();
  let server: PromproxyServer | undefined = createServer({ logger: silentLogger });
  await server.listen({ host: "127.0.0.1", port });
  const cli = runCli([
    "client", "--name", "phoenix", "--server", `http://127.0.0.1:${port}`,
    "--target", `9100=http://127.0.0.1:${echo.port}/metrics`, "--metrics-listen", "127.0.0.1:0",
  ]);
  try {
    await cli.waitForOutput(/own metrics on (http:\S+)/);
    const ownMetrics = /own metrics on (http:\S+)/.exec(cli.stdout())?.[1] as string;
    const first = server;
    await waitFor("the first connection", () => first.clients().some((c) => c.name === "phoenix"), 20_000);
    await first.close({ graceMs: 100 });
    server = undefined;
    // Down for a while: several attempts fail the same way.
    await waitFor("a few failed attempts", async () => {
      const m = /^promproxy_client_connect_failures_total\{code="unavailable"\} (\d+)$/m.exec(await (await fetch(ownMetrics)).text());
      return Number(m?.[1] ?? 0) >= 3;
    }, 20_000, 100);
    const second = createServer({ logger: silentLogger });
    server = second;
    await second.listen({ host: "127.0.0.1", port });
    await waitFor("the client to come back", () => second.clients().some((c) => c.name === "phoenix"), 20_000);
    const r = await proxyGet(port, "http://phoenix:9100/metrics");
    assert.equal(r.status, 200);

    const text = await (await fetch(ownMetrics)).text();
    assert.match(text, /^promproxy_client_reconnects_total 1$/m);
    assert.match(text, /^promproxy_client_connected 1$/m);
    const log = cli.stderr();
    assert.equal(log.match(/INFO promproxy: connected /g)?.length, 2, log);
    assert.equal(log.match(/WARN promproxy: disconnected /g)?.length, 1, log);
    assert.equal(log.match(/connection attempt failed/g)?.length, 1, `repeats of the same failure are not logged at the default level:\n${log}`);

    cli.child.kill("SIGTERM");
    assert.deepEqual(await cli.exited, { code: 0, signal: null }, cli.stderr());
  } finally {
    await cli.kill();
    await server?.close({ graceMs: 100 });
    await echo.close();
  }
});

test("--token-file authenticates to the server; a refused token ends the process with exit 1", { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-fwd-auth-"));
  const echo = await startEcho();
  const server = createServer({ logger: silentLogger, interceptors: [bearerAuth({ tokens: { "good-token-0123456789": ["edge-*"] }, logger: silentLogger })] });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  fs.writeFileSync(path.join(dir, "good"), "good-token-0123456789\n");
  fs.writeFileSync(path.join(dir, "bad"), "wrong-token-0123456789\n");
  const args = (name: string, token: string) => [
    "client", "--name", name, "--server", `http://127.0.0.1:${port}`, "--target", `9100=http://127.0.0.1:${echo.port}/metrics`, "--token-file", path.join(dir, token),
  ];
  const good = runCli(args("edge-1", "good"));
  const bad = runCli(args("edge-2", "bad"));
  const stolen = runCli(args("db-1", "good"));
  try {
    await waitFor("edge-1 to connect", () => server.clients().some((c) => c.name === "edge-1"), 20_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${good.stderr()}`);
    });
    assert.equal((await proxyGet(port, "http://edge-1:9100/metrics")).status, 200);
    assert.equal((await bad.exited).code, 1, bad.stderr());
    assert.match(bad.stderr(), /promproxy: the server refused client "edge-2": .*\(Unauthenticated\)/);
    assert.equal((await stolen.exited).code, 1, stolen.stderr());
    assert.match(stolen.stderr(), /promproxy: the server refused client "db-1": .*\(PermissionDenied\)/);
    assert.doesNotMatch(bad.stderr() + good.stderr() + stolen.stderr(), /token-0123456789/, "tokens are never logged");
    good.child.kill("SIGTERM");
    assert.equal((await good.exited).code, 0);
  } finally {
    await good.kill();
    await bad.kill();
    await stolen.kill();
    await server.close({ graceMs: 100 });
    await echo.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("an order flood past a target's rate is said once a minute per target, not silently refused (outside review 18b)", { timeout: 60_000 }, async () => {
  const echo = await startEcho();
  const server = createServer({ logger: silentLogger });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  const cli = runCli([
    "client", "--name", "flooded", "--server", `http://127.0.0.1:${port}`, "--target-max-scrapes-per-second", "2",
    "--target", `9100=http://127.0.0.1:${echo.port}/metrics`, "--target", `9200=http://127.0.0.1:${echo.port}/other`,
  ]);
  try {
    await waitFor("the client to connect", () => server.clients().some((c) => c.name === "flooded"), 20_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${cli.stderr()}`);
    });
    const codes: number[] = [];
    for (let i = 0; i < 30; i++) codes.push((await proxyGet(port, "http://flooded:9100/metrics")).status);
    for (let i = 0; i < 10; i++) codes.push((await proxyGet(port, "http://flooded:9200/other")).status);
    const refused = codes.filter((c) => c === 503).length;
    assert.ok(refused >= 20, `most of the flood is refused: ${codes.join(",")}`);
    const said = (target: string) => cli.stderr().split("\n").filter((l) => l.includes("WARN") && l.includes("refusing scrapes") && l.includes(target));
    await waitFor("the refusal to be logged", () => said(`:${echo.port}/other`).length === 1, 10_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${cli.stderr()}`);
    });
    const lines = said(`:${echo.port}/metrics`);
    assert.equal(lines.length, 1, `one line for the first target within the minute, not one per refusal:\n${cli.stderr()}`);
    assert.match(lines[0] as string, /was asked for more than 2 scrapes a second, its maximum \(maxScrapesPerSecond\)/);
    assert.doesNotMatch(cli.stderr(), /target failing/, "a refusal says nothing about the target's health");
  } finally {
    await cli.kill();
    await server.close({ graceMs: 100 });
    await echo.close();
  }
});
