// The gRPC edges of the server's fast path for the Scrape stream, seen from raw HTTP/2 clients and grpc-js:
// Trailers-Only refusals, percent-encoded grpc-message, RST_STREAM both ways, back-pressure, the read limit, the
// compressed flag, grpc-timeout, and interceptors that wrap messages.
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ClientFrameSchema } from "../../gen/promproxy/v1/scrape_pb.ts";
import { bearerAuth, peerKey, type ServerOptions } from "../../src/server/index.ts";
import { proxyGet, startClient, startServer, waitFor } from "../helpers.ts";
import { frame, hello, raw } from "./fixtures/raw-h2.ts";

/** These edges are the fast path's (Connect answers refusals in trailers, never resets a stream that stopped reading). */
const fastServer = (o: ServerOptions = {}) => startServer({ ...o, fastPath: true });

test("refusals before the hello are Trailers-Only: raw HTTP/2 and grpc-js read the status and message", async () => {
  const s = await fastServer({ interceptors: [bearerAuth({ tokens: { t0ken: ["app-*"] } })] });
  try {
    const r = raw(s.port);
    r.stream.end(frame(hello("app-1")));
    const h = await r.response;
    assert.equal(h[":status"], 200);
    assert.equal(h["grpc-status"], String(Code.Unauthenticated), "the status in the only HEADERS frame");
    assert.match(String(h["grpc-message"]), /bearer/i);
    assert.equal(await r.trailers, undefined, "no trailers after a Trailers-Only response");
    assert.equal(r.frames.length, 0);
    r.session.close();

    const p = raw(s.port, { authorization: "Bearer t0ken" });
    p.stream.write(frame(hello("other")));
    const ph = await p.response;
    assert.equal(ph["grpc-status"], String(Code.PermissionDenied), "a hello refused after the chain: Trailers-Only too");
    assert.match(decodeURIComponent(String(ph["grpc-message"])), /may not use the name "other"/);
    p.session.close();

    const def = protoLoader.loadSync("promproxy/v1/scrape.proto", { includeDirs: [new URL("../../proto", import.meta.url).pathname] });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { promproxy: { v1: { ScrapeService: new (a: string, c: grpc.ChannelCredentials) => grpc.Client & { Scrape(): grpc.ClientDuplexStream<object, object> } } } };
    const client = new pkg.promproxy.v1.ScrapeService(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure());
    const call = client.Scrape();
    const err = await new Promise<grpc.ServiceError>((resolve) => call.on("error", resolve));
    call.on("data", () => {});
    assert.equal(err.code, grpc.status.UNAUTHENTICATED);
    assert.match(err.details, /bearer/i);
    client.close();
  } finally {
    await s.close();
  }
});

test("grpc-message is percent-encoded: grpc-js and Connect clients get the message back intact", async () => {
  const refuse: Interceptor = () => async () => {
    throw new ConnectError("refusé à 100%\nsecond line", Code.PermissionDenied);
  };
  const s = await fastServer({ interceptors: [refuse] });
  try {
    const r = raw(s.port);
    r.stream.end(frame(hello("a")));
    const h = await r.response;
    assert.equal(h["grpc-message"], "refus%C3%A9 %C3%A0 100%25%0Asecond line");
    r.session.close();
    const def = protoLoader.loadSync("promproxy/v1/scrape.proto", { includeDirs: [new URL("../../proto", import.meta.url).pathname] });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { promproxy: { v1: { ScrapeService: new (a: string, c: grpc.ChannelCredentials) => grpc.Client & { Scrape(): grpc.ClientDuplexStream<object, object> } } } };
    const client = new pkg.promproxy.v1.ScrapeService(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure());
    const call = client.Scrape();
    const err = await new Promise<grpc.ServiceError>((resolve) => call.on("error", resolve));
    assert.equal(err.code, grpc.status.PERMISSION_DENIED);
    assert.equal(err.details, "refusé à 100%\nsecond line");
    client.close();
  } finally {
    await s.close();
  }
});

