/**
 * The `promproxy` command as a user runs it: `demo` (what `npm start` runs) and
 * `server`, as child processes that must exit on their own after a signal.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import type { PromproxyClient } from "../../src/client/index.ts";
import { curl, startClient, waitFor } from "../helpers.ts";
import { freePort, runCli, startPrometheus, type CliProcess, type RunningPrometheus } from "./prometheus.ts";

/** The block a user pastes into prometheus.yml. */
function expectedBlock(url: string): string {
  return `scrape_configs:
  - job_name: promproxy
    proxy_url: ${url}
    http_sd_configs:
      - url: ${url}/clients`;
}

/** GETs `path` (absolute URI for a proxy request) over a keep-alive agent, as Prometheus does, leaving the connection open. */
function keepAliveGet(agent: http.Agent, port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** Sends `signal` and waits for the exit, at most `withinMs` (a hung process fails the test, and is killed). */
async function exitAfter(p: CliProcess, signal: NodeJS.Signals, withinMs: number) {
  p.child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    p.exited,
    new Promise<"hung">((resolve) => (timer = setTimeout(() => resolve("hung"), withinMs))),
  ]);
  clearTimeout(timer);
  if (result === "hung") {
    await p.kill();
    assert.fail(`the process did not exit within ${withinMs / 1000}s of ${signal} (a leaked handle?)\nstdout:\n${p.stdout()}\nstderr:\n${p.stderr()}`);
  }
  return result;
}

test("promproxy demo prints the scrape config, serves its metrics through curl -x and a real Prometheus, and exits 0 on SIGINT", { timeout: 120_000 }, async (t) => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const demo = runCli(["demo", "--listen", `127.0.0.1:${port}`]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let prom: RunningPrometheus | undefined;
  try {
    await demo.waitForOutput(/Ctrl-C stops/);
    assert.ok(demo.stdout().includes(expectedBlock(url)), `the scrape_configs block for ${url}:\n${demo.stdout()}`);
    assert.match(demo.stdout(), /client "demo" connected/);

    const r = await curl(["-x", url, "http://demo/metrics"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^demo_temperature_celsius [\d.e+-]+$/m);
    assert.match(r.stdout, /^# TYPE demo_requests_total counter$/m);

    await t.test("a real Prometheus configured with exactly the printed block scrapes the demo", async () => {
      const block = demo.stdout().slice(demo.stdout().indexOf("scrape_configs:")).split(/\n\n/)[0] ?? "";
      prom = await startPrometheus({ serverUrl: url, scrapeConfigs: block });
      const p = prom;
      await waitFor(
        "up == 1 and demo_temperature_celsius in Prometheus",
        async () => (await p.query(`up{job="promproxy"} == 1`)).length === 1 && (await p.query(`demo_temperature_celsius{env="demo"}`)).length === 1,
        60_000,
        250,
      ).catch((e: Error) => {
        throw new Error(`${e.message}\nPrometheus log:\n${p.log()}`);
      });
      await p.stop();
    });

    // Like Prometheus, leave an idle keep-alive connection open: shutting down must not wait for it.
    const ka = await keepAliveGet(agent, port, "http://demo/metrics");
    assert.equal(ka.status, 200);
    const exit = await exitAfter(demo, "SIGINT", 10_000);
    assert.deepEqual(exit, { code: 0, signal: null }, `stderr:\n${demo.stderr()}`);
  } finally {
    agent.destroy();
    await prom?.stop();
    await demo.kill();
  }
});

test("promproxy server prints the scrape config, relays a client, and exits 0 on SIGTERM without waiting out the grace", { timeout: 60_000 }, async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // A long grace: idle connections and connected clients must not hold the shutdown that long.
  const server = runCli(["server", "--listen", `127.0.0.1:${port}`, "--shutdown-grace", "60s"]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let client: PromproxyClient | undefined;
  try {
    await server.waitForOutput(/http_sd_configs:\n\s+- url: \S+\/clients/);
    assert.match(server.stdout(), new RegExp(`promproxy server listening on 127\\.0\\.0\\.1:${port}`));
    assert.ok(server.stdout().includes(expectedBlock(url)), server.stdout());

    client = await startClient(url, "app-1", { labels: { env: "cli" } });
    const r = await curl(["-x", url, "http://app-1/metrics"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^test_up_total\{name="app-1"\} 1$/m);

    const ka = await keepAliveGet(agent, port, "/clients");
    assert.equal(ka.status, 200);
    assert.match(ka.body, /"env":"cli"/);
    const disconnected = new Promise<void>((resolve) => {
      const c = client;
      void waitFor("the client to see the server go", () => c?.state === "connecting", 30_000).then(() => resolve(), () => resolve());
    });

    const exit = await exitAfter(server, "SIGTERM", 10_000);
    assert.deepEqual(exit, { code: 0, signal: null }, `stderr:\n${server.stderr()}`);
    await disconnected;
    assert.notEqual(client.state, "connected");
  } finally {
    agent.destroy();
    await client?.stop();
    await server.kill();
  }
});

test("promproxy with a bad flag exits 2 with one line naming it, the nearest flag and where the usage is", async () => {
  const p = runCli(["server", "--listne", "127.0.0.1:0"]);
  try {
    const exit = await p.exited;
    assert.deepEqual(exit, { code: 2, signal: null });
    assert.equal(p.stderr(), 'promproxy: unknown option --listne (did you mean --listen?); run "promproxy server --help" for the options\n');
  } finally {
    await p.kill();
  }
});

test("promproxy server on a port in use exits 1 with one line, no stack", { timeout: 30_000 }, async () => {
  const first = runCli(["server", "--listen", "127.0.0.1:0"]);
  try {
    await first.waitForOutput(/listening on 127\.0\.0\.1:\d+/);
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(first.stdout())?.[1]);
    const second = runCli(["server", "--listen", `127.0.0.1:${port}`, "--log-level", "warn"]);
    assert.deepEqual(await second.exited, { code: 1, signal: null });
    assert.equal(second.stderr(), `promproxy: port ${port} is in use (another promproxy or program listens there): choose another with --listen\n`);
    assert.equal(second.stdout(), "");
  } finally {
    await first.kill();
  }
});

test("promproxy server reads --config or PROMPROXY_CONFIG, and names every PROMPROXY_* variable it ignores", { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-srv-config-"));
  try {
    for (const how of ["flag", "env"] as const) {
      const port = await freePort();
      const file = path.join(dir, `srv-${how}.yaml`);
      fs.writeFileSync(file, `listen: 127.0.0.1:${port}\ndrain-delay: 0s\nlog-level: warn\n`);
      const p = runCli(["server", ...(how === "flag" ? ["--config", file] : [])], { ...(how === "env" ? { PROMPROXY_CONFIG: file } : {}), PROMPROXY_SERVER: "http://proxy:8080" });
      try {
        await p.waitForOutput(new RegExp(`listening on 127\\.0\\.0\\.1:${port}`));
        await waitFor("the warning", () => p.stderr().includes("PROMPROXY_SERVER is a setting of promproxy client, not server: ignored"));
        assert.deepEqual(await exitAfter(p, "SIGTERM", 10_000), { code: 0, signal: null });
      } finally {
        await p.kill();
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
