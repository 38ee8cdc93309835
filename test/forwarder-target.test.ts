/**
 * The forwarder target: createClient({ targets }) in-process, a real server on
 * loopback, and small Node HTTP(S) servers as the exporters.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { gunzipSync, gzipSync } from "node:zlib";
import { createClient, silentLogger, type ClientOptions, type PromproxyClient } from "../src/client/index.ts";
import { describe as describeError } from "../src/client/targets/exporter-request.ts";
import { createHttpTargets } from "../src/client/targets/http-target.ts";
import { createForwarderMetrics } from "../src/cli/forwarder-metrics.ts";
import { ScrapeErrorReason } from "../src/client/targets/target.ts";
import { proxyGet, startServer, testRegistry, waitFor, type TestServer } from "./helpers.ts";

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures/forwarder-tls");
const tlsFiles = {
  ca: fs.readFileSync(path.join(fixtures, "ca.pem")),
  cert: fs.readFileSync(path.join(fixtures, "server.pem")),
  key: fs.readFileSync(path.join(fixtures, "server.key")),
};

interface Exporter {
  port: number;
  url: string;
  requests: http.IncomingMessage[];
  close(): Promise<void>;
}

/** A tiny exporter on 127.0.0.1: plain HTTP, or HTTPS with the fixture certificate. */
async function startExporter(handler: http.RequestListener, secure = false): Promise<Exporter> {
  const requests: http.IncomingMessage[] = [];
  const listener: http.RequestListener = (req, res) => {
    requests.push(req);
    handler(req, res);
  };
  const server = secure ? https.createServer({ cert: tlsFiles.cert, key: tlsFiles.key }, listener) : http.createServer(listener);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `${secure ? "https" : "http"}://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const metricsText = "# TYPE up_test gauge\nup_test 1\n";
const textExporter: http.RequestListener = (req, res) => {
  res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8", "content-length": Buffer.byteLength(metricsText) });
  res.end(metricsText);
};

/** A free port that refuses connections (a server that was closed). */
async function refusedPort(): Promise<number> {
  const e = await startExporter(() => {});
  await e.close();
  return e.port;
}

interface Setup {
  s: TestServer;
  c: PromproxyClient;
  get(uri: string, headers?: Record<string, string>): ReturnType<typeof proxyGet>;
}

/** A server and a forwarder client named "fwd" with the given targets; `run` gets both, everything is closed after. */
async function withForwarder(targets: ClientOptions["targets"], run: (x: Setup) => Promise<void>, more: Partial<ClientOptions> = {}): Promise<void> {
  const s = await startServer();
  let c: PromproxyClient | undefined;
  try {
    c = createClient({ name: "fwd", serverUrl: s.url, targets, logger: silentLogger, backoff: { initialMs: 50, maxMs: 500 }, ...more });
    await c.start({ timeoutMs: 10_000 });
    await run({ s, c, get: (uri, headers) => proxyGet(s.port, uri, headers) });
  } finally {
    await c?.stop();
    await s.close();
  }
}

test("forwarder target: forwards by port to two exporters, announces NAME:PORT with labels, and serves nothing else", async () => {
  const a = await startExporter(textExporter);
  const b = await startExporter((req, res) => res.end(`other ${req.url}\n`));
  try {
    await withForwarder(
      [`9100=${a.url}/metrics`, { url: b.url, port: 9200, labels: { exporter: "b" } }],
      async ({ s, get }) => {
        const clients = (await (await fetch(`${s.url}/clients`)).json()) as { targets: string[]; labels: Record<string, string> }[];
        const byTarget = new Map(clients.map((g) => [g.targets[0], g.labels]));
        assert.deepEqual([...byTarget.keys()].sort(), ["fwd:9100", "fwd:9200"]);
        assert.equal(byTarget.get("fwd:9100")?.["env"], "t");
        assert.equal(byTarget.get("fwd:9100")?.["__metrics_path__"], "/metrics");
        assert.equal(byTarget.get("fwd:9200")?.["exporter"], "b");
        assert.equal(byTarget.get("fwd:9200")?.["__metrics_path__"], undefined, "a target serving every path leaves the path to Prometheus");

        const r1 = await get("http://fwd:9100/metrics");
        assert.equal(r1.status, 200);
        assert.equal(r1.body.toString(), metricsText);
        assert.equal(r1.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
        const r2 = await get("http://fwd:9200/probe?target=x&module=y");
        assert.equal(r2.status, 200);
        assert.equal(r2.body.toString(), "other /probe?target=x&module=y\n");

        const wrongPort = await get("http://fwd:9300/metrics");
        assert.equal(wrongPort.status, 404);
        assert.match(wrongPort.body.toString(), /^promproxy: client "fwd" serves nothing at port 9300 path "\/metrics"/);
        const noPort = await get("http://fwd:80/metrics");
        assert.equal(noPort.status, 404, "no target is served on any port");
        const outsidePrefix = await get("http://fwd:9100/debug/pprof");
        assert.equal(outsidePrefix.status, 404);
        assert.match(outsidePrefix.body.toString(), /serves nothing at port 9100 path "\/debug\/pprof"/);
        assert.equal(a.requests.length, 1, "refused requests never reach the exporter");
      },
      { labels: { env: "t" } },
    );
  } finally {
    await a.close();
    await b.close();
  }
});

test("forwarder target: a single target without a port is served on any port (Prometheus adds :80)", async () => {
  const a = await startExporter(textExporter);
  try {
    await withForwarder([`${a.url}/metrics`], async ({ s, get }) => {
      const clients = (await (await fetch(`${s.url}/clients`)).json()) as { targets: string[] }[];
      assert.deepEqual(clients.map((g) => g.targets), [["fwd"]]);
      for (const uri of ["http://fwd:80/metrics", "http://fwd/metrics", "http://fwd:1234/metrics"]) {
        const r = await get(uri);
        assert.equal(r.status, 200, uri);
        assert.equal(r.body.toString(), metricsText);
      }
    });
  } finally {
    await a.close();
  }
});

test("forwarder target: request headers: Prometheus' Accept, Accept-Encoding and User-Agent pass, the timeout is the target's budget, _scheme is not forwarded", async () => {
  const a = await startExporter(textExporter);
  try {
    await withForwarder([`9100=${a.url}`], async ({ get }) => {
      const r = await get("http://fwd:9100/metrics?_scheme=http&collect%5B%5D=cpu", {
        accept: "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        "accept-encoding": "gzip",
        "user-agent": "Prometheus/2.42.0",
        "x-prometheus-scrape-timeout-seconds": "7",
        authorization: "Bearer from-prometheus",
        cookie: "a=b",
      });
      assert.equal(r.status, 200);
      const seen = a.requests[0];
      assert.ok(seen);
      assert.equal(seen.url, "/metrics?collect%5B%5D=cpu");
      assert.equal(seen.headers["accept"], "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5");
      assert.equal(seen.headers["accept-encoding"], "gzip");
      assert.equal(seen.headers["user-agent"], "Prometheus/2.42.0");
      assert.equal(seen.headers["host"], `127.0.0.1:${a.port}`);
      assert.equal(seen.headers["authorization"], undefined, "Prometheus' credentials are the server's, never the exporter's");
      assert.equal(seen.headers["cookie"], undefined);
      const budget = Number(seen.headers["x-prometheus-scrape-timeout-seconds"]);
      assert.ok(budget > 5 && budget < 7, `the exporter is told the time it has: ${budget}`);

      const plain = await get("http://fwd:9100/metrics");
      assert.equal(plain.status, 200);
      assert.equal(a.requests[1]?.headers["accept-encoding"], undefined, "no Accept-Encoding of our own");
    });
  } finally {
    await a.close();
  }
});

test("forwarder target: gzip and binary bodies pass through byte for byte; only content headers are relayed", async () => {
  const gz = gzipSync(Buffer.from("# TYPE x counter\nx_total 42\n".repeat(2000)));
  const binary = randomBytes(300_000);
  const a = await startExporter((req, res) => {
    if (req.url === "/gzip") {
      res.writeHead(200, {
        "content-type": "text/plain; version=0.0.4",
        "content-encoding": "gzip",
        "x-exporter": "secret-internal",
        "set-cookie": "s=1",
        "keep-alive": "timeout=1",
      });
      res.end(gz);
    } else {
      res.writeHead(200, { "content-type": "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited" });
      res.end(binary);
    }
  });
  try {
    await withForwarder([`9100=${a.url}`], async ({ get }) => {
      const r = await get("http://fwd:9100/gzip", { "accept-encoding": "gzip" });
      assert.equal(r.status, 200);
      assert.equal(r.headers["content-encoding"], "gzip");
      assert.ok(r.body.equals(gz), "the gzip stream arrives untouched (no recompression)");
      assert.equal(r.headers["x-exporter"], undefined);
      assert.equal(r.headers["set-cookie"], undefined);
      assert.match(gunzipSync(r.body).toString(), /^x_total 42$/m);
      const p = await get("http://fwd:9100/proto", { accept: "application/vnd.google.protobuf" });
      assert.equal(p.status, 200);
      assert.match(String(p.headers["content-type"]), /^application\/vnd\.google\.protobuf/);
      assert.ok(p.body.equals(binary), "binary bodies are binary-safe");
    });
  } finally {
    await a.close();
  }
});

test("forwarder target: redirects are not followed: the 3xx is relayed without its Location", async () => {
  const a = await startExporter((req, res) => {
    res.writeHead(302, { location: "http://169.254.169.254/latest/meta-data/", "content-type": "text/plain" });
    res.end("moved\n");
  });
  try {
    await withForwarder([`9100=${a.url}`], async ({ get }) => {
      const r = await get("http://fwd:9100/metrics");
      assert.equal(r.status, 302);
      assert.equal(r.headers["location"], undefined);
      assert.equal(r.body.toString(), "moved\n");
      assert.equal(a.requests.length, 1);
    });
  } finally {
    await a.close();
  }
});

test("forwarder target: a large body streams through whole, also to a slow reader", async () => {
  const size = 24 * 1024 * 1024;
  const block = randomBytes(64 * 1024);
  const want = createHash("sha256");
  for (let n = 0; n < size; n += block.length) want.update(block);
  const digest = want.digest("hex");
  const a = await startExporter((req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    let n = 0;
    const pump = () => {
      while (n < size) {
        n += block.length;
        if (!res.write(block)) return void res.once("drain", pump);
      }
      res.end();
    };
    pump();
  });
  try {
    await withForwarder([`9100=${a.url}`], async ({ s }) => {
      const got = await new Promise<{ status: number; digest: string; bytes: number }>((resolve, reject) => {
        const req = http.request({ host: "127.0.0.1", port: s.port, path: "http://fwd:9100/big", agent: false }, (res) => {
          const h = createHash("sha256");
          let bytes = 0;
          let paused = 0;
          res.on("data", (c: Buffer) => {
            h.update(c);
            bytes += c.length;
            // Read slowly for a while: the server must hold back, not buffer everything.
            if (paused < 20 && bytes > paused * 512 * 1024) {
              paused++;
              res.pause();
              setTimeout(() => res.resume(), 20);
            }
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, digest: h.digest("hex"), bytes }));
          res.on("error", reject);
        });
        req.on("error", reject);
        req.end();
      });
      assert.equal(got.status, 200);
      assert.equal(got.bytes, size);
      assert.equal(got.digest, digest);
    });
  } finally {
    await a.close();
  }
});

test("forwarder target: failures answer 502/504 with a body naming the target and the cause; a 500 is relayed as it is", async () => {
  const hanging = await startExporter(() => {
    /* never answers */
  });
  const failing = await startExporter((req, res) => {
    res.writeHead(500, { "content-type": "text/plain" });
    res.end("exporter broke: disk on fire\n");
  });
  const slowBody = await startExporter((req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.write("partial 1\n"); // and then nothing more
  });
  const refused = await refusedPort();
  try {
    await withForwarder(
      [
        `9001=http://127.0.0.1:${refused}/metrics`,
        `9002=${hanging.url}/metrics`,
        `9003=${failing.url}/metrics`,
        { url: `${hanging.url}/metrics`, port: 9004, timeoutMs: 200 },
        `9005=${slowBody.url}/metrics`,
      ],
      async ({ get }) => {
        const r1 = await get("http://fwd:9001/metrics");
        assert.equal(r1.status, 502);
        assert.match(r1.body.toString(), new RegExp(`^promproxy: client "fwd": target http://127\\.0\\.0\\.1:${refused}/metrics: connection refused`));

        // 3 s: the server orders 2.7 s, 300 ms ahead of its own deadline (at 1 s, 100 ms: a loaded CI run missed it).
        const r2 = await get("http://fwd:9002/metrics", { "x-prometheus-scrape-timeout-seconds": "3" });
        assert.equal(r2.status, 504);
        assert.match(r2.body.toString(), new RegExp(`^promproxy: (scrape of "fwd" timed out after 3s: )?client "fwd": target http://127\\.0\\.0\\.1:${hanging.port}/metrics did not answer within 2\\.\\d+s\n$`));

        const r3 = await get("http://fwd:9003/metrics");
        assert.equal(r3.status, 500, "the exporter's own status is relayed");
        assert.equal(r3.body.toString(), "exporter broke: disk on fire\n");

        const r4 = await get("http://fwd:9004/metrics", { "x-prometheus-scrape-timeout-seconds": "30" });
        assert.equal(r4.status, 504);
        assert.match(r4.body.toString(), /did not answer within 0\.2s\n$/, "the per-target timeout, well before the scrape's deadline");

        // A body that stalls after the head: the status is already out, so the response is cut off (a failed scrape).
        await assert.rejects(get("http://fwd:9005/metrics", { "x-prometheus-scrape-timeout-seconds": "1" }), /aborted|socket hang up|ECONNRESET/);
      },
    );
  } finally {
    await hanging.close();
    await failing.close();
    await slowBody.close();
  }
});

