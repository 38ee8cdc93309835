/**
 * The Python example client (examples/python/client.py) against a real server and a real Prometheus:
 * stubs generated from our proto with Debian's grpc_tools, Debian's grpcio and prometheus_client.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { curl, proxyGet, startServer, waitFor, type TestServer } from "../helpers.ts";
import { repoRoot, startPrometheus, stopChild, type RunningPrometheus } from "./prometheus.ts";
import { runScript } from "./fixtures/faults/util.ts";
import { silentStream } from "./silent-stream.ts";

const exampleDir = path.join(repoRoot, "examples/python");
const needs = "import grpc, grpc.aio, grpc_tools.protoc, prometheus_client";

/**
 * A python3 that has Debian's packages. /usr/bin/python3 comes first: Debian installs the packages for it,
 * and a pyenv or virtualenv python3 earlier on the PATH does not see them.
 */
function findPython(): string {
  for (const p of [process.env["PROMPROXY_PYTHON"], "/usr/bin/python3", "python3"]) {
    if (!p) continue;
    try {
      execFileSync(p, ["-c", needs], { stdio: "ignore" });
      return p;
    } catch {}
  }
  throw new Error(
    "the Python example needs python3 with grpcio, grpc_tools and prometheus_client: " +
      "apt-get install -y python3-grpcio python3-grpc-tools python3-prometheus-client (scripts/install-test-deps.sh does this)",
  );
}

