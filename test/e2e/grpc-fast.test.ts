/**
 * The client's fast path against connect-es, side by side: a scripted raw
 * HTTP/2 server (gRPC framing by hand) answers both transports the same way,
 * and each scenario must give the same frames on the wire, or the same
 * ConnectError (code and message) to the application: Trailers-Only errors,
 * percent-encoded grpc-message, RST_STREAM, GOAWAY, HTTP errors, a missing
 * status, an oversized frame, a compressed flag. Plus what only the fast path
 * does: header-only interceptors on it, message-wrapping ones on Connect.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, test } from "node:test";
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Registry, Gauge } from "prom-client";
import { ClientFrameSchema, ServerFrameSchema, type ClientFrame } from "../../gen/promproxy/v1/scrape_pb.ts";
import { createClient } from "../../src/client/index.ts";
import { waitFor } from "../helpers.ts";

type Transport = "fast" | "connect";
const transports: Transport[] = ["fast", "connect"];
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

function envelope(frame: MessageInitShape<typeof ServerFrameSchema>, flags = 0): Buffer {
  const body = toBinary(ServerFrameSchema, create(ServerFrameSchema, frame));
  const out = Buffer.alloc(5 + body.byteLength);
  out[0] = flags;
  out.writeUInt32BE(body.byteLength, 1);
  out.set(body, 5);
  return out;
}
const welcome = envelope({ frame: { case: "welcome", value: { sessionId: "s", limits: { maxChunkBytes: 65536 } } } });

interface Seen {
  headers: http2.IncomingHttpHeaders;
  /** Each client frame's envelope, as it came. */
  raw: Buffer[];
  frames: ClientFrame[];
}

/** A raw HTTP/2 server: every stream goes to `script` with what the client sent so far. */
async function rawServer(script: (stream: http2.ServerHttp2Stream, seen: Seen, session: http2.ServerHttp2Session) => void): Promise<{ url: string; seen: Seen[] }> {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  const all: Seen[] = [];
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
    s.on("error", () => {});
  });
  server.on("stream", (stream, headers) => {
    stream.on("error", () => {});
    const seen: Seen = { headers, raw: [], frames: [] };
    all.push(seen);
    let buf = Buffer.alloc(0);
    stream.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.byteLength >= 5 && buf.byteLength >= 5 + buf.readUInt32BE(1)) {
        const n = 5 + buf.readUInt32BE(1);
        seen.raw.push(buf.subarray(0, n));
        seen.frames.push(fromBinary(ClientFrameSchema, buf.subarray(5, n)));
        buf = buf.subarray(n);
      }
    });
    script(stream, seen, stream.session as http2.ServerHttp2Session);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closers.push(() => new Promise<void>((r) => {
    for (const s of sessions) s.destroy();
    server.close(() => r());
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen: all };
}

function registry(): Registry {
  const r = new Registry();
  const g = new Gauge({ name: "fast_path_bytes", help: "a gauge with many series", labelNames: ["i"], registers: [r] });
  for (let i = 0; i < 4000; i++) g.set({ i: String(i) }, i * 1.5);
  return r;
}

/** Runs a client with `transport` against `url` until `done` says so; returns the errors it reported. */
async function runClient(url: string, transport: Transport, done: (errors: ConnectError[]) => boolean, extra: Record<string, unknown> = {}): Promise<ConnectError[]> {
  const errors: ConnectError[] = [];
  const client = createClient({
    name: "app-1",
    serverUrl: url,
    transport,
    registry: registry(),
    backoff: { initialMs: 20, maxMs: 50 },
    logger: { debug() {}, info() {}, warn() {}, error() {} } as never,
    onError: (e) => errors.push(e),
    onDisconnected: (e) => void (e && errors.push(e)),
    ...extra,
  });
  client.start().catch(() => {});
  try {
    await waitFor(`${transport}: the scenario`, () => done(errors), 20_000);
  } finally {
    await client.stop();
  }
  return errors;
}

const firstError = async (script: Parameters<typeof rawServer>[0], extra: Record<string, unknown> = {}) => {
  const out: Record<string, { code: string; message: string }> = {};
  for (const t of transports) {
    const { url } = await rawServer(script);
    const [e] = await runClient(url, t, (errors) => errors.length > 0, extra);
    out[t] = { code: Code[e?.code ?? 0], message: (e?.rawMessage ?? "").replaceAll(url, "SERVER") }; // each transport has a server of its own
  }
  return out;
};

test("a scrape gives the same request headers and the same frames, byte for byte, on both transports", async (t) => {
  const wire: Record<string, Seen> = {};
  for (const transport of transports) {
    const { url, seen } = await rawServer((stream, s) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.write(welcome);
      stream.write(envelope({ frame: { case: "order", value: { scrapeId: 300n, path: "/metrics", creditBytes: 1n << 30n } } }));
      void s;
    });
    await runClient(url, transport, () => (seen[0]?.frames ?? []).some((f) => f.frame.case === "end"));
    wire[transport] = seen[0] as Seen;
  }
  const [fast, connect] = [wire.fast as Seen, wire.connect as Seen];
  const kinds = fast.frames.map((f) => f.frame.case);
  t.diagnostic(`frames: ${kinds.join(",")}; bytes ${fast.raw.reduce((n, b) => n + b.byteLength, 0)}`);
  assert.ok(kinds.filter((k) => k === "chunk").length >= 2, "a body of several chunks");
  assert.deepEqual(fast.raw.map((b) => b.toString("hex")), connect.raw.map((b) => b.toString("hex")));
  const pick = (h: http2.IncomingHttpHeaders) => Object.fromEntries(Object.entries(h).filter(([k]) => k !== ":authority"));
  assert.deepEqual(pick(fast.headers), pick(connect.headers));
});