test("forwarder target: every failure aborts the exporter request (hang, cancel by Prometheus)", async () => {
  let closed = 0;
  const hanging = await startExporter((req) => req.socket.once("close", () => closed++));
  try {
    await withForwarder([`9100=${hanging.url}`], async ({ s }) => {
      // Prometheus goes away mid-scrape: the exporter's connection is closed too.
      const req = http.request({ host: "127.0.0.1", port: s.port, path: "http://fwd:9100/metrics", agent: false });
      req.on("error", () => {});
      req.end();
      await waitFor("the exporter to get the request", () => hanging.requests.length === 1);
      req.destroy();
      await waitFor("the exporter's connection to close", () => closed === 1);
      // Deadline.
      const r = await proxyGet(s.port, "http://fwd:9100/metrics", { "x-prometheus-scrape-timeout-seconds": "0.5" });
      assert.equal(r.status, 504);
      await waitFor("the exporter's connection to close after the deadline", () => closed === 2);
    });
  } finally {
    await hanging.close();
  }
});

test("forwarder target: oversize: a Content-Length over the limit is a clean 502; a chunked body over it is cut off", async () => {
  const body = Buffer.alloc(10_000, "x");
  const a = await startExporter((req, res) => {
    if (req.url === "/sized") {
      res.writeHead(200, { "content-length": body.length });
      return void res.end(body);
    }
    // Chunked, in pieces: the first ones are on their way to Prometheus when the limit is hit.
    res.writeHead(200, { "content-type": "text/plain" });
    let sent = 0;
    const next = () => {
      if (sent >= body.length) return void res.end();
      res.write(body.subarray(sent, sent + 2000));
      sent += 2000;
      setTimeout(next, 10);
    };
    next();
  });
  try {
    await withForwarder([{ url: a.url, port: 9100, maxResponseBytes: 4096 }, { url: a.url, port: 9101, maxResponseBytes: 10_000 }], async ({ get }) => {
      const r = await get("http://fwd:9100/sized");
      assert.equal(r.status, 502);
      assert.match(r.body.toString(), new RegExp(`^promproxy: client "fwd": target http://127\\.0\\.0\\.1:${a.port}/sized answered 10000 bytes, more than the maximum of 4096\\n$`));
      await assert.rejects(get("http://fwd:9100/chunked"), /aborted|socket hang up|ECONNRESET/);
      const atLimit = await get("http://fwd:9101/chunked");
      assert.equal(atLimit.status, 200, "exactly the limit is fine");
      assert.equal(atLimit.body.length, 10_000);
    });
  } finally {
    await a.close();
  }
});