test("a compressed flag without grpc-encoding is refused with INTERNAL; with grpc-encoding: gzip Connect serves it", async () => {
  const s = await fastServer();
  try {
    const r = raw(s.port);
    r.stream.write(frame(hello("c1"), 1));
    const h = await r.response;
    assert.equal(h["grpc-status"], String(Code.Internal));
    assert.match(decodeURIComponent(String(h["grpc-message"])), /compressed message, but the stream declared no grpc-encoding/);
    r.session.close();

    const g = raw(s.port, { "grpc-encoding": "gzip" });
    const body = Buffer.from(gzipSync(toBinary(ClientFrameSchema, create(ClientFrameSchema, hello("c2")))));
    const p = Buffer.alloc(5);
    p[0] = 1;
    p.writeUInt32BE(body.length, 1);
    g.stream.write(Buffer.concat([p, body]));
    await waitFor("the welcome through Connect", () => g.frames.find((f) => f.frame.case === "welcome"));
    g.session.close();
  } finally {
    await s.close();
  }
});

test("the read limit: a message of readMaxBytes is read, one byte more ends the stream with RESOURCE_EXHAUSTED", async () => {
  const s = await fastServer({ maxChunkBytes: 512, maxHelloBytes: 1024 });
  const limit = 1024 + 64 * 1024;
  try {
    const pad = (name: string, total: number) => {
      const base = frame(hello(name, { version: "" })).length - 5;
      // The version field grows by its length and (past 127 bytes) one more byte of length prefix.
      let v = total - base - 2;
      while (frame(hello(name, { version: "v".repeat(v) })).length - 5 > total) v--;
      const f = frame(hello(name, { version: "v".repeat(v) }));
      assert.equal(f.length - 5, total);
      return f;
    };
    const ok = raw(s.port);
    ok.stream.write(pad("at-limit", limit));
    await waitFor("the welcome", () => ok.frames.find((f) => f.frame.case === "welcome"));
    ok.session.close();
    const over = raw(s.port);
    over.stream.write(pad("over-limit", limit + 1));
    const h = await over.response;
    assert.equal(h["grpc-status"], String(Code.ResourceExhausted));
    assert.match(decodeURIComponent(String(h["grpc-message"])), new RegExp(`message size ${limit + 1} is larger than configured readMaxBytes ${limit}`));
    over.session.close();
  } finally {
    await s.close();
  }
});

test("grpc-timeout is honoured (DEADLINE_EXCEEDED in trailers); a malformed one is refused with INVALID_ARGUMENT", async () => {
  const s = await fastServer();
  try {
    const r = raw(s.port, { "grpc-timeout": "400m" });
    r.stream.write(frame(hello("deadline")));
    await waitFor("the welcome", () => r.frames.find((f) => f.frame.case === "welcome"));
    const t = await r.trailers;
    assert.equal(t?.["grpc-status"], String(Code.DeadlineExceeded));
    r.session.close();
    const bad = raw(s.port, { "grpc-timeout": "soon" });
    bad.stream.write(frame(hello("bad-deadline")));
    assert.equal((await bad.response)["grpc-status"], String(Code.InvalidArgument));
    bad.session.close();
  } finally {
    await s.close();
  }
});

test("RST_STREAM from the client: listed as vanished, without a goodbye", async () => {
  const s = await fastServer();
  try {
    const r = raw(s.port);
    r.stream.write(frame(hello("rst")));
    await waitFor("the welcome", () => r.frames.find((f) => f.frame.case === "welcome"));
    r.stream.close(http2.constants.NGHTTP2_CANCEL);
    const res = await waitFor("listed as vanished", async () => {
      const x = await proxyGet(s.port, "http://rst/metrics");
      return x.status === 503 ? x : undefined;
    });
    assert.match(res!.body.toString(), /without a goodbye/);
    r.session.close();
  } finally {
    await s.close();
  }
});

