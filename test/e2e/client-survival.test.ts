/**
 * An SDK must never take down the process that embeds it. Each
 * scenario runs an application with an embedded client in its own process,
 * with NO `uncaughtException` / `unhandledRejection` handler (an escaped
 * error kills it with exit code 1), through a minute of a broken server:
 * a SIGSTOPped server process, a server that never welcomes, load-balancer
 * style GOAWAYs, RST_STREAMs and TCP resets, a host name that does not
 * resolve. Then the server heals, and the application must be scrapeable
 * through it. The forwarder (`promproxy client`) goes through the stall too.
 *
 * The minute-long scenarios run concurrently: the file takes about as long as
 * one of them. Time bounds separate "comes back" from "never comes back"; they
 * assert nothing about speed.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { proxyGet, startServer, waitFor } from "../helpers.ts";
import { runScript, type Script } from "./fixtures/faults/util.ts";
import { freePort, runCli, type CliProcess } from "./prometheus.ts";

const faultMs = 60_000;
const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures/survival");
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The application: an embedded client serving `survival_app_up{name="NAME"} 1`, with no crash handlers. */
function startApp(serverUrl: string, name: string, options: object = {}): Script & { alive(): boolean } {
  const app = runScript(path.join(fixtures, "client-app.ts"), [serverUrl, name, JSON.stringify(options)]);
  let exited = false;
  void app.exited.then(() => (exited = true));
  return Object.assign(app, { alive: () => !exited });
}

function assertAlive(app: { alive(): boolean; stderr(): string }, what: string) {
  assert.ok(app.alive(), `the application died during ${what}:\n${app.stderr()}`);
  assert.doesNotMatch(app.stderr(), /Unhandled|uncaught|Error/i, "nothing escaped to the host's stderr");
}

/** Waits until `uri` is scrapeable through the server's HTTP port with a body matching `body`; resolves with the ms it took. */
async function scrapeable(port: number, uri: string, body: RegExp, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  await waitFor(`${uri} scrapeable through port ${port}`, async () => {
    const r = await proxyGet(port, uri);
    return r.status === 200 && body.test(r.body.toString());
  }, timeoutMs, 100);
  return performance.now() - t0;
}

/** Lines of `app` matching `pattern`. */
const count = (app: Script, pattern: RegExp) => app.lines().filter((l) => pattern.test(l)).length;

/** A faulty-server.ts process, with its two ports. */
async function startFaultyServer(mode: "never-welcome" | "goaway" | "rst") {
  const s = runScript(path.join(fixtures, "faulty-server.ts"), [mode]);
  const clientPort = Number((await s.waitLine(/^client-port \d+$/)).split(" ")[1]);
  const scrapePort = Number((await s.waitLine(/^scrape-port \d+$/)).split(" ")[1]);
  return { s, clientPort, scrapePort };
}