interface PyProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function runPython(python: string, args: string[], stubs: string): PyProcess {
  const child = spawn(python, args, {
    cwd: repoRoot,
    env: { ...process.env, PYTHONPATH: stubs, PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr.on("data", (b: Buffer) => (out += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    child.once("error", (e) => {
      out += String(e);
      resolve({ code: null, signal: null });
    });
  });
  return { child, output: () => out, exited };
}

type Group = { targets: string[]; labels: Record<string, string> };
async function listed(s: TestServer, name: string): Promise<Group | undefined> {
  const groups = (await (await fetch(`${s.url}/clients`)).json()) as Group[];
  return groups.find((g) => g.targets.some((t) => t === name || t.startsWith(`${name}:`)));
}

/** Splits `curl -i` output into status, lower-case headers and body. */
function parseCurl(text: string): { status: number; headers: Record<string, string>; body: string } {
  const cut = text.indexOf("\r\n\r\n");
  const [statusLine = "", ...lines] = text.slice(0, cut).split("\r\n");
  const headers: Record<string, string> = {};
  for (const l of lines) headers[l.slice(0, l.indexOf(":")).toLowerCase()] = l.slice(l.indexOf(":") + 1).trim();
  return { status: Number(statusLine.split(" ")[1]), headers, body: text.slice(cut + 4) };
}

test("the Python example client serves prometheus_client's registry through promproxy", { timeout: 180_000 }, async (t) => {
  const python = findPython();
  const stubs = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-pystubs-"));
  let s: TestServer | undefined;
  let prom: RunningPrometheus | undefined;
  const children: PyProcess[] = [];
  try {
    // grpc_tools.protoc adds its bundled google/protobuf/*.proto (duration.proto) to the include path itself.
    const protoArgs = ["-m", "grpc_tools.protoc", "-I", "proto", `--python_out=${stubs}`, `--grpc_python_out=${stubs}`, "proto/promproxy/v1/scrape.proto"];
    execFileSync(python, protoArgs, { cwd: repoRoot, stdio: ["ignore", "ignore", "pipe"] });
    // Small chunks and credit so that one scrape takes several chunks and Credit frames; pings every second,
    // so the stream is closed if the client fails to answer them (3 s of silence) during the test.
    s = await startServer({ maxChunkBytes: 512, creditBytes: 1024, heartbeatIntervalMs: 1_000 });
    const server = s;
    const py = runPython(python, [path.join(exampleDir, "client.py"), server.url, "app-py", "--label", "team=py"], stubs);
    children.push(py);
    const first = (await waitFor("app-py in /clients", () => listed(server, "app-py"), 20_000).catch((e: Error) => {
      throw new Error(`${e.message}\nclient output:\n${py.output()}`);
    }))!;
    assert.equal(first.labels["team"], "py");
    const session = first.labels["__meta_promproxy_session_id"];

    await t.test("curl -x scrapes the Python registry: 200, a text content-type, gzip and OpenMetrics on request", async () => {
      const r = parseCurl((await curl(["-i", "-x", server.url, "http://app-py/metrics"])).stdout);
      assert.equal(r.status, 200, r.body);
      assert.match(r.headers["content-type"] ?? "", /^text\/plain; version=0\.0\.4/);
      assert.equal(Number(r.headers["content-length"]), Buffer.byteLength(r.body));
      assert.match(r.body, /^promproxy_example_scrapes_total \d+/m);
      assert.match(r.body, /^python_info\{/m);
      assert.ok(r.body.length > 1024, "the body is larger than the credit, so it needed Credit frames");

      const z = parseCurl((await curl(["-i", "--compressed", "-x", server.url, "http://app-py/metrics"])).stdout);
      assert.equal(z.status, 200);
      assert.equal(z.headers["content-encoding"], "gzip");
      assert.match(z.body, /^python_info\{/m);

      const om = parseCurl((await curl(["-i", "-H", "Accept: application/openmetrics-text; version=1.0.0", "-x", server.url, "http://app-py/metrics"])).stdout);
      assert.equal(om.status, 200);
      assert.match(om.headers["content-type"] ?? "", /^application\/openmetrics-text/);
      assert.match(om.body, /# EOF\n$/);
    });

    await t.test("a real Prometheus discovers it by http_sd and scrapes it: up == 1 and its metrics are queryable", async () => {
      prom = await startPrometheus({ serverUrl: server.url });
      const p = prom;
      await waitFor("up == 1 for app-py", async () => (await p.query(`up{instance=~"app-py(:80)?",team="py"} == 1`)).length === 1, 60_000, 250).catch(
        async (e: Error) => {
          throw new Error(`${e.message}\ntargets: ${JSON.stringify(await p.targets())}\nPrometheus log:\n${p.log()}\nclient output:\n${py.output()}`);
        },
      );
      const samples = await waitFor("promproxy_example_scrapes_total from app-py", async () => {
        const r = await p.query(`promproxy_example_scrapes_total{instance=~"app-py(:80)?"}`);
        return r.length === 1 ? r : false;
      }, 30_000, 250);
      assert.ok((samples || [])[0]!.value >= 1);
      assert.equal((await p.query(`python_info{team="py"}`)).length, 1);
      await p.stop();
    });

    await t.test("a HEAD request gets 200, the headers and no body", async () => {
      const r = await proxyGet(server.port, "http://app-py/metrics", {}, "HEAD");
      assert.equal(r.status, 200);
      assert.match(String(r.headers["content-type"]), /^text\/plain/);
      assert.ok(Number(r.headers["content-length"]) > 0, "content-length says what a GET would send");
      assert.equal(r.body.length, 0);
    });

    await t.test("an unknown scrape path is refused, and the stream stayed up (pongs answered) all along", async () => {
      const r = await proxyGet(server.port, "http://app-py/other");
      assert.equal(r.status, 404);
      assert.equal((await listed(server, "app-py"))?.labels["__meta_promproxy_session_id"], session, `one session throughout:\n${py.output()}`);
    });

    await t.test("a collector slower than the scrape timeout: the client ends with TIMEOUT; a cancelled scrape leaves the stream healthy", async () => {
      // A wrapper registers a slow collector on the default registry, then runs the example's own main().
      const wrapper = path.join(stubs, "slow_client.py");
      fs.writeFileSync(
        wrapper,
        `import asyncio, sys, time
sys.path.insert(0, ${JSON.stringify(exampleDir)})
import client
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

class Slow:
    def describe(self):
        return [GaugeMetricFamily("slow_metric", "slow")]
    def collect(self):
        time.sleep(1.5)
        yield GaugeMetricFamily("slow_metric", "slow", value=1)

REGISTRY.register(Slow())
sys.exit(asyncio.run(client.main(client.parse_args())))
`,
      );
      const slow = runPython(python, [wrapper, "--server", server.url, "--name", "app-slow"], stubs);
      children.push(slow);
      await waitFor("app-slow in /clients", () => listed(server, "app-slow"), 20_000);
      const r = await proxyGet(server.port, "http://app-slow/metrics", { "x-prometheus-scrape-timeout-seconds": "1" });
      assert.equal(r.status, 504, r.body.toString());
      assert.match(r.body.toString(), /took longer than/, "the client's own TIMEOUT, before the server's deadline");
      // curl gives up after 0.3 s: the server sends Cancel; the client drops the scrape and serves the next one.
      const gaveUp = await curl(["-m", "0.3", "-H", "X-Prometheus-Scrape-Timeout-Seconds: 5", "-x", server.url, "http://app-slow/metrics"]);
      assert.notEqual(gaveUp.code, 0);
      const ok = await proxyGet(server.port, "http://app-slow/metrics", { "x-prometheus-scrape-timeout-seconds": "5" });
      assert.equal(ok.status, 200, `${ok.body}\n${slow.output()}`);
      assert.match(ok.body.toString(), /^slow_metric 1\.0$/m);
      assert.deepEqual(await stopChild(slow.child), { code: 0, signal: null });
    });

    await t.test("on SIGTERM the client leaves /clients at once and exits 0", async () => {
      const started = Date.now();
      py.child.kill("SIGTERM");
      await waitFor("app-py to leave /clients", async () => !(await listed(server, "app-py")), 1_000, 10);
      const exit = await py.exited;
      assert.deepEqual(exit, { code: 0, signal: null }, py.output());
      assert.ok(Date.now() - started < 3_000, "it closed its stream and went, without waiting out a fallback");
      assert.doesNotMatch(py.output(), /Traceback|reconnecting/);
    });
  } finally {
    await prom?.stop();
    for (const c of children) await stopChild(c.child, "SIGKILL");
    await s?.close();
    fs.rmSync(stubs, { recursive: true, force: true });
  }
});

/** Generates the stubs into a new directory and runs `body` with a python that has the packages; cleans up. */
async function withStubs(body: (python: string, stubs: string) => Promise<void>): Promise<void> {
  const python = findPython();
  const stubs = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-pystubs-"));
  try {
    const protoArgs = ["-m", "grpc_tools.protoc", "-I", "proto", `--python_out=${stubs}`, `--grpc_python_out=${stubs}`, "proto/promproxy/v1/scrape.proto"];
    execFileSync(python, protoArgs, { cwd: repoRoot, stdio: ["ignore", "ignore", "pipe"] });
    await body(python, stubs);
  } finally {
    fs.rmSync(stubs, { recursive: true, force: true });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("the Python client refused by a real server past maxPendingHellos waits at least the retry hint (raised to 0.5 s), then gets in", { timeout: 120_000 }, async () => {
  await withStubs(async (python, stubs) => {
    const s = await startServer({ maxPendingHellos: 1, helloTimeoutMs: 60_000 });
    const silent = silentStream(s.url); // holds the one place: every hello of the client is refused with a hint
    let py: PyProcess | undefined;
    try {
      await sleep(300);
      const started = performance.now();
      const c = (py = runPython(python, [path.join(exampleDir, "client.py"), s.url, "app-storm"], stubs));
      const refusals = () => c.output().split("\n").filter((l) => l.includes("RESOURCE_EXHAUSTED"));
      await waitFor(`five refusals\n${c.output()}`, () => refusals().length >= 5, 60_000);
      const elapsed = performance.now() - started;
      for (const line of refusals().slice(0, 5)) {
        // The server's hints are a few ms (it welcomes fast): raised to the first backoff step, never a shortcut.
        const [, wait = "", hint = ""] = /reconnecting in ([\d.]+)s \(retry hint ([\d.]+)s\)$/.exec(line) ?? [];
        assert.ok(Number(hint) >= 0.5, `a refusal with a hint, raised to at least 0.5 s: ${line}`);
        assert.ok(Number(wait) >= 0.5, `waited at least the hint: ${line}`);
      }
      // Four waits of at least 0.5, 0.5, 1 and 2 s: no tight loop (counted loosely: output may arrive late).
      assert.ok(elapsed >= 3_000, `five refusals within ${elapsed.toFixed(0)} ms`);
      silent.close(); // the place frees: the client gets in
      await waitFor(`the client's welcome\n${c.output()}`, () => c.output().includes("connected to"), 30_000);
      assert.equal((await proxyGet(s.port, "http://app-storm/metrics")).status, 200);
      c.child.kill("SIGTERM");
      assert.deepEqual(await c.exited, { code: 0, signal: null }, c.output());
    } finally {
      silent.close();
      if (py) await stopChild(py.child, "SIGKILL");
      await s.close();
    }
  });
});

test("the Python client's wait for a welcome doubles after an attempt that got none (10 s, then 20 s); healed, the server welcomes it", { timeout: 180_000 }, async () => {
  await withStubs(async (python, stubs) => {
    // A real server behind a front that accepts every stream and never welcomes, until told to heal.
    const server = runScript(path.join(repoRoot, "test/e2e/fixtures/survival/faulty-server.ts"), ["never-welcome"]);
    let py: PyProcess | undefined;
    try {
      const clientPort = Number((await server.waitLine(/^client-port \d+$/)).split(" ")[1]);
      const scrapePort = Number((await server.waitLine(/^scrape-port \d+$/)).split(" ")[1]);
      const c = (py = runPython(python, [path.join(exampleDir, "client.py"), `http://127.0.0.1:${clientPort}`, "app-patient"], stubs));
      const waits = () => [...c.output().matchAll(/no welcome from the server within (\S+);/g)].map((m) => m[1]);
      await waitFor(`two attempts that got no welcome\n${c.output()}`, () => waits().length >= 2, 90_000, 100);
      server.send("heal");
      await server.waitLine(/^healed/);
      assert.deepEqual(waits().slice(0, 2), ["10s", "20s"], c.output());
      // The next attempt (dialled before the heal, it waits up to 40 s) or the one after it is welcomed.
      await waitFor(`the client's welcome\n${c.output()}`, () => c.output().includes("connected to"), 70_000, 100);
      assert.equal((await proxyGet(scrapePort, "http://app-patient/metrics")).status, 200);
      c.child.kill("SIGTERM");
      assert.deepEqual(await c.exited, { code: 0, signal: null }, c.output());
    } finally {
      if (py) await stopChild(py.child, "SIGKILL");
      await server.kill();
    }
  });
});