test("forwarder target: per-target concurrency limit: one more scrape is busy (503)", async () => {
  const hanging = await startExporter(() => {});
  try {
    await withForwarder([{ url: hanging.url, port: 9100, maxScrapesInFlight: 1 }], async ({ s, get }) => {
      const first = proxyGet(s.port, "http://fwd:9100/metrics", { "x-prometheus-scrape-timeout-seconds": "2" });
      await waitFor("the first scrape to reach the exporter", () => hanging.requests.length === 1);
      const second = await get("http://fwd:9100/metrics");
      assert.equal(second.status, 503);
      assert.match(second.body.toString(), /target http:\/\/127\.0\.0\.1:\d+\/ has 1 scrapes in flight, its maximum/);
      assert.equal((await first).status, 504);
    });
  } finally {
    await hanging.close();
  }
});

test("forwarder target: https targets: CA option, insecure-skip-verify, _scheme=https, and a TLS failure naming the target", async () => {
  const a = await startExporter(textExporter, true);
  const plain = await startExporter(textExporter);
  try {
    await withForwarder(
      [
        { url: `${a.url}/metrics`, port: 9001, tls: { ca: tlsFiles.ca } },
        { url: `https://localhost:${a.port}/metrics`, port: 9002, tls: { ca: tlsFiles.ca } },
        { url: `${a.url}/metrics`, port: 9003, tls: { insecureSkipVerify: true } },
        { url: `${a.url}/metrics`, port: 9004 },
        // _scheme=https upgrades a plain URL (the PushProx convention)
        { url: `http://127.0.0.1:${a.port}/metrics`, port: 9005, tls: { ca: tlsFiles.ca } },
        { url: `https://127.0.0.1:${plain.port}/metrics`, port: 9006, tls: { ca: tlsFiles.ca } },
      ],
      async ({ get }) => {
        for (const port of [9001, 9002, 9003]) {
          const r = await get(`http://fwd:${port}/metrics`);
          assert.equal(r.status, 200, `${port}: ${r.body}`);
          assert.equal(r.body.toString(), metricsText);
        }
        const untrusted = await get("http://fwd:9004/metrics");
        assert.equal(untrusted.status, 502);
        assert.match(untrusted.body.toString(), new RegExp(`^promproxy: client "fwd": target https://127\\.0\\.0\\.1:${a.port}/metrics: TLS handshake failed: .*\\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\\)`));
        const upgraded = await get("http://fwd:9005/metrics?_scheme=https");
        assert.equal(upgraded.status, 200, String(upgraded.body));
        const notTls = await get("http://fwd:9006/metrics");
        assert.equal(notTls.status, 502);
        assert.match(notTls.body.toString(), new RegExp(`target https://127\\.0\\.0\\.1:${plain.port}/metrics: answered something that is not TLS \\(a plain HTTP exporter\\?\\): use http:// in the target URL \\(ERR_SSL_WRONG_VERSION_NUMBER\\)\n$`));
        const bad = await get("http://fwd:9005/metrics?_scheme=gopher");
        assert.equal(bad.status, 400);
      },
    );
  } finally {
    await a.close();
    await plain.close();
  }
});

