/**
 * The Go example (examples/go): a client_golang registry served through the server by a client written in Go,
 * built offline in GOPATH mode from Debian's Go packages (scripts/install-test-deps.sh installs them). The build
 * is shared by every test in this file. The server's chunk limit and credit are small and its heartbeat short,
 * so that every scrape needs Credit frames and the stream lives only if the client answers pings.
 */
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, test } from "node:test";
import { promisify } from "node:util";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ScrapeErrorReason, ScrapeService, ServerFrameSchema, type ClientFrame } from "../../gen/promproxy/v1/scrape_pb.ts";
import { createQueue, type Queue } from "../../src/shared/queue.ts";
import { curl, proxyGet, startServer, waitFor, type TestServer } from "../helpers.ts";
import { repoRoot, startPrometheus, stopChild, type RunningPrometheus, type Sample } from "./prometheus.ts";
import { runScript } from "./fixtures/faults/util.ts";
import { silentStream } from "./silent-stream.ts";

const installHint = "install Go and Debian's Go packages with `bash scripts/install-test-deps.sh` (needs root)";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-go-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let built: Promise<string> | undefined;
let buildSeconds = 0;
/** Builds examples/go once for the whole file (about 20 s cold, 2 s with Go's build cache); resolves with the binary. */
function goExample(): Promise<string> {
  return (built ??= (async () => {
    for (const need of ["/usr/bin/go", "/usr/bin/protoc", "/usr/bin/protoc-gen-go", "/usr/include/google/protobuf/duration.proto", "/usr/share/gocode/src/google.golang.org/grpc", "/usr/share/gocode/src/github.com/prometheus/client_golang"]) {
      if (!fs.existsSync(need)) throw new Error(`the Go example needs ${need}: ${installHint}`);
    }
    const env = { ...process.env };
    if (!env["GOCACHE"] && !env["HOME"] && !env["XDG_CACHE_HOME"]) env["GOCACHE"] = path.join(tmp, "cache");
    const started = Date.now();
    await promisify(execFile)("bash", [path.join(repoRoot, "examples/go/build.sh"), path.join(tmp, "build")], { env, maxBuffer: 16 << 20 }).catch(
      (e: { message: string; stderr?: string }) => {
        throw new Error(`building examples/go failed: ${e.message}\n${e.stderr ?? ""}`);
      },
    );
    buildSeconds = (Date.now() - started) / 1000;
    return path.join(tmp, "build/promproxy-go-example");
  })());
}

interface GoClient {
  child: ChildProcess;
  output(): string;
  exited: Promise<[number | null, NodeJS.Signals | null]>;
}

async function runGoClient(args: string[]): Promise<GoClient> {
  const env = { ...process.env };
  for (const k of ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "grpc_proxy"]) delete env[k];
  const child = spawn(await goExample(), args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  child.stdout?.on("data", (b: Buffer) => (text += b.toString()));
  child.stderr?.on("data", (b: Buffer) => (text += b.toString()));
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  return { child, output: () => text, exited };
}

interface Group {
  targets: string[];
  labels: Record<string, string>;
}
async function listed(s: TestServer): Promise<Group[]> {
  return (await (await fetch(`${s.url}/clients`)).json()) as Group[];
}
const groupOf = (groups: Group[], name: string) => groups.find((g) => g.targets.includes(name));

/** Waits until an instant query returns exactly one sample, and returns it. */
async function oneSample(p: RunningPrometheus, promql: string, timeoutMs: number): Promise<Sample> {
  const found = await waitFor(promql, async () => {
    const r = await p.query(promql);
    return r.length === 1 ? r[0] : undefined;
  }, timeoutMs, 250);
  return found as Sample;
}

/** Waits at most `ms` for the client to exit; a hung client fails the test. */
async function exitWithin(c: GoClient, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<"hung">((resolve) => (timer = setTimeout(() => resolve("hung"), ms)));
  const r = await Promise.race([c.exited, hung]);
  clearTimeout(timer);
  if (r === "hung") assert.fail(`the Go client did not exit within ${ms / 1000}s\n${c.output()}`);
  return { code: r[0], signal: r[1] };
}