/** The scrape a result frame is about; undefined for a hello or a pong. */
function scrapeIdOf(f: ClientFrame): bigint | undefined {
  const v = f.frame;
  return v.case === "head" || v.case === "chunk" || v.case === "end" || v.case === "result" ? v.value.scrapeId : undefined;
}

test("with the feature single-result, a small scrape is one result frame, the same on both transports", async () => {
  const wire: Record<string, Seen> = {};
  const single = envelope({ frame: { case: "welcome", value: { sessionId: "s", limits: { maxChunkBytes: 1 << 20 }, features: ["single-result"] } } });
  for (const transport of transports) {
    const { url, seen } = await rawServer((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.write(single);
      stream.write(envelope({ frame: { case: "order", value: { scrapeId: 300n, path: "/metrics", creditBytes: 1n << 30n } } }));
      // Credit under the body: a head and a chunk within the credit, as without the feature.
      stream.write(envelope({ frame: { case: "order", value: { scrapeId: 301n, path: "/metrics", creditBytes: 100n } } }));
    });
    const sent = (id: bigint, kind: string) => (seen[0]?.frames ?? []).some((f) => f.frame.case === kind && scrapeIdOf(f) === id);
    await runClient(url, transport, () => sent(300n, "result") && sent(301n, "chunk"));
    wire[transport] = seen[0] as Seen;
  }
  const [fast, connect] = [wire.fast as Seen, wire.connect as Seen];
  for (const seen of [fast, connect]) {
    const of = (id: bigint) => seen.frames.filter((f) => scrapeIdOf(f) === id).map((f) => f.frame.case);
    assert.deepEqual(of(300n), ["result"]);
    assert.deepEqual(of(301n).slice(0, 2), ["head", "chunk"]);
    const f = seen.frames.find((f) => f.frame.case === "result")?.frame;
    assert.ok(f?.case === "result");
    const r = f.value;
    assert.ok(r.data.byteLength > 1000 && r.status === 200);
    assert.ok(r.headers.some((h) => h.name === "content-length" && h.value === String(r.data.byteLength)));
  }
  const result = (s: Seen) => s.frames.find((f) => f.frame.case === "result");
  assert.deepEqual(result(fast), result(connect));
});

