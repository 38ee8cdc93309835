/**
 * The ten mistakes of a first hour with promproxy, made the way a user makes
 * them (real processes, real sockets), and the one message each gets: wrong
 * token, wrong port, server down at start, TLS both ways, the same name
 * twice, the exporter down, a config typo, an unknown flag, a port in use
 * (test/e2e/cli.test.ts), and Prometheus without proxy_url. Each message is
 * printed as a diagnostic, for the troubleshooting guide.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { after, before, test, type TestContext } from "node:test";
import { tempDir, testPki, type CertFiles } from "../auth-certs.ts";
import { curl, waitFor } from "../helpers.ts";
import { freePort, runCli, startPrometheus, type CliProcess } from "./prometheus.ts";

const tmp = tempDir("promproxy-first-hour-");
let serverCert: CertFiles;
const file = (name: string, text: string) => {
  const p = path.join(tmp.dir, name);
  fs.writeFileSync(p, text);
  return p;
};
before(async () => {
  ({ server: serverCert } = await testPki(tmp.dir));
});
after(() => tmp.remove());

async function startServerCli(args: string[] = []): Promise<{ cli: CliProcess; port: number }> {
  const cli = runCli(["server", "--listen", "127.0.0.1:0", "--drain-delay", "0s", "--warmup", "0s", ...args]);
  await cli.waitForOutput(/listening on 127\.0\.0\.1:\d+/);
  return { cli, port: Number(/listening on 127\.0\.0\.1:(\d+)/.exec(cli.stdout())?.[1]) };
}

function forwarder(name: string, server: string, target: string, more: string[] = []): CliProcess {
  return runCli(["client", "--name", name, "--server", server, "--target", target, ...more]);
}

/** Waits for a line of `p`'s stderr matching `pattern`; returns it (time stamp cut) and prints it. */
async function line(t: TestContext, p: CliProcess, pattern: RegExp, what: string): Promise<string> {
  const found = await waitFor(what, () => p.stderr().split("\n").find((l) => pattern.test(l)), 20_000).catch((e: Error) => {
    throw new Error(`${e.message}\nstderr:\n${p.stderr()}`);
  });
  const shown = (found ?? "").replace(/^\S+Z /, "");
  t.diagnostic(`${what}: ${shown}`);
  return shown;
}

/** An HTTP/1.1 server that is not promproxy (an exporter, the app itself). */
async function plainHttp(): Promise<{ port: number; close(): void }> {
  const s = http.createServer((_req, res) => res.end("hello\n"));
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return { port: (s.address() as AddressInfo).port, close: () => s.close() };
}

test("a wrong token: the forwarder exits 1 with the server's refusal", { timeout: 60_000 }, async (t) => {
  const { cli, port } = await startServerCli(["--client-token-file", file("tokens", "right-token-0123456789 app-*\n")]);
  const c = forwarder("app-1", `http://127.0.0.1:${port}`, `http://127.0.0.1:${port}/metrics`, ["--token-file", file("wrong", "wrong-token-0123456789\n")]);
  try {
    assert.equal((await c.exited).code, 1);
    const last = c.stderr().trim().split("\n").at(-1) ?? "";
    t.diagnostic(`wrong token: ${last}`);
    assert.match(last, /^promproxy: the server refused client "app-1": .*\(Unauthenticated\)$/);
  } finally {
    await c.kill();
    await cli.kill();
  }
});

test("a wrong port, then the server coming up: 'nothing listens', then connected", { timeout: 60_000 }, async (t) => {
  const port = await freePort();
  const c = forwarder("app-1", `http://127.0.0.1:${port}`, `http://127.0.0.1:${port}/metrics`);
  let cli: CliProcess | undefined;
  try {
    const l = await line(t, c, /connection attempt failed/, "wrong port / server down");
    assert.match(l, new RegExp(`reason="nothing listens on 127\\.0\\.0\\.1:${port} \\(connection refused\\): is the server running, and is the port right\\?"`));
    cli = runCli(["server", "--listen", `127.0.0.1:${port}`]);
    await line(t, c, /INFO promproxy: connected/, "server up later");
    assert.equal(c.stderr().match(/WARN promproxy: connection attempt failed/g)?.length, 1, `one line per reason, not per retry:\n${c.stderr()}`);
  } finally {
    await c.kill();
    await cli?.kill();
  }
});

test("a port that is no promproxy server (an exporter's, the app's): 'it answered HTTP/1.1'", { timeout: 60_000 }, async (t) => {
  const h = await plainHttp();
  const c = forwarder("app-1", `http://127.0.0.1:${h.port}`, `http://127.0.0.1:${h.port}/`);
  try {
    const l = await line(t, c, /connection attempt failed/, "HTTP/1.1 port");
    assert.match(l, new RegExp(`reason="127\\.0\\.0\\.1:${h.port} is not a promproxy server \\(it answered HTTP/1\\.1\\)"`));
  } finally {
    await c.kill();
    h.close();
  }
});