test("a Go client serves a client_golang registry through the server", { timeout: 240_000 }, async (t) => {
  let s: TestServer | undefined;
  let prom: RunningPrometheus | undefined;
  const clients: GoClient[] = [];
  try {
    s = await startServer({ maxChunkBytes: 1024, creditBytes: 2048, heartbeatIntervalMs: 1_000 });
    const server = s;
    const go = await runGoClient(["-server", server.url, "-name", "app-go", "-label", "team=gopher"]);
    clients.push(go);
    t.diagnostic(`examples/go built in ${buildSeconds.toFixed(1)}s`);
    const why = () => `\nGo client output:\n${go.output()}`;
    const first = (await waitFor("app-go in /clients", async () => groupOf(await listed(server), "app-go"), 15_000).catch((e: Error) => {
      throw new Error(`${e.message}${why()}`);
    })) as Group;
    assert.equal(first.labels["team"], "gopher");
    assert.equal(server.server.clients().find((c) => c.name === "app-go")?.version, "promproxy-go-example/0.1");

    await t.test("curl -x scrapes its registry: 200, a text content-type, an exact content-length", async () => {
      const r = await curl(["-i", "-x", server.url, "http://app-go/metrics"]);
      assert.equal(r.code, 0, r.stderr);
      const [head = "", body = ""] = r.stdout.split(/\r\n\r\n/, 2);
      assert.match(head, /^HTTP\/1\.1 200/);
      assert.match(head, /\r\ncontent-type: text\/plain; version=0\.0\.4/i);
      assert.ok(body.length > 2048, `a body longer than one credit grant: ${body.length} bytes`);
      assert.match(head, new RegExp(`\\r\\ncontent-length: ${Buffer.byteLength(body)}\\r\\n`, "i"));
      assert.match(body, /^example_info\{client="app-go"\} 1$/m);
      assert.match(body, /^go_goroutines \d+$/m);
      assert.match(body, /^example_ticks_total \d+$/m);
    });

    await t.test("content negotiation: OpenMetrics when accepted, gzip when accepted, any port and a query", async () => {
      const r = await proxyGet(server.port, "http://app-go:9100/metrics?x=1", {
        accept: "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "accept-encoding": "gzip",
      });
      assert.equal(r.status, 200);
      assert.match(String(r.headers["content-type"]), /^application\/openmetrics-text; version=/);
      assert.equal(r.headers["content-encoding"], "gzip");
      assert.match(gunzipSync(r.body).toString(), /# EOF\n$/);
    });

    await t.test("HEAD gives 200 and the head, with no body", async () => {
      const r = await curl(["-I", "-x", server.url, "http://app-go/metrics"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^HTTP\/1\.1 200/);
      assert.match(r.stdout, /\r\ncontent-type: text\/plain/i);
      const h = await proxyGet(server.port, "http://app-go/metrics", {}, "HEAD");
      assert.equal(h.status, 200);
      assert.equal(h.body.length, 0);
    });

    await t.test("a real Prometheus scrapes it through the server, discovered by http_sd", async () => {
      prom = await startPrometheus({ serverUrl: server.url });
      const p = prom;
      const job = p.jobName;
      const up = await oneSample(p, `up{job="${job}"} == 1`, 60_000).catch(async (e: Error) => {
        throw new Error(`${e.message}\ntargets: ${JSON.stringify(await p.targets())}\nPrometheus log:\n${p.log()}${why()}`);
      });
      assert.match(String(up.metric["instance"]), /^app-go(:80)?$/);
      assert.equal(up.metric["team"], "gopher");
      const info = await oneSample(p, `example_info{job="${job}"}`, 30_000);
      assert.equal(info.value, 1);
      assert.equal(info.metric["client"], "app-go");
      assert.ok((await p.query(`go_goroutines{job="${job}"}`)).length === 1, "a metric of the Go collector");
    });

    await t.test("it answered every ping: the same session all along", () => {
      assert.equal(server.server.clients().find((c) => c.name === "app-go")?.sessionId, first.labels["__meta_promproxy_session_id"], go.output());
      assert.doesNotMatch(go.output(), /reconnecting/);
    });

    await t.test("the positional form (SERVER NAME); SIGTERM: exit 0 and it leaves /clients at once", async () => {
      const pos = await runGoClient([server.url, "app-go-2"]);
      clients.push(pos);
      await waitFor("app-go-2 in /clients", async () => groupOf(await listed(server), "app-go-2"), 15_000).catch((e: Error) => {
        throw new Error(`${e.message}\n${pos.output()}`);
      });
      for (const c of [pos, go]) {
        const name = c === go ? "app-go" : "app-go-2";
        c.child.kill("SIGTERM");
        // "At once": no waiting for a heartbeat or a retention; the bound only absorbs the stream's teardown.
        await waitFor(`${name} to leave /clients`, async () => !groupOf(await listed(server), name), 1_000, 10).catch((e: Error) => {
          throw new Error(`${e.message}\n${c.output()}`);
        });
        assert.deepEqual(await exitWithin(c, 5_000), { code: 0, signal: null }, c.output());
      }
      assert.deepEqual(server.server.clients(), []);
    });
  } finally {
    await prom?.stop();
    for (const c of clients) await stopChild(c.child, "SIGKILL");
    await s?.close();
  }
});

test("a Go client that the server refuses for a bad hello exits 1 with the server's message", { timeout: 120_000 }, async () => {
  const s = await startServer();
  let c: GoClient | undefined;
  try {
    c = await runGoClient([s.url, "not_a_host_name"]);
    assert.equal((await exitWithin(c, 10_000)).code, 1, c.output());
    assert.match(c.output(), /refused "not_a_host_name": bad hello: name "not_a_host_name"/);
  } finally {
    if (c) await stopChild(c.child, "SIGKILL");
    await s.close();
  }
});

type ServerFrameInit = MessageInitShape<typeof ServerFrameSchema>;

/** One Scrape stream on the scripted server: what the client sent, and a queue of what to send it. */
interface ScriptedStream {
  received: ClientFrame[];
  out: Queue<ServerFrameInit | ReturnType<typeof create<typeof ServerFrameSchema>>>;
  /** Set once the client half-closed its side. */
  halfClosed: boolean;
  /** Waits for the next frame of `kind` after the last one taken, and takes it. */
  take<K extends NonNullable<ClientFrame["frame"]["case"]>>(kind: K, timeoutMs?: number): Promise<Extract<ClientFrame["frame"], { case: K }>["value"]>;
  /** Frames about one scrape id received so far. */
  about(id: bigint): ClientFrame["frame"][];
}

/** A gRPC server whose Scrape streams the test drives frame by frame, as a conformance kit would. */
async function scriptedServer() {
  const streams: ScriptedStream[] = [];
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(ScrapeService, {
        async *scrape(requests) {
          let cursor = 0;
          const st: ScriptedStream = {
            received: [],
            out: createQueue(),
            halfClosed: false,
            async take(kind, timeoutMs = 5_000) {
              const f = await waitFor(`a ${kind} frame from the Go client`, () => {
                for (; cursor < st.received.length; cursor++) {
                  const fr = st.received[cursor]?.frame;
                  if (fr?.case === kind) return (cursor++, fr);
                }
                return undefined;
              }, timeoutMs, 5);
              return (f as unknown as { value: never }).value;
            },
            about(id) {
              return st.received.map((f) => f.frame).filter((f) => f.case !== undefined && f.case !== "hello" && f.case !== "pong" && f.value.scrapeId === id);
            },
          };
          streams.push(st);
          void (async () => {
            for await (const f of requests) st.received.push(f);
            st.halfClosed = true;
          })().catch(() => {});
          yield* st.out;
        },
      }),
  });
  const h2 = http2.createServer(handler);
  await new Promise<void>((resolve) => h2.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(h2.address() as AddressInfo).port}`,
    streams,
    stream: (n: number) => waitFor(`stream ${n} from the Go client`, () => streams[n - 1], 15_000),
    close: () => {
      for (const st of streams) st.out.close();
      return new Promise<void>((resolve) => h2.close(() => resolve()));
    },
  };
}

const order = (scrapeId: bigint, o: Partial<{ path: string; creditBytes: bigint; timeoutMs: number; method: string }> = {}): ServerFrameInit => ({
  frame: {
    case: "order",
    value: {
      scrapeId,
      path: o.path ?? "/metrics",
      creditBytes: o.creditBytes ?? 1_000_000n,
      method: o.method ?? "",
      headers: [{ name: "accept", value: "text/plain;version=0.0.4" }],
      timeout: { seconds: BigInt(Math.floor((o.timeoutMs ?? 10_000) / 1000)), nanos: ((o.timeoutMs ?? 10_000) % 1000) * 1e6 },
    },
  },
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("a Go client against a scripted server: limits, credit, NOT_FOUND, TIMEOUT, cancel, ping, unknown frames, silence", { timeout: 120_000 }, async (t) => {
  const srv = await scriptedServer();
  let go: GoClient | undefined;
  try {
    go = await runGoClient([srv.url, "scripted"]);
    const c = go;
    const st = await srv.stream(1).catch((e: Error) => assert.fail(`${e.message}\n${c.output()}`));
    const hello = await st.take("hello");
    assert.equal(hello.name, "scripted");
    assert.equal(hello.version, "promproxy-go-example/0.1");
    assert.deepEqual(hello.features, ["head", "replica-set"]);
    assert.deepEqual(hello.targets, []);
    assert.equal(st.received[0]?.frame.case, "hello", "the hello comes first");

    const unknownKind = create(ServerFrameSchema);
    unknownKind.$unknown = [{ no: 99, wireType: WireType.LengthDelimited, data: new Uint8Array([0]) }];
    st.out.push({ frame: { case: "welcome", value: { sessionId: "s1", limits: { maxChunkBytes: 100 }, heartbeatInterval: { seconds: 60n } } } });
    st.out.push(unknownKind);
    st.out.push({ frame: { case: "ping", value: { nonce: 42n } } });
    assert.equal((await st.take("pong")).nonce, 42n, "a pong with the ping's nonce, after an unknown frame");

    await t.test("chunks of at most max_chunk_bytes, never beyond the credit; Credit for an unknown id is ignored", async () => {
      st.out.push(order(1n, { path: "/metrics?x=1", creditBytes: 150n }));
      const head = await st.take("head");
      assert.equal(head.status, 200);
      const hdr = Object.fromEntries(head.headers.map((h) => [h.name, h.value]));
      assert.match(String(hdr["content-type"]), /^text\/plain; version=0\.0\.4/);
      const length = Number(hdr["content-length"]);
      assert.ok(length > 1000, `content-length ${hdr["content-length"]}`);
      await sleep(300);
      const early = st.about(1n).filter((f) => f.case === "chunk").map((f) => (f.value as { data: Uint8Array }).data.length);
      assert.deepEqual(early, [100, 50], "the first credit, in chunks of at most 100 bytes, then a wait");
      st.out.push({ frame: { case: "credit", value: { scrapeId: 999n, bytes: 1_000_000n } } });
      st.out.push({ frame: { case: "credit", value: { scrapeId: 1n, bytes: BigInt(length) } } });
      const end = await st.take("end");
      assert.equal(end.scrapeId, 1n);
      assert.equal(end.error, undefined);
      const chunks = st.about(1n).filter((f) => f.case === "chunk").map((f) => (f.value as { data: Uint8Array }).data);
      assert.ok(chunks.every((d) => d.length <= 100));
      const body = Buffer.concat(chunks).toString();
      assert.equal(Buffer.byteLength(body), length);
      assert.match(body, /^example_info\{client="scripted"\} 1$/m);
    });

    await t.test("another path: NOT_FOUND, and no head", async () => {
      st.out.push(order(2n, { path: "/other" }));
      const end = await st.take("end");
      assert.equal(end.scrapeId, 2n);
      assert.equal(end.error?.reason, ScrapeErrorReason.NOT_FOUND);
      assert.deepEqual(st.about(2n).map((f) => f.case), ["end"]);
    });

    await t.test("out of credit past the order's timeout: TIMEOUT", async () => {
      const started = Date.now();
      st.out.push(order(3n, { creditBytes: 0n, timeoutMs: 500 }));
      const end = await st.take("end");
      assert.equal(end.scrapeId, 3n);
      assert.equal(end.error?.reason, ScrapeErrorReason.TIMEOUT, JSON.stringify(end.error));
      assert.ok(Date.now() - started >= 450, `ended after ${Date.now() - started} ms`);
      assert.deepEqual(st.about(3n).map((f) => f.case), ["head", "end"]);
    });

    await t.test("Cancel: nothing more for that scrape; Cancel for an unknown id is ignored", async () => {
      st.out.push(order(4n, { creditBytes: 0n }));
      await st.take("head");
      st.out.push({ frame: { case: "cancel", value: { scrapeId: 4n, reason: "test" } } });
      st.out.push({ frame: { case: "cancel", value: { scrapeId: 777n, reason: "test" } } });
      st.out.push({ frame: { case: "credit", value: { scrapeId: 4n, bytes: 1_000_000n } } });
      await sleep(500);
      assert.deepEqual(st.about(4n).map((f) => f.case), ["head"]);
    });

    await t.test("HEAD: a head and an end, no chunk; concurrent orders", async () => {
      st.out.push(order(5n, { creditBytes: 0n }));
      st.out.push(order(6n, { method: "HEAD" }));
      await waitFor("the end of scrape 6", () => st.about(6n).some((f) => f.case === "end"));
      assert.deepEqual(st.about(6n).map((f) => f.case), ["head", "end"], "scrape 6 finished while scrape 5 waits for credit");
      st.out.push({ frame: { case: "credit", value: { scrapeId: 5n, bytes: 1_000_000n } } });
      await waitFor("the end of scrape 5", () => st.about(5n).some((f) => f.case === "end"));
      st.out.push({ frame: { case: "ping", value: { nonce: 43n } } });
      assert.equal((await st.take("pong")).nonce, 43n);
    });

    await t.test("silence for three heartbeat intervals: a new stream", async () => {
      // The first welcome said 60 s: end that stream; the next one gets a 300 ms heartbeat and then silence.
      st.out.close();
      const st2 = await srv.stream(2);
      await st2.take("hello");
      const welcomed = Date.now();
      st2.out.push({ frame: { case: "welcome", value: { sessionId: "s2", heartbeatInterval: { nanos: 300_000_000 } } } });
      const st3 = await srv.stream(3);
      const quiet = Date.now() - welcomed;
      assert.ok(quiet >= 800 && quiet < 5_000, `a new stream ${quiet} ms after the last frame`);
      await st3.take("hello");
      st3.out.push({ frame: { case: "welcome", value: { sessionId: "s3" } } });
      await sleep(200);
    });

    await t.test("SIGTERM: the client half-closes its stream and exits 0", async () => {
      const st3 = srv.streams[2] as ScriptedStream;
      c.child.kill("SIGTERM");
      await waitFor("the half-close", () => st3.halfClosed, 5_000);
      st3.out.close();
      assert.deepEqual(await exitWithin(c, 5_000), { code: 0, signal: null }, c.output());
      assert.equal(srv.streams.length, 3, "no stream after the stop");
    });
  } finally {
    if (go) await stopChild(go.child, "SIGKILL");
    await srv.close();
  }
});

/** A Go duration as the client logs it ("500ms", "1.234s", "10s"), in milliseconds. */
const goMs = (d: string) => {
  const m = /^([\d.]+)(ms|s)$/.exec(d);
  return m ? Number(m[1]) * (m[2] === "s" ? 1_000 : 1) : Number.NaN;
};

test("a Go client refused by a real server past maxPendingHellos waits at least the retry hint (raised to 0.5 s), then gets in", { timeout: 120_000 }, async () => {
  const s = await startServer({ maxPendingHellos: 1, helloTimeoutMs: 60_000 });
  const silent = silentStream(s.url); // holds the one place: every hello of the client is refused with a hint
  let c: GoClient | undefined;
  try {
    await sleep(300);
    const started = performance.now();
    const go = (c = await runGoClient(["-server", s.url, "-name", "app-storm"]));
    const refusals = () => go.output().split("\n").filter((l) => l.includes("ResourceExhausted"));
    await waitFor(`five refusals\n${go.output()}`, () => refusals().length >= 5, 60_000);
    const elapsed = performance.now() - started;
    for (const line of refusals().slice(0, 5)) {
      // The server's hints are a few ms (it welcomes fast): raised to the first backoff step, never a shortcut.
      const [, wait = "", hint = ""] = /reconnecting in (\S+) \(retry hint (\S+)\)$/.exec(line) ?? [];
      assert.ok(goMs(hint) >= 500, `a refusal with a hint, raised to at least 0.5 s: ${line}`);
      assert.ok(goMs(wait) >= 500, `waited at least the hint: ${line}`);
    }
    // Four waits of at least 0.5, 0.5, 1 and 2 s: no tight loop (counted loosely: output may arrive late).
    assert.ok(elapsed >= 3_000, `five refusals within ${elapsed.toFixed(0)} ms`);
    silent.close(); // the place frees: the client gets in
    await waitFor(`the client's welcome\n${go.output()}`, () => go.output().includes("connected to"), 30_000);
    assert.equal((await proxyGet(s.port, "http://app-storm/metrics")).status, 200);
    go.child.kill("SIGTERM");
    assert.deepEqual(await exitWithin(go, 10_000), { code: 0, signal: null }, go.output());
  } finally {
    silent.close();
    if (c) await stopChild(c.child, "SIGKILL");
    await s.close();
  }
});