test("forwarder target: target-side auth: basic from the URL or options (a function is asked every scrape), bearer", async () => {
  const a = await startExporter((req, res) => {
    res.end(String(req.headers["authorization"] ?? "none"));
  });
  let calls = 0;
  try {
    await withForwarder(
      [
        `9001=http://prom%40x:p%3Ass@127.0.0.1:${a.port}/`,
        { url: a.url, port: 9002, basicAuth: { username: "u", password: () => `pw${++calls}` } },
        { url: a.url, port: 9003, bearerToken: async () => "tok\n" },
        { url: a.url, port: 9004, bearerToken: "static" },
      ],
      async ({ s, get }) => {
        const b64 = (s: string) => "Basic " + Buffer.from(s).toString("base64");
        assert.equal((await get("http://fwd:9001/metrics")).body.toString(), b64("prom@x:p:ss"));
        assert.equal((await get("http://fwd:9002/metrics")).body.toString(), b64("u:pw1"));
        assert.equal((await get("http://fwd:9002/metrics")).body.toString(), b64("u:pw2"));
        assert.equal((await get("http://fwd:9003/metrics")).body.toString(), "Bearer tok");
        assert.equal((await get("http://fwd:9004/metrics")).body.toString(), "Bearer static");
        const clients = await (await fetch(`${s.url}/clients`)).text();
        assert.doesNotMatch(clients, /p%3Ass|p:ss/, "credentials never reach /clients");
      },
    );
  } finally {
    await a.close();
  }
});