for (const fastPath of [true, false]) test(`a client that stops reading: the unread-frame bound ends its stream and the server resets it (${fastPath ? "fast path" : "Connect"})`, { timeout: 60_000 }, async () => {
  // On Connect the handler waits behind a write the client never takes: the stream is reset as soon as the session
  // ends (src/server/stream-reset.ts), not after the front's unreadAnswerTimeoutMs (60 s).
  const s = await startServer({ maxScrapesInFlight: 400, heartbeatIntervalMs: 500, fastPath });
  try {
    // A window of 1 KiB and no reader: the server's writes back up after a few hundred frames.
    const r = raw(s.port, {}, { initialWindowSize: 1024 }, false);
    r.stream.write(frame(hello("deaf")));
    await waitFor("connected", () => s.server.clients().find((c) => c.name === "deaf"));
    const pong = setInterval(() => r.stream.write(frame({ frame: { case: "pong", value: {} } })), 100);
    try {
      // Orders and their cancels (a short deadline) pile up unread: 2 frames per scrape.
      for (let round = 0; round < 10 && s.server.clients().some((c) => c.name === "deaf"); round++) {
        await Promise.all(Array.from({ length: 300 }, () => proxyGet(s.port, "http://deaf/metrics", { "X-Prometheus-Scrape-Timeout-Seconds": "0.05" })));
      }
      await waitFor("delisted", () => !s.server.clients().some((c) => c.name === "deaf"), 20_000);
      const res = await proxyGet(s.port, "http://deaf/metrics");
      // Frames pile up past the bound, or wait a heartbeat timeout with none taken (unsent orders of abandoned
      // scrapes are taken back, so they no longer pile up).
      assert.match(res.body.toString(), /stopped reading its stream \(\d+ frames unread( for [\d.]+s)?\)/);
      assert.equal(await r.closed, http2.constants.NGHTTP2_CANCEL, "the server reset the stream (RST_STREAM CANCEL)");
    } finally {
      clearInterval(pong);
      r.session.destroy();
    }
  } finally {
    await s.close();
  }
});

test("interceptors that wrap the request or the response messages still see every message and serve scrapes", async () => {
  let seenIn = 0;
  let seenOut = 0;
  const wrapIn: Interceptor = (next) => async (req) => {
    if (!req.stream) return next(req);
    const inner = req.message;
    return next({ ...req, message: (async function* () { for await (const m of inner) { seenIn++; yield m; } })() });
  };
  const wrapOut: Interceptor = (next) => async (req) => {
    const res = await next(req);
    if (!res.stream) return res;
    const inner = res.message;
    return { ...res, message: (async function* () { for await (const m of inner) { seenOut++; yield m; } })() };
  };
  for (const interceptors of [[wrapIn], [wrapOut], [wrapIn, wrapOut]]) {
    seenIn = seenOut = 0;
    const s = await fastServer({ interceptors });
    const c = await startClient(s.url, "wrapped");
    try {
      const r = await proxyGet(s.port, "http://wrapped/metrics");
      assert.equal(r.status, 200);
      assert.match(r.body.toString(), /test_up_total/);
      if (interceptors.includes(wrapIn)) assert.ok(seenIn >= 2, "hello and the result (one frame with single-result) passed the request wrapper");
      if (interceptors.includes(wrapOut)) assert.ok(seenOut >= 2, "welcome and order passed the response wrapper");
    } finally {
      await c.stop();
      await s.close();
    }
  }
});

test("a header-reading interceptor sees the request headers, URL and peer as on Connect; headers it sets reach the client", async () => {
  const seen: string[] = [];
  const spy: Interceptor = (next) => async (req) => {
    seen.push(`${req.header.get("x-team")} ${new URL(req.url).pathname} ${req.contextValues.get(peerKey)?.remoteAddress} ${req.stream}`);
    const res = await next(req);
    res.header.set("x-served-by", "fast");
    res.trailer.set("x-bye", "1");
    return res;
  };
  for (const fastPath of [true, false]) {
    seen.length = 0;
    const s = await startServer({ interceptors: [spy], fastPath });
    try {
      const r = raw(s.port, { "x-team": "blue" });
      r.stream.write(frame(hello(`spy-${fastPath}`)));
      const h = await r.response;
      assert.equal(h["x-served-by"], "fast", `fastPath ${fastPath}`);
      assert.deepEqual(seen, ["blue /promproxy.v1.ScrapeService/Scrape 127.0.0.1 true"]);
      await waitFor("the welcome", () => r.frames.find((f) => f.frame.case === "welcome"));
      r.stream.end();
      const t = await r.trailers;
      assert.equal(t?.["grpc-status"], "0", "a goodbye ends the call with OK");
      assert.equal(t?.["x-bye"], "1");
      r.session.close();
    } finally {
      await s.close();
    }
  }
});