test("a Go client's wait for a welcome doubles after an attempt that got none (10 s, then 20 s); healed, the server welcomes it", { timeout: 180_000 }, async () => {
  // A real server behind a front that accepts every stream and never welcomes, until told to heal.
  const server = runScript(path.join(repoRoot, "test/e2e/fixtures/survival/faulty-server.ts"), ["never-welcome"]);
  let c: GoClient | undefined;
  try {
    const clientPort = Number((await server.waitLine(/^client-port \d+$/)).split(" ")[1]);
    const scrapePort = Number((await server.waitLine(/^scrape-port \d+$/)).split(" ")[1]);
    const go = (c = await runGoClient(["-server", `http://127.0.0.1:${clientPort}`, "-name", "app-patient"]));
    const waits = () => [...go.output().matchAll(/no welcome from the server within (\S+);/g)].map((m) => m[1]);
    await waitFor(`two attempts that got no welcome\n${go.output()}`, () => waits().length >= 2, 90_000, 100);
    server.send("heal");
    await server.waitLine(/^healed/);
    assert.deepEqual(waits().slice(0, 2), ["10s", "20s"], go.output());
    // The next attempt (dialled before the heal, it waits up to 40 s) or the one after it is welcomed.
    await waitFor(`the client's welcome\n${go.output()}`, () => go.output().includes("connected to"), 70_000, 100);
    assert.equal((await proxyGet(scrapePort, "http://app-patient/metrics")).status, 200);
    go.child.kill("SIGTERM");
    assert.deepEqual(await exitWithin(go, 10_000), { code: 0, signal: null }, go.output());
  } finally {
    if (c) await stopChild(c.child, "SIGKILL");
    await server.kill();
  }
});