describe("an application embedding the client survives a minute of a broken server and is scrapeable after", { concurrency: true }, () => {
  test("server process SIGSTOPped for a minute: the embedded client and the forwarder stay up, and are back after SIGCONT", { timeout: 150_000 }, async (t) => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const exporter = http.createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      res.end("forwarded_metric 1\n");
    });
    let server: CliProcess | undefined;
    let app: ReturnType<typeof startApp> | undefined;
    let forwarder: CliProcess | undefined;
    try {
      await new Promise<void>((r) => exporter.listen(0, "127.0.0.1", r));
      const target = `http://127.0.0.1:${(exporter.address() as AddressInfo).port}/metrics`;
      server = runCli(["server", "--listen", `127.0.0.1:${port}`, "--log-level", "warn"]);
      await server.waitForOutput(/promproxy server listening on/);
      app = startApp(url, "app-stall");
      forwarder = runCli(["client", "--server", url, "--name", "fwd-stall", "--target", target, "--log-level", "warn"]);
      await app.waitLine(/^connected /);
      await scrapeable(port, "http://fwd-stall/metrics", /^forwarded_metric 1$/m, 20_000);

      server.child.kill("SIGSTOP");
      await pause(faultMs);
      assertAlive(app, "the stall");
      assert.equal(forwarder.child.exitCode, null, `the forwarder died during the stall:\n${forwarder.stderr()}`);
      // It noticed (HTTP/2 PING timeout), and its attempts on the stalled server ended at the welcome timeout.
      assert.ok(count(app, /^disconnected Unavailable$/) >= 1, app.lines().join("\n"));
      assert.ok(count(app, /^error DeadlineExceeded no welcome from the server within 10s$/) >= 1, app.lines().join("\n"));

      server.child.kill("SIGCONT");
      const appMs = await scrapeable(port, "http://app-stall/metrics", /^survival_app_up\{name="app-stall"\} 1$/m, 30_000);
      // The forwarder keeps the default backoff (up to 30 s between attempts).
      const fwdMs = await scrapeable(port, "http://fwd-stall/metrics", /^forwarded_metric 1$/m, 45_000);
      assertAlive(app, "the recovery");
      assert.equal(forwarder.child.exitCode, null, forwarder.stderr());
      assert.doesNotMatch(forwarder.stderr(), /Unhandled|uncaught/i);
      t.diagnostic(`after SIGCONT: app scrapeable in ${appMs.toFixed(0)} ms, forwarder in ${fwdMs.toFixed(0)} ms`);
    } finally {
      server?.child.kill("SIGCONT");
      await app?.kill();
      await forwarder?.kill();
      await server?.kill();
      exporter.close();
    }
  });

  test("a server that accepts the stream and never welcomes: each attempt ends at the welcome timeout, and the client connects once the server heals", { timeout: 150_000 }, async () => {
    const { s, clientPort, scrapePort } = await startFaultyServer("never-welcome");
    let app: ReturnType<typeof startApp> | undefined;
    try {
      app = startApp(`http://127.0.0.1:${clientPort}`, "app-silent"); // default welcomeTimeoutMs (10 s, doubling to 60 s)
      await pause(faultMs);
      assertAlive(app, "a minute of a silent server");
      assert.equal(count(app, /^connected /), 0);
      const waits = app.lines().flatMap((l) => /^error DeadlineExceeded no welcome from the server within (\d+)s$/.exec(l)?.[1] ?? []);
      assert.deepEqual(waits.slice(0, 2), ["10", "20"], `attempts that timed out, each waiting twice the last:\n${app.lines().join("\n")}`);
      assert.ok(waits.length <= 3, `attempts that timed out: ${waits.length}\n${app.lines().join("\n")}`);

      s.send("heal");
      await s.waitLine(/^healed/);
      await scrapeable(scrapePort, "http://app-silent/metrics", /^survival_app_up\{name="app-silent"\} 1$/m, 30_000);
      assertAlive(app, "the recovery");
    } finally {
      await app?.kill();
      await s.kill();
    }
  });

  for (const mode of ["goaway", "rst"] as const) {
    const what = mode === "goaway"
      ? "GOAWAYs from a load balancer (on the idle connection, with the stream open, too_many_pings)"
      : "RST_STREAMs (CANCEL, INTERNAL_ERROR) and TCP resets";
    test(`a minute of ${what}, a second into every stream: the client reconnects every time and is scrapeable after`, { timeout: 150_000 }, async () => {
      const { s, clientPort, scrapePort } = await startFaultyServer(mode);
      const name = `app-${mode}`;
      let app: ReturnType<typeof startApp> | undefined;
      try {
        app = startApp(`http://127.0.0.1:${clientPort}`, name);
        await pause(faultMs);
        assertAlive(app, `a minute of ${what}`);
        const connects = count(app, /^connected /);
        const drops = count(app, /^disconnected /);
        // About one cycle per 1.1 s; anything well above a handful shows it kept coming back.
        assert.ok(connects >= 10 && drops >= 9, `connected ${connects} times, disconnected ${drops} times\n${app.lines().slice(-20).join("\n")}`);

        s.send("heal");
        await s.waitLine(/^healed/);
        await scrapeable(scrapePort, `http://${name}/metrics`, new RegExp(`^survival_app_up\\{name="${name}"\\} 1$`, "m"), 30_000);
        assertAlive(app, "the recovery");
      } finally {
        await app?.kill();
        await s.kill();
      }
    });
  }

  test("the server's host name does not resolve for a minute: the client retries, and connects once it does", { timeout: 150_000 }, async () => {
    const server = await startServer();
    let app: ReturnType<typeof startApp> | undefined;
    try {
      app = startApp(`http://no-such-host.invalid:${server.port}`, "app-dns", { healDns: true });
      await pause(faultMs);
      assertAlive(app, "a minute of DNS failures");
      assert.equal(count(app, /^connected /), 0);
      assert.ok(count(app, /^error Unavailable .*ENOTFOUND/) >= 10, app.lines().slice(-5).join("\n"));

      app.send("heal-dns");
      await scrapeable(server.port, "http://app-dns/metrics", /^survival_app_up\{name="app-dns"\} 1$/m, 30_000);
      assertAlive(app, "the recovery");
    } finally {
      await app?.kill();
      await server.close();
    }
  });

  test("connect-node's Http2SessionManager still crashes a process where our wrapper does not (src/client/h2-connection.ts is still needed)", { timeout: 60_000 }, async () => {
    const run = async (which: "upstream" | "guarded", scenario: "stall" | "goaway-idle") => {
      const p = runScript(path.join(fixtures, "session-manager-process.ts"), [which, scenario]);
      const exit = await p.exited;
      return { ...exit, out: p.lines().join("\n"), err: p.stderr() };
    };
    const [upStall, upGoaway, guardedStall, guardedGoaway] = await Promise.all([
      run("upstream", "stall"),
      run("upstream", "goaway-idle"),
      run("guarded", "stall"),
      run("guarded", "goaway-idle"),
    ]);
    const fixed = "connect-node no longer crashes here: the wrapper in src/client/h2-connection.ts may go";
    assert.equal(upStall.code, 1, `${fixed} (stall)\n${upStall.out}${upStall.err}`);
    assert.match(upStall.err, /Unhandled 'error' event[\s\S]*PING timed out/);
    assert.equal(upGoaway.code, 1, `${fixed} (connect-es#1768)\n${upGoaway.out}${upGoaway.err}`);
    assert.match(upGoaway.err, /Unhandled 'error' event[\s\S]*received GOAWAY without any open streams/);
    for (const g of [guardedStall, guardedGoaway]) {
      assert.equal(g.code, 0, g.err);
      assert.equal(g.out, "survived");
    }
  });
});