for (const [label, code, message] of [
  ["Unauthenticated", 16, "no valid credentials: Bearer token %E2%9C%93 100%25 refused"],
  ["AlreadyExists", 6, "client %22app-1%22 is connected already"],
  ["PermissionDenied", 7, "plain"],
] as const) {
  test(`a Trailers-Only ${label} refusal with a percent-encoded grpc-message is the same error on both`, async () => {
    const got = await firstError((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": String(code), "grpc-message": message }, { endStream: true });
    });
    assert.deepEqual(got.fast, got.connect);
    assert.equal(got.fast?.code, label);
    assert.equal(got.fast?.message, decodeURIComponent(message));
  });
}

test("a grpc-message that is not valid percent-encoding keeps the server's code (the fast path keeps its text)", async () => {
  const { url } = await rawServer((stream) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "6", "grpc-message": "bad %E2%ZZ" }, { endStream: true });
  });
  const [e] = await runClient(url, "fast", (errors) => errors.length > 0);
  assert.equal(e?.code, Code.AlreadyExists);
  assert.equal(e?.rawMessage, "bad %E2%ZZ");
});

for (const [label, rst] of [
  ["REFUSED_STREAM", http2.constants.NGHTTP2_REFUSED_STREAM],
  ["ENHANCE_YOUR_CALM", http2.constants.NGHTTP2_ENHANCE_YOUR_CALM],
  ["CANCEL", http2.constants.NGHTTP2_CANCEL],
  ["INTERNAL_ERROR", http2.constants.NGHTTP2_INTERNAL_ERROR],
] as const) {
  test(`RST_STREAM ${label} from the server after its welcome is the same error on both`, async (t) => {
    const got = await firstError((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.write(welcome, () => setTimeout(() => stream.close(rst), 50));
    });
    t.diagnostic(JSON.stringify(got.fast));
    assert.deepEqual(got.fast, got.connect);
    assert.notEqual(got.fast?.code, "Canceled", "never taken for our own stop");
  });
}

test("RST_STREAM from the client: the same reset when the welcome times out and when it stops, on both", async () => {
  const codes: Record<string, number[]> = {};
  for (const transport of transports) {
    const resets: number[] = [];
    const { url } = await rawServer((stream) => {
      stream.on("close", () => resets.push(stream.rstCode ?? -1));
      stream.respond({ ":status": 200, "content-type": "application/grpc" }); // and never welcomes
    });
    await runClient(url, transport, () => resets.length >= 1, { welcomeTimeoutMs: 300 });

    const stopped: number[] = [];
    const second = await rawServer((stream) => {
      stream.on("close", () => stopped.push(stream.rstCode ?? -1));
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
    });
    const client = createClient({ name: "app-1", serverUrl: second.url, transport, registry: new Registry(), logger: { debug() {}, info() {}, warn() {}, error() {} } as never });
    client.start().catch(() => {});
    await waitFor("a stream", () => second.seen.length >= 1 && (second.seen[0]?.frames.length ?? 0) >= 1);
    await client.stop();
    await waitFor("the reset", () => stopped.length >= 1);
    assert.equal(stopped[0], http2.constants.NGHTTP2_CANCEL, `${transport}: stop`);
    codes[transport] = [resets[0] ?? -1, stopped[0] ?? -1];
  }
  assert.deepEqual(codes.fast, codes.connect);
});

test("GOAWAY with an error code from the server is the same error on both", async () => {
  const got = await firstError((stream, _s, session) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" });
    // Unless the session is gone by then (on a loaded machine): goaway() would throw in this server, after the test.
    stream.write(welcome, () => setTimeout(() => !session.destroyed && session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, 0), 50));
  });
  assert.deepEqual(got.fast, got.connect);
});

