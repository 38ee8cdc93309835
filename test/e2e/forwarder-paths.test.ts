/**
 * Path traversal through the forwarder, end to end: a `promproxy client`
 * process forwarding to an exporter that decodes and normalises paths as
 * leniently as common servers do (percent-decoding until nothing changes,
 * overlong UTF-8, IIS %u, "\" as "/", ";params" dropped, Unicode look-alikes
 * folded, trailing dots stripped, NUL truncating, ".." resolved) and serves
 * a secret outside the target's path. Every attack goes to the server as a
 * real proxy request (an absolute URI on a raw socket, as no URL parser
 * would send it) and must be answered with a 4xx that never reaches the
 * exporter. The same test passes against an old server (the forwarder
 * refuses on its own) and a server that checks paths itself.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import * as http from "node:http";
import * as net from "node:net";
import { test } from "node:test";
import { checkRequestPath, pathMatches } from "../../src/shared/paths.ts";
import { startServer, waitFor, type TestServer } from "../helpers.ts";
import { runCli, type CliProcess } from "./prometheus.ts";

const secret = "TOP SECRET: outside every target path\n";
const metricsText = "# TYPE lenient_up gauge\nlenient_up 1\n";

/** Percent-decodes the way lenient servers do: overlong UTF-8 and %uXXXX too, malformed escapes left as they are. */
function lenientDecode(s: string): string {
  const overlong: [RegExp, string][] = [
    [/%c0%ae|%e0%80%ae|%c0%2e/gi, "."],
    [/%c0%af|%e0%80%af/gi, "/"],
    [/%c1%9c|%c1%1c/gi, "\\"],
  ];
  for (const [re, c] of overlong) s = s.replace(re, c);
  s = s.replace(/%u([0-9a-f]{4})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  return s.replace(/(?:%[0-9a-f]{2})+/gi, (run) => Buffer.from(run.replace(/%/g, ""), "hex").toString("utf8"));
}

/** The file an exporter that decodes and normalises leniently would serve for a request target. */
function lenientResolve(url: string): string {
  let p = url.split("?")[0] as string;
  for (let i = 0; i < 4; i++) p = lenientDecode(p); // double (and triple) decoding
  p = p.split("\0")[0] as string; // C strings end at NUL
  p = p.replace(/[\x00-\x1f\x7f]/g, "").replace(/\\/g, "/").normalize("NFKC").replace(/[\u2215\uff0f]/g, "/");
  const out: string[] = [];
  for (let seg of p.split("/")) {
    seg = (seg.split(";")[0] as string).replace(/ +$/, "");
    if (/^\.{2,}$/.test(seg)) seg = ".."; // "..." and "...." as ".." (Windows)
    else if (seg !== ".") seg = seg.replace(/\.+$/, ""); // "secret.txt." as "secret.txt"
    if (seg === "..") out.pop();
    else if (seg !== "" && seg !== ".") out.push(seg);
  }
  return "/" + out.join("/");
}

interface Exporter {
  url: string;
  /** Every request target the exporter received, raw. */
  seen: string[];
  close(): Promise<void>;
}

async function startLenientExporter(): Promise<Exporter> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? "");
    const file = lenientResolve(req.url ?? "/");
    const body = file === "/secret.txt" ? secret : file === "/metrics" ? metricsText : `exporter saw ${file}\n`;
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** One proxy request with `uri` written to the socket byte for byte; resolves with the status and body. */
async function rawProxyGet(port: number, uri: string): Promise<{ status: number; body: string }> {
  const socket = net.connect(port, "127.0.0.1");
  socket.write(Buffer.from(`GET ${uri} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n`, "utf8"));
  const chunks: Buffer[] = [];
  socket.on("data", (c: Buffer) => chunks.push(c));
  await Promise.race([once(socket, "close"), once(socket, "error")]);
  const text = Buffer.concat(chunks).toString("utf8");
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
}

/**
 * The attacks, as what follows "http://edge:PORT" (or, with "{port}", a whole
 * URI). Each is sent to a target with path "/metrics" and to one serving "/".
 */