test("forwarder target: registry and targets side by side: the registry on any port at /metrics, targets on their ports", async () => {
  const a = await startExporter(textExporter);
  try {
    await withForwarder(
      [`9100=${a.url}`],
      async ({ s, get }) => {
        const clients = (await (await fetch(`${s.url}/clients`)).json()) as { targets: string[] }[];
        assert.deepEqual(clients.map((g) => g.targets[0]).sort(), ["fwd", "fwd:9100"]);
        assert.match((await get("http://fwd:80/metrics")).body.toString(), /^test_up_total\{name="fwd"\} 1$/m);
        assert.equal((await get("http://fwd:9100/metrics")).body.toString(), metricsText, "a port's own target wins over the registry");
      },
      { registry: testRegistry("fwd") },
    );
  } finally {
    await a.close();
  }
});

test("forwarder target: bad target configurations are refused at construction with a clear message", () => {
  const make = (targets: ClientOptions["targets"], more: Partial<ClientOptions> = {}) => () =>
    createClient({ name: "fwd", serverUrl: "http://127.0.0.1:1", targets, logger: silentLogger, ...more });
  assert.throws(make(["9100=ftp://x/metrics"]), /want an http:\/\/ or https:\/\/ URL/);
  assert.throws(make(["9100=not a url"]), /"not a url" is not a URL/);
  assert.throws(make(["9100=http://x/metrics?a=b"]), /no query or fragment/);
  assert.throws(make(["80=http://x/metrics"]), /port 80 cannot be told apart from "no port"/);
  assert.throws(make(["70000=http://x/metrics"]), /port must be 1-65535/);
  assert.throws(make(["9100=http://a/metrics", "9100=http://b/metrics"]), /targets http:\/\/a\/metrics and http:\/\/b\/metrics both serve port 9100 at \/metrics/);
  assert.throws(make(["http://a/"], { registry: testRegistry() }), /serves any port at \/metrics, where the registry is served too/);
  assert.throws(make([{ url: "http://a/", bearerToken: "t", basicAuth: { username: "u", password: "p" } }]), /basicAuth or bearerToken, not both/);
  assert.throws(make([{ url: "http://a/", timeoutMs: -1 }]), /timeoutMs must be a positive number/);
  for (const bad of [0, -1, NaN, Infinity]) {
    assert.throws(make([{ url: "http://a/", maxScrapesPerSecond: bad }]), new RegExp(`target 1 \\(http://a/\\): maxScrapesPerSecond must be a positive number, got ${bad}$`));
  }
  assert.throws(make(["9100=http://a/metr%2Fics"]), /the URL's path would never match a request: refused path "\/metr%2Fics": it holds an encoded slash/);
  assert.throws(make(["9100=http://a/metrics;v=1"]), /would never match a request: .*semicolon/);
  assert.throws(make(["9100=http://a//metrics"]), /would never match a request: .*empty segment/);
  // Same port, different paths: fine, most specific first.
  const ts = createHttpTargets(["9100=http://a/", "9100=http://b/metrics", "http://c/x"]);
  assert.deepEqual(ts.map((t) => `${t.port} ${t.path}`), ["9100 /metrics", "9100 /", "0 /x"]);
  for (const t of ts) t.close();
});

test("forwarder target: the forwarder refuses a non-canonical path itself, whatever the server sends: NOT_FOUND, never sent to the exporter", async () => {
  const a = await startExporter(textExporter);
  const outcomes: string[] = [];
  const [target] = createHttpTargets([`9100=${a.url}/metrics`], { onResult: (r) => outcomes.push(r.outcome) });
  assert.ok(target);
  const serve = (path: string) =>
    target.serve(
      { port: 9100, path, scheme: "http", headers: {}, timeoutMs: 5000, signal: new AbortController().signal },
      { head() {}, write: async () => {} },
    );
  try {
    const attacks = [
      "/metrics/..%2fsecret.txt",
      "/metrics/%2e%2e%2fsecret.txt",
      "/metrics/..;/secret.txt",
      "/metrics/..%5csecret.txt",
      "/metrics/%252e%252e%252fsecret.txt",
      "/metrics/%c0%ae%c0%ae/secret.txt",
      "/metrics/../secret.txt",
      "/metrics//x",
      "/metrics/..%00/x",
      "/metrics/\uff0e\uff0e/x",
      "/metrics#x",
      "http://fwd:9100/metrics",
    ];
    for (const path of attacks) {
      await assert.rejects(serve(path), (e: Error & { reason?: ScrapeErrorReason }) => {
        assert.equal(e.reason, ScrapeErrorReason.NOT_FOUND, path);
        assert.match(e.message, /^target http:\/\/127\.0\.0\.1:\d+\/metrics(: refused path "| does not serve port 9100 path ")/, e.message);
        return true;
      });
    }
    assert.equal(a.requests.length, 0, "no refused path reaches the exporter");
    assert.deepEqual(new Set(outcomes), new Set(["not_found"]));
    await serve("/metrics?target=http%3A%2F%2Fx%2F..%2F");
    assert.deepEqual(a.requests.map((r) => r.url), ["/metrics?target=http%3A%2F%2Fx%2F..%2F"], "the query is the exporter's business");
  } finally {
    target.close();
    await a.close();
  }
});

test("forwarder target: socket errors become messages that name the target and the cause", () => {
  const dns = describeError(Object.assign(new Error("getaddrinfo ENOTFOUND exporter.invalid"), { code: "ENOTFOUND", hostname: "exporter.invalid" }), "http://exporter.invalid:9100/metrics");
  assert.equal(dns.reason, ScrapeErrorReason.UNREACHABLE);
  assert.equal(dns.message, "target http://exporter.invalid:9100/metrics: DNS lookup failed (ENOTFOUND exporter.invalid)");
  const tls = describeError(Object.assign(new Error("certificate has expired"), { code: "CERT_HAS_EXPIRED" }), "https://x/");
  assert.equal(tls.message, "target https://x/: TLS handshake failed: certificate has expired (CERT_HAS_EXPIRED)");
  const reset = describeError(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }), "http://x/");
  assert.equal(reset.message, "target http://x/: connection reset by the exporter (ECONNRESET)");
});

