/**
 * HTTP/2 answers nobody takes (listen option `unreadAnswerTimeoutMs`): a
 * peer that requests `/clients` or `/` on a stream whose
 * flow-control window stays 0 gets RST_STREAM CANCEL within 1.25 × the
 * timeout and the server lets go of the answer; a peer that opens its window
 * before the timeout gets the whole answer. Counts streams and bytes held,
 * never wall-clock speed (bounds have wide margins).
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { after, before, describe, test } from "node:test";
import type { PromproxyClient } from "../../src/client/index.ts";
import { createServer, silentLogger, type PromproxyServer } from "../../src/server/index.ts";
import { createH2Server } from "../../src/server/listen/h2-server.ts";
import { answerInSlices, sliceBytes } from "../../src/server/listen/answer-slices.ts";
import type { ServerResponse } from "node:http";
import { startClient } from "../helpers.ts";

const timeoutMs = 1_500;
/** Reset within 1.25 × the timeout; the margin is for a loaded 2-core machine. */
const boundMs = timeoutMs * 1.25 + 8_000;

/** Requests `path` on a session whose streams start with a zero window; resolves how the stream ended. */
function stalled(session: http2.ClientHttp2Session, path: string, headers: http2.OutgoingHttpHeaders = {}) {
  const stream = session.request({ ":path": path, ...headers });
  stream.pause();
  stream.on("error", () => {});
  const started = performance.now();
  const closed = new Promise<{ rstCode: number | undefined; afterMs: number; status?: number }>((resolve) => {
    let status: number | undefined;
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.on("close", () => resolve({ rstCode: stream.rstCode, afterMs: performance.now() - started, status }));
  });
  return { stream, closed };
}

describe("HTTP/2 answers nobody takes", () => {
  let server: PromproxyServer;
  let port: number;
  let client: PromproxyClient;

  before(async () => {
    server = createServer({ logger: silentLogger });
    ({ port } = await server.listen({ host: "127.0.0.1", port: 0, unreadAnswerTimeoutMs: timeoutMs }));
    client = await startClient(`http://127.0.0.1:${port}`, "big");
  });
  after(async () => {
    await client?.stop();
    await server?.close({ graceMs: 500 });
  });

  for (const path of ["/clients", "/"]) {
    test(`${path} on a zero window: reset with CANCEL after the timeout, not before`, async () => {
      const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 0 } });
      session.on("error", () => {});
      try {
        const streams = Array.from({ length: 8 }, () => stalled(session, path));
        const ends = await Promise.all(streams.map((s) => s.closed));
        for (const e of ends) {
          assert.equal(e.status, 200);
          assert.equal(e.rstCode, http2.constants.NGHTTP2_CANCEL);
          assert.ok(e.afterMs >= timeoutMs - 50, `reset after ${e.afterMs} ms, before the timeout`);
          assert.ok(e.afterMs <= boundMs, `reset after ${e.afterMs} ms`);
        }
      } finally {
        session.destroy();
      }
    });
  }

  test("a peer that opens its window before the timeout gets the whole answer", async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 0 } });
    session.on("error", () => {});
    try {
      const { stream, closed } = stalled(session, "/");
      await new Promise((resolve) => setTimeout(resolve, timeoutMs / 2));
      let bytes = 0;
      stream.on("data", (d: Buffer) => (bytes += d.length));
      session.settings({ initialWindowSize: 65_535 });
      stream.resume();
      const end = await closed;
      assert.equal(end.rstCode, http2.constants.NGHTTP2_NO_ERROR);
      assert.ok(bytes > 0);
    } finally {
      session.destroy();
    }
  });

  test("no proxied scrape runs over HTTP/2: an absolute-form :path is refused (PROTOCOL_ERROR) before the front sees it", async () => {
    const started: string[] = [];
    const onFinished = (e: { name: string; outcome: string }) => started.push(e.outcome);
    server.on("scrapeFinished", onFinished);
    const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 0 } });
    session.on("error", () => {});
    try {
      const end = await stalled(session, "http://big/metrics", { "x-prometheus-scrape-timeout-seconds": "120" }).closed;
      assert.equal(end.rstCode, http2.constants.NGHTTP2_PROTOCOL_ERROR);
      assert.equal(end.status, undefined);
      assert.deepEqual(started, []);
    } finally {
      server.off("scrapeFinished", onFinished);
      session.destroy();
    }
  });
});