const attacks: string[] = [
  // encoded slash and backslash, any case
  "/metrics/..%2fsecret.txt",
  "/metrics/..%2Fsecret.txt",
  "/metrics/%2e%2e%2fsecret.txt",
  "/metrics/%2E%2E%2Fsecret.txt",
  "/metrics/%2e%2E%2fsecret.txt",
  "/metrics/..%2f..%2f..%2fsecret.txt",
  "/metrics%2f..%2fsecret.txt",
  "/metrics/..%5csecret.txt",
  "/metrics/..%5Csecret.txt",
  "/metrics/%2e%2e%5csecret.txt",
  // encoded dots
  "/metrics/%2e%2e/secret.txt",
  "/metrics/.%2e/secret.txt",
  "/metrics/%2E./secret.txt",
  "/metrics/%2e%2e%2e/secret.txt",
  "/metrics/secret%2etxt",
  "/%2e%2e%2fsecret.txt",
  // double and triple encoding, any %25
  "/metrics/%252e%252e%252fsecret.txt",
  "/metrics/..%252fsecret.txt",
  "/metrics/%252E%252E/secret.txt",
  "/metrics/%25252e%25252e%25252fsecret.txt",
  "/metrics/%25",
  "/metrics/%2541",
  // malformed escapes, IIS %u
  "/metrics/%u002e%u002e%u2215secret.txt",
  "/metrics/%u002e%u002e/secret.txt",
  "/metrics/%zz",
  // overlong UTF-8
  "/metrics/%c0%ae%c0%ae%c0%afsecret.txt",
  "/metrics/%c0%ae%c0%ae/secret.txt",
  "/metrics/%C0%AE%C0%AE/secret.txt",
  "/metrics/%e0%80%ae%e0%80%ae/secret.txt",
  "/metrics/..%c1%9csecret.txt",
  "/metrics/..%c0%afsecret.txt",
  // Unicode look-alikes: fullwidth dots and solidus, the two-dot leader; encoded and raw
  "/metrics/%ef%bc%8e%ef%bc%8e%ef%bc%8fsecret.txt",
  "/metrics/%ef%bc%8e%ef%bc%8e/secret.txt",
  "/metrics/%e2%80%a5/secret.txt",
  "/metrics/\uff0e\uff0e/secret.txt",
  "/metrics/\u2025/secret.txt",
  // path parameters
  "/metrics/..;/secret.txt",
  "/metrics/..;x=1/secret.txt",
  "/metrics;x",
  "/metrics;/../secret.txt",
  "/metrics/%3b/..%2fsecret.txt",
  "/metrics/..%3B/secret.txt",
  // empty segments
  "//metrics",
  "/metrics//secret.txt",
  "/metrics/..//secret.txt",
  "//secret.txt",
  // raw backslashes
  "/metrics/..\\secret.txt",
  "/metrics\\..\\secret.txt",
  "/metrics/..\\..\\secret.txt",
  // NUL, control characters, spaces: encoded and raw
  "/metrics/..%00/secret.txt",
  "/metrics/secret.txt%00",
  "/metrics%00/..%2fsecret.txt",
  "/metrics/..%0a/secret.txt",
  "/metrics/..%09/secret.txt",
  "/metrics%0d%0aX-Injected:%201",
  "/metrics/..%7f/secret.txt",
  "/metrics/..%20/secret.txt",
  "/metrics/\u0000/../secret.txt",
  "/metrics/.\t./secret.txt",
  "/metrics/..\u007f/secret.txt",
  // dot segments, trailing dots
  "/metrics/../secret.txt",
  "/metrics/./../secret.txt",
  "/metrics/sub/../../secret.txt",
  "/metrics/./",
  "/./metrics",
  "/secret.txt/../metrics",
  "/metrics/...",
  "/metrics/.../secret.txt",
  "/metrics/..../secret.txt",
  "/metrics/secret.txt.",
  "/metrics/.. /secret.txt".replace(" ", "%20"),
  // fragments
  "/metrics#/../secret.txt",
  "/metrics/..%2fsecret.txt#x",
  // absolute-URI tricks
  "HTTP://EDGE:{port}/metrics/..%2Fsecret.txt",
  "http://edge.:{port}/metrics/..%2fsecret.txt",
  "http://user@edge:{port}/metrics/..%2fsecret.txt",
  "http://edge:0{port}/metrics/..%2fsecret.txt",
  "http://edge:{port}\\metrics\\..\\secret.txt",
  "http://edge:{port}\\..\\secret.txt",
  "http://edge:{port}/metrics/..%2f..",
  "http://edge:{port}/metrics/..%2fsecret.txt?x=1",
];