test("forwarder target: maxScrapesPerSecond: a burst of that many passes, the next is busy and never reaches the exporter, the bucket refills with time", async () => {
  const a = await startExporter(textExporter);
  const outcomes: string[] = [];
  const metrics = createForwarderMetrics();
  let clock = 0;
  const onResult = (r: Parameters<typeof metrics.onResult>[0]) => {
    outcomes.push(r.outcome);
    metrics.onResult(r);
  };
  const [target] = createHttpTargets([{ url: `${a.url}/metrics`, port: 9100, maxScrapesPerSecond: 3 }], { onResult, now: () => clock });
  assert.ok(target);
  const serve = () =>
    target.serve(
      { port: 9100, path: "/metrics", scheme: "http", headers: {}, timeoutMs: 5000, signal: new AbortController().signal },
      { head() {}, write: async () => {} },
    );
  const refused = async () =>
    assert.rejects(serve(), (e: Error & { reason?: ScrapeErrorReason }) => {
      assert.equal(e.reason, ScrapeErrorReason.BUSY);
      assert.match(e.message, /^target http:\/\/127\.0\.0\.1:\d+\/metrics was asked for more than 3 scrapes a second, its maximum \(maxScrapesPerSecond\); not sent to the exporter$/);
      return true;
    });
  try {
    for (let i = 0; i < 3; i++) await serve();
    assert.equal(a.requests.length, 3, "at the limit every scrape reaches the exporter");
    await refused();
    await refused();
    assert.equal(a.requests.length, 3, "over the limit the exporter is not asked");
    assert.deepEqual(outcomes, ["success", "success", "success", "rate_limited", "rate_limited"]);
    clock += 340; // a third of a second: one token
    await serve();
    await refused();
    assert.equal(a.requests.length, 4);
    clock += 5_000; // a long pause fills the bucket to one second's worth, no more
    for (let i = 0; i < 3; i++) await serve();
    await refused();
    assert.equal(a.requests.length, 7);
    clock -= 10_000; // a clock going backwards adds nothing
    await refused();
    const text = await metrics.registry.metrics();
    assert.match(text, /^promproxy_client_scrape_failures_total\{target="http:\/\/127\.0\.0\.1:\d+\/metrics",reason="rate_limited"\} 5$/m, text);
    assert.match(text, /^promproxy_client_scrapes_total\{target="http:\/\/127\.0\.0\.1:\d+\/metrics",code="200"\} 7$/m, text);
  } finally {
    target.close();
    await a.close();
  }
});