/** A bare HTTP/2 server whose every answer is `bytes` long, sent as the front sends its pages. */
async function startH2(bytes: number, maxUnreadAnswerBytesPerConnection: number, unreadAnswerTimeoutMs = timeoutMs) {
  const h2 = createH2Server({
    handler: (_req, response) => {
      const res = response as unknown as ServerResponse;
      answerInSlices(res, 200, { "content-length": bytes }, Buffer.alloc(bytes, 1), (why) => res.writeHead(503).end(why));
    },
    maxStreamsPerConnection: 16,
    maxHeaderListBytes: 16_384,
    idleSessionTimeoutMs: 60_000,
    pingIntervalMs: 60_000,
    unreadAnswerTimeoutMs,
    maxUnreadAnswerBytesPerConnection,
  });
  await new Promise<void>((resolve) => h2.server.listen(0, "127.0.0.1", resolve));
  const { port } = h2.server.address() as { port: number };
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 0 } });
  session.on("error", () => {});
  return {
    h2,
    session,
    async close() {
      session.destroy();
      h2.stop();
      await new Promise((resolve) => h2.server.close(resolve));
    },
  };
}

test("16 streams of 4 MiB on a zero window: reset, and their memory released", async () => {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  const held = () => {
    gc();
    return process.memoryUsage().arrayBuffers;
  };
  const before = held();
  // A longer timeout here: the memory held while the answers wait is read before any of them is reset, on a loaded machine too.
  const { h2, session, close } = await startH2(4 * 1024 * 1024, 128 * 1024 * 1024, 5_000);
  try {
    const streams = Array.from({ length: 16 }, () => stalled(session, "/"));
    const t0 = Date.now();
    while (h2.answers() < 16 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(h2.answers(), 16);
    const during = held();
    assert.ok(during - before >= 48 * 1024 * 1024, `held ${during - before} bytes while the answers wait`);
    const ends = await Promise.all(streams.map((s) => s.closed));
    for (const e of ends) assert.equal(e.rstCode, http2.constants.NGHTTP2_CANCEL);
    assert.equal(h2.answers(), 0);
    // Released once the server side has closed its streams too (a moment after the client saw the resets).
    let afterReset = held();
    for (const t1 = Date.now(); afterReset - before >= 8 * 1024 * 1024 && Date.now() - t1 < 10_000; afterReset = held()) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(afterReset - before < 8 * 1024 * 1024, `still held ${afterReset - before} bytes after the resets`);
  } finally {
    await close();
  }
});

test("maxUnreadAnswerBytesPerConnection: answers up to it wait, the one past it is answered 503", async () => {
  // Each answer counts whole while its stream holds it (its slices are views of it); the cap lets exactly two wait.
  const bytes = 512 * 1024 + sliceBytes;
  const { session, close } = await startH2(bytes, 2 * bytes);
  try {
    const first = stalled(session, "/");
    await new Promise((resolve) => first.stream.once("response", resolve));
    const second = stalled(session, "/");
    await new Promise((resolve) => second.stream.once("response", resolve));
    const third = stalled(session, "/");
    const status = await new Promise((resolve) => third.stream.once("response", (h) => resolve(h[":status"])));
    assert.equal(status, 503, "past the cap");
    for (const s of [first, second]) assert.equal((await s.closed).status, 200);
    // The waiting answers were reset (unread): their bytes no longer count, a new answer goes.
    for (const s of [first, second]) assert.equal((await s.closed).rstCode, http2.constants.NGHTTP2_CANCEL);
    const fourth = stalled(session, "/");
    assert.equal(await new Promise((resolve) => fourth.stream.once("response", (h) => resolve(h[":status"]))), 200);
    fourth.stream.close();
    third.stream.close();
  } finally {
    await close();
  }
});