/** Legitimate requests, each with what the exporter must see. */
const legitimate: { port: number; path: string; body?: string }[] = [
  { port: 9100, path: "/metrics", body: metricsText },
  { port: 9100, path: "/metrics?x=1&collect[]=cpu", body: metricsText },
  { port: 9100, path: "/metrics?x=..%2f..%2fsecret.txt", body: metricsText },
  { port: 9100, path: "/metrics?/../../secret.txt", body: metricsText },
  { port: 9100, path: "/metrics/sub", body: "exporter saw /metrics/sub\n" },
  { port: 9200, path: "/probe?target=http%3A%2F%2Fexample.com%2F&module=http_2xx" },
  { port: 9200, path: "/federate?match[]=up" },
  { port: 9200, path: "/?x=/../secret.txt", body: "exporter saw /\n" },
];

interface Outcome {
  uri: string;
  status: number;
  body: string;
  /** What the exporter received for this request. */
  reached: string[];
}

test("no encoded, doubled, overlong, look-alike or dot-segment path reaches the exporter through the forwarder", { timeout: 120_000 }, async () => {
  let s: TestServer | undefined;
  let fwd: CliProcess | undefined;
  const exporter = await startLenientExporter();
  try {
    s = await startServer();
    const server = s.server;
    fwd = runCli(["client", "--name", "edge", "--server", s.url, "--target", `9100=${exporter.url}/metrics`, "--target", `9200=${exporter.url}/`]);
    const cli = fwd;
    await waitFor("the forwarder to connect", () => server.clients().some((c) => c.name === "edge"), 20_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${cli.stderr()}`);
    });

    // The lenient exporter really serves the secret to a path that escapes: the attacks are live.
    assert.equal(lenientResolve("/metrics/..%2fsecret.txt"), "/secret.txt");
    assert.equal(lenientResolve("/metrics/%c0%ae%c0%ae/secret.txt"), "/secret.txt");
    assert.equal(lenientResolve("/metrics/..;/secret.txt"), "/secret.txt");

    for (const l of legitimate) {
      const before = exporter.seen.length;
      const r = await rawProxyGet(s.port, `http://edge:${l.port}${l.path}`);
      assert.equal(r.status, 200, `${l.path}: ${r.body}`);
      if (l.body !== undefined) assert.equal(r.body, l.body, l.path);
      assert.deepEqual(exporter.seen.slice(before), [l.path], "the exporter sees the path and query as Prometheus sent them");
    }

    const outcomes: Outcome[] = [];
    for (const attack of attacks) {
      for (const port of [9100, 9200]) {
        const uri = attack.includes("{port}") ? attack.replace("{port}", String(port)) : `http://edge:${port}${attack}`;
        const before = exporter.seen.length;
        const r = await rawProxyGet(s.port, uri);
        outcomes.push({ uri, ...r, reached: exporter.seen.slice(before) });
      }
    }

    // Until the server's front checks the URI as received (checkRequestPath), its URL parser resolves some attacks
    // ("/./metrics", "/metrics#x", "\", "%2e%2e") to a canonical path; one inside the target (on 9200, which
    // serves "/", "/secret.txt" is) may be forwarded as resolved. Once the front refuses them (a 400 "refused
    // path"), every attack must be refused.
    const frontChecks = outcomes.some((o) => o.status === 400 && o.body.startsWith("promproxy: refused path"));
    const failures: string[] = [];
    for (const o of outcomes) {
      // (A raw control or non-ASCII character is refused by the server's HTTP parser: "promproxy: bad request".)
      if (o.status >= 400 && o.status < 500 && o.reached.length === 0 && o.body.startsWith("promproxy: ")) continue;
      if (!frontChecks && o.reached.length === 1 && o.reached[0] === resolvedInTarget(o.uri)) continue;
      const leak = o.body.includes(secret) ? " (THE SECRET)" : "";
      failures.push(`${JSON.stringify(o.uri)}: ${o.status} ${JSON.stringify(o.body.slice(0, 120))}${leak}, exporter saw ${JSON.stringify(o.reached)}`);
    }
    assert.deepEqual(failures, [], `${failures.length} of ${outcomes.length} attacks were not refused:\n${failures.join("\n")}`);
  } finally {
    await fwd?.kill();
    await s?.close();
    await exporter.close();
  }
});

/** The path a URL parser resolves `uri` to, when that is canonical and inside one of the test's targets. */
function resolvedInTarget(uri: string): string | undefined {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return undefined;
  }
  const path = u.pathname + u.search;
  const prefix = u.port === "9100" ? "/metrics" : "/";
  return checkRequestPath(path) === undefined && pathMatches(prefix, path) ? path : undefined;
}