test("forwarder target: maxScrapesPerSecond below 2 still lets two through at once (an HA pair of Prometheus), then one every 1/rate seconds", async () => {
  const a = await startExporter(textExporter);
  let clock = 0;
  const [target] = createHttpTargets([{ url: a.url, port: 9100, maxScrapesPerSecond: 0.5 }], { now: () => clock });
  assert.ok(target);
  const serve = () =>
    target.serve({ port: 9100, path: "/metrics", scheme: "http", headers: {}, timeoutMs: 5000, signal: new AbortController().signal }, { head() {}, write: async () => {} });
  try {
    await serve();
    await serve(); // the other Prometheus of the pair, a moment later
    await assert.rejects(serve(), /more than 0\.5 scrapes a second/);
    clock += 1_000;
    await assert.rejects(serve(), /more than 0\.5 scrapes a second/);
    clock += 1_000;
    await serve();
    assert.equal(a.requests.length, 3);
  } finally {
    target.close();
    await a.close();
  }
});

test("forwarder target: over maxScrapesPerSecond Prometheus gets a 503 naming the target, the limit and the option; the default is 10 for a target serving one path, none for one serving every path", async () => {
  const a = await startExporter(textExporter);
  try {
    // A rate so low the bucket does not refill during the test: one scrape, then busy.
    await withForwarder([{ url: a.url, port: 9100, maxScrapesPerSecond: 0.001 }], async ({ get }) => {
      assert.equal((await get("http://fwd:9100/metrics")).status, 200);
      assert.equal((await get("http://fwd:9100/metrics")).status, 200);
      const r = await get("http://fwd:9100/metrics");
      assert.equal(r.status, 503);
      assert.match(r.body.toString(), /^promproxy: client "fwd": target http:\/\/127\.0\.0\.1:\d+\/ was asked for more than 0\.001 scrapes a second, its maximum \(maxScrapesPerSecond\); not sent to the exporter\n$/);
      assert.equal(a.requests.length, 2, "the refused scrape never reached the exporter");
    });
    let clock = 0;
    const [t, all] = createHttpTargets([{ url: `${a.url}/metrics`, port: 9100 }, { url: a.url, port: 9115 }], { now: () => clock });
    const serve = (target: typeof t, port: number) =>
      target!.serve({ port, path: "/metrics", scheme: "http", headers: {}, timeoutMs: 5000, signal: new AbortController().signal }, { head() {}, write: async () => {} });
    try {
      for (let i = 0; i < 10; i++) await serve(t, 9100);
      await assert.rejects(serve(t, 9100), /more than 10 scrapes a second/);
      // Every path (blackbox_exporter's /probe?target=...: a scrape per probed target): no limit of its own.
      for (let i = 0; i < 50; i++) await serve(all, 9115);
    } finally {
      t!.close();
      all!.close();
    }
  } finally {
    await a.close();
  }
});