test("TLS both ways: each side says which scheme to use", { timeout: 90_000 }, async (t) => {
  const tlsServer = await startServerCli(["--tls-cert-file", serverCert.certFile, "--tls-key-file", serverCert.keyFile]);
  const clear = await startServerCli();
  const toTls = forwarder("app-1", `http://127.0.0.1:${tlsServer.port}`, "http://127.0.0.1:1/");
  const toClear = forwarder("app-2", `https://127.0.0.1:${clear.port}`, "http://127.0.0.1:1/");
  try {
    assert.match(await line(t, toTls, /connection attempt failed/, "http:// client, TLS server"), /reason="the server speaks TLS: use https:\/\/"/);
    assert.match(await line(t, tlsServer.cli, /cleartext connection on this TLS port/, "TLS server's log"), /must use https:\/\//);
    assert.match(await line(t, toClear, /connection attempt failed/, "https:// client, cleartext server"), /reason="the server is not TLS: use http:\/\/"/);
    assert.match(await line(t, clear.cli, /TLS connection on this cleartext port/, "cleartext server's log"), /must use http:\/\//);
    // Curl (or Prometheus) with http:// on the TLS port.
    await curl([`http://127.0.0.1:${tlsServer.port}/clients`]);
    assert.match(await line(t, tlsServer.cli, /HTTP\/1\.1 request on this TLS port/, "curl http:// on the TLS port"), /must use https:\/\//);
  } finally {
    await Promise.all([toTls.kill(), toClear.kill(), tlsServer.cli.kill(), clear.cli.kill()]);
  }
});

test("the same name twice: the second is told the name is held, and retries", { timeout: 60_000 }, async (t) => {
  const { cli, port } = await startServerCli();
  const url = `http://127.0.0.1:${port}`;
  const first = forwarder("app-1", url, `${url}/metrics`);
  let second: CliProcess | undefined;
  try {
    await line(t, first, /INFO promproxy: connected/, "first holder");
    second = forwarder("app-1", url, `${url}/metrics`);
    assert.match(await line(t, second, /connection attempt failed/, "same name twice"), /code="AlreadyExists"/);
  } finally {
    await first.kill();
    await second?.kill();
    await cli.kill();
  }
});

test("the exporter down: Prometheus gets a 502 saying so, the forwarder logs it once", { timeout: 60_000 }, async (t) => {
  const { cli, port } = await startServerCli();
  const url = `http://127.0.0.1:${port}`;
  const dead = await freePort();
  const c = forwarder("app-1", url, `9100=http://127.0.0.1:${dead}/metrics`);
  try {
    await line(t, c, /INFO promproxy: connected/, "forwarder connected");
    const r = await curl(["-s", "-w", "\\n%{http_code}", "-x", url, "http://app-1:9100/metrics"]);
    t.diagnostic(`exporter down, Prometheus sees: ${r.stdout.replace(/\n/g, " | ")}`);
    assert.match(r.stdout, /^promproxy: client "app-1": target http:\/\/127\.0\.0\.1:\d+\/metrics: connection refused .*\n+502$/);
    await line(t, c, /target failing/, "exporter down, forwarder log");
  } finally {
    await c.kill();
    await cli.kill();
  }
});

test("a config typo and an unknown flag: one line, the nearest name, exit 2", { timeout: 60_000 }, async (t) => {
  const cases: [string[], RegExp][] = [
    [["client", "--config", file("fwd.yml", "name: app-1\nserver: http://127.0.0.1:1\ntragets: [http://127.0.0.1:2/]\n")], /unknown key "tragets" \(did you mean "targets"\?\)$/],
    [["server", "--config", file("srv.yml", "listen: 127.0.0.1:0\nmax-client: 10\n")], /unknown key "max-client" \(did you mean "max-clients"\?\)$/],
    [["client", "--nmae", "app-1"], /^promproxy: unknown option --nmae \(did you mean --name\?\); run "promproxy client --help" for the options$/],
    [["sever"], /^promproxy: unknown command "sever" \(did you mean server\?\); run "promproxy --help" for the commands$/],
  ];
  for (const [args, want] of cases) {
    const p = runCli(args);
    assert.equal((await p.exited).code, 2, p.stderr());
    const lines = p.stderr().trim().split("\n");
    t.diagnostic(`${args.map((a) => path.basename(a)).join(" ")}: ${p.stderr().trim()}`);
    assert.equal(lines.length, 1, p.stderr());
    assert.match(lines[0] ?? "", want);
  }
  const env = runCli(["server", "--listen", "127.0.0.1:0"], { PROMPROXY_LISTN: "127.0.0.1:0" });
  assert.equal((await env.exited).code, 2);
  t.diagnostic(`PROMPROXY_LISTN: ${env.stderr().trim()}`);
  assert.match(env.stderr(), /^promproxy: PROMPROXY_LISTN is not a setting of promproxy server \(did you mean PROMPROXY_LISTEN\?\)/);
});

test("Prometheus without proxy_url: the target is down with a DNS error for the client's name", { timeout: 120_000 }, async (t) => {
  const { cli, port } = await startServerCli();
  const url = `http://127.0.0.1:${port}`;
  const c = forwarder("app-1", url, `9100=${url}/metrics`);
  const prom = await startPrometheus({ serverUrl: url, scrapeConfigs: `scrape_configs:\n  - job_name: promproxy\n    http_sd_configs:\n      - url: ${url}/clients\n        refresh_interval: 1s\n` });
  try {
    const target = (await waitFor("a failed scrape", async () => (await prom.targets()).find((x) => x.lastError !== ""), 60_000, 250))!;
    t.diagnostic(`without proxy_url, Prometheus shows: ${target.scrapeUrl}: ${target.lastError}`);
    assert.equal(target.scrapeUrl, "http://app-1:9100/metrics");
    assert.match(target.lastError, /app-1/);
  } finally {
    await prom.stop();
    await c.kill();
    await cli.kill();
  }
});