for (const [label, script] of [
  ["an HTTP 503", (s: http2.ServerHttp2Stream) => s.respond({ ":status": 503, "content-type": "text/plain" }, { endStream: true })],
  ["a text/html 200", (s: http2.ServerHttp2Stream) => s.respond({ ":status": 200, "content-type": "text/html" }, { endStream: true })],
  ["an end without any status", (s: http2.ServerHttp2Stream) => {
    s.respond({ ":status": 200, "content-type": "application/grpc" });
    s.end(welcome);
  }],
  ["a clean end (status 0) after the welcome", (s: http2.ServerHttp2Stream) => {
    s.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    s.on("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(welcome);
  }],
  ["a frame over the read limit", (s: http2.ServerHttp2Stream) => {
    s.respond({ ":status": 200, "content-type": "application/grpc" });
    s.write(welcome);
    const big = Buffer.alloc(5 + 2 * 1024 * 1024);
    big.writeUInt32BE(2 * 1024 * 1024, 1);
    s.write(big);
  }],
  ["a compressed flag", (s: http2.ServerHttp2Stream) => {
    s.respond({ ":status": 200, "content-type": "application/grpc" });
    s.write(welcome);
    s.write(envelope({ frame: { case: "ping", value: { nonce: 1n } } }, 1));
  }],
  ["grpc-encoding gzip", (s: http2.ServerHttp2Stream) => {
    s.respond({ ":status": 200, "content-type": "application/grpc", "grpc-encoding": "gzip" });
    s.write(welcome);
  }],
  ["a frame cut short by the end of the stream", (s: http2.ServerHttp2Stream) => {
    s.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    s.on("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.write(welcome);
    s.end(welcome.subarray(0, 3));
  }],
] as const) {
  test(`${label}: the same error on both transports`, async (t) => {
    const got = await firstError(script);
    t.diagnostic(JSON.stringify(got.fast));
    assert.deepEqual(got.fast, got.connect);
  });
}

test("header interceptors run on the fast path; one that wraps the messages sends the stream through Connect", async () => {
  const bearer: Interceptor = (next) => async (req) => {
    req.header.set("authorization", "Bearer secret");
    return next(req);
  };
  const wrapsRequest: Interceptor = (next) => async (req) => {
    if (!req.stream) return next(req);
    const inner = req.message;
    return next({ ...req, message: (async function* () {
      for await (const m of inner) yield m;
    })() });
  };
  for (const [label, interceptors, connect] of [
    ["a header interceptor", [bearer], false],
    ["a request-wrapping interceptor", [bearer, wrapsRequest], true],
  ] as const) {
    const debug: string[] = [];
    const { url, seen } = await rawServer((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.write(welcome);
    });
    const logger = { debug: (m: string) => debug.push(m), info() {}, warn() {}, error() {} };
    await runClient(url, "fast", () => (seen[0]?.frames.length ?? 0) > 0, { interceptors, logger });
    assert.equal(seen[0]?.headers.authorization, "Bearer secret", label);
    assert.equal(seen[0]?.frames[0]?.frame.case, "hello", label);
    assert.equal(debug.some((m) => /uses the Connect transport/.test(m)), connect, `${label}: ${debug.join("; ")}`);
  }
});

test("an interceptor that throws fails the attempt with its error on both transports", async () => {
  const refuses: Interceptor = () => async () => {
    throw new ConnectError("no token yet", Code.Unavailable);
  };
  const got = await firstError((stream) => stream.respond({ ":status": 200 }, { endStream: true }), { interceptors: [refuses] });
  assert.deepEqual(got.fast, got.connect);
  assert.equal(got.fast?.message, "no token yet");
});

test("an unknown transport is refused at createClient, naming the option", () => {
  assert.throws(() => createClient({ name: "a", serverUrl: "http://127.0.0.1:1", transport: "fastest" as never }), /option transport must be "fast" or "connect", got "fastest"/);
});
