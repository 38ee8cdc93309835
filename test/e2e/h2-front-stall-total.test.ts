/**
 * The total of HTTP/2 answers nobody takes (listen option `maxUnreadAnswerBytes`):
 * many connections that never read hold at most the total together; a new
 * answer past it, on any connection, is answered 503 with one line saying so
 * (logged once a minute at most); once the stalled answers are reset
 * (`unreadAnswerTimeoutMs`), a reader is served again. Counts bytes held,
 * never wall-clock speed.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { ServerResponse } from "node:http";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { test } from "node:test";
import { Gauge, Registry } from "prom-client";
import { createServer, type PromproxyServer } from "../../src/server/index.ts";
import { createH2Server } from "../../src/server/listen/h2-server.ts";
import { answerInSlices, sliceBytes } from "../../src/server/listen/answer-slices.ts";
import { resolveListenOptions } from "../../src/server/listen/listen-options.ts";
import { pagesMaxAgeMs } from "../../src/server/status/status-pages.ts";
import type { Logger } from "../../src/shared/logger.ts";
import { waitFor } from "../helpers.ts";

const timeoutMs = 1_500;
const MiB = 1024 * 1024;
const totalLine = (max: number) => new RegExp(`^(promproxy: )?the server holds \\d+ bytes of answers their peers have not read \\(at most ${max}, listen option maxUnreadAnswerBytes\\): retry later\\n?$`);

/** A connection whose streams start with a zero window: it never reads an answer. */
/** Each staller from its own loopback address: one address may hold only a share of the total (answer-slices.ts). */
let nextAddress = 10;
function staller(port: number) {
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 0 }, localAddress: `127.0.0.${nextAddress++}` } as http2.ClientSessionOptions);
  session.on("error", () => {});
  return session;
}

/** Asks `path` on a session that does not read; resolves the status once the head arrives, and how the stream ended. */
async function stalled(session: http2.ClientHttp2Session, path: string) {
  const stream = session.request({ ":path": path });
  stream.pause();
  stream.on("error", () => {});
  const closed = new Promise<number | undefined>((resolve) => stream.on("close", () => resolve(stream.rstCode)));
  const status = await new Promise<number>((resolve) => stream.once("response", (h) => resolve(Number(h[":status"]))));
  return { status, closed };
}

/** Asks `path` on a session that reads everything: status and body. */
function read(session: http2.ClientHttp2Session, path: string) {
  return new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
    const stream = session.request({ ":path": path });
    const parts: Buffer[] = [];
    let status = 0;
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.on("data", (d: Buffer) => parts.push(d));
    stream.on("end", () => resolve({ status, body: Buffer.concat(parts) }));
    stream.on("error", reject);
  });
}

test("maxUnreadAnswerBytes: 256 MiB by default; a whole number >= 0, else refused", () => {
  assert.equal(resolveListenOptions({}).maxUnreadAnswerBytes, 256 * MiB);
  assert.equal(resolveListenOptions({ maxUnreadAnswerBytes: 0 }).maxUnreadAnswerBytes, 0);
  for (const maxUnreadAnswerBytes of [-1, 1.5, Number.NaN, Infinity]) {
    assert.throws(() => resolveListenOptions({ maxUnreadAnswerBytes }), /listen option maxUnreadAnswerBytes must be a whole number >= 0/, String(maxUnreadAnswerBytes));
  }
});

test("8 connections that never read: together they hold at most the total, the answer past it is 503, a reader is served after the resets", async () => {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  const held = () => {
    gc();
    return process.memoryUsage().arrayBuffers;
  };
  // Each answer (its own buffer) counts whole while its stream holds it: the total lets exactly 4 wait (16 MiB and 4
  // slices; the 16 answers would hold 65 MiB).
  const bytes = 4 * MiB + sliceBytes;
  const max = 4 * bytes;
  const refusals: string[] = [];
  const h2 = createH2Server({
    handler: (_req, response) => {
      const res = response as unknown as ServerResponse;
      answerInSlices(res, 200, { "content-length": bytes }, Buffer.alloc(bytes, 1), (why) => res.writeHead(503, { "content-type": "text/plain" }).end(`${why}\n`));
    },
    maxStreamsPerConnection: 16,
    maxHeaderListBytes: 16_384,
    idleSessionTimeoutMs: 60_000,
    pingIntervalMs: 60_000,
    // Long enough that every request below is asked before the first reset, on a loaded machine too.
    unreadAnswerTimeoutMs: 5_000,
    maxUnreadAnswerBytesPerConnection: 64 * MiB,
    maxUnreadAnswerBytes: max,
    onUnreadAnswersRefused: (message) => refusals.push(message),
  });
  await new Promise<void>((resolve) => h2.server.listen(0, "127.0.0.1", resolve));
  const { port } = h2.server.address() as { port: number };
  const stallers = Array.from({ length: 8 }, () => staller(port));
  const reader = http2.connect(`http://127.0.0.1:${port}`);
  reader.on("error", () => {});
  try {
    const before = held();
    const answers: Awaited<ReturnType<typeof stalled>>[] = [];
    for (let i = 0; i < 16; i++) {
      answers.push(await stalled(stallers[i % 8]!, "/"));
      assert.ok(h2.unsentBytes() <= max, `${h2.unsentBytes()} bytes held after ${i + 1} answers`);
    }
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 200, ...Array<number>(12).fill(503)],
    );
    assert.equal(h2.unsentBytes(), 4 * bytes);
    // 4 answers of 4 MiB wait (and their slices); the 12 refused hold nothing once their buffers are freed (a
    // moment after the collection that finds them, on a loaded machine: looked at again for up to 3 s).
    let during = held();
    for (const t0 = Date.now(); during - before >= max + 8 * MiB && Date.now() - t0 < 3_000; during = held()) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(during - before < max + 8 * MiB, `held ${during - before} bytes while the answers wait`);

    // A reader on its own connection: refused too while the others hold the total, with the one line.
    const refused = await read(reader, "/");
    assert.equal(refused.status, 503);
    assert.match(refused.body.toString(), totalLine(max));
    assert.equal(refusals.length, 13);
    for (const r of refusals) assert.match(r, totalLine(max));

    // The waiting answers are reset (unread): their bytes no longer count, the reader is served.
    for (const a of answers.slice(0, 4)) assert.equal(await a.closed, http2.constants.NGHTTP2_CANCEL);
    await waitFor("the total to be released", () => h2.unsentBytes() === 0);
    const served = await read(reader, "/");
    assert.equal(served.status, 200);
    assert.equal(served.body.length, bytes);
    assert.equal(h2.unsentBytes(), 0);
  } finally {
    for (const s of stallers) s.destroy();
    reader.destroy();
    h2.stop();
    await new Promise((resolve) => h2.server.close(resolve));
  }
});

test("through listen(): a page past maxUnreadAnswerBytes is 503 'promproxy: the server holds ...', logged once a minute at most", async () => {
  const warnings: string[] = [];
  const logger: Logger = { debug() {}, info() {}, warn: (m) => warnings.push(m), error() {} };
  // A /metrics page of a few hundred KiB: sliced, so counted.
  const registry = new Registry();
  const gauge = new Gauge({ name: "big_gauge", help: "a large page", labelNames: ["i"], registers: [registry] });
  for (let i = 0; i < 4000; i++) gauge.set({ i: `${"x".repeat(40)}${i}` }, i);
  const server: PromproxyServer = createServer({ logger, registry });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0, unreadAnswerTimeoutMs: timeoutMs, maxUnreadAnswerBytes: 0 });
  const stall = staller(port);
  const reader = http2.connect(`http://127.0.0.1:${port}`);
  reader.on("error", () => {});
  try {
    const first = await stalled(stall, "/metrics");
    assert.equal(first.status, 200);
    // The page is built at most once a second and one buffer is counted once, however many streams hold it: the
    // next page is a buffer of its own.
    await new Promise((r) => setTimeout(r, pagesMaxAgeMs + 100));
    for (let i = 0; i < 3; i++) {
      const r = await read(reader, "/metrics");
      assert.equal(r.status, 503);
      assert.match(r.body.toString(), totalLine(0));
      assert.ok(r.body.toString().startsWith("promproxy: the server holds "));
    }
    const logged = warnings.filter((w) => w.includes("maxUnreadAnswerBytes"));
    assert.equal(logged.length, 1, logged.join("\n"));
    assert.match(logged[0]!, /^answer refused \(503\): the server holds \d+ bytes/);
    assert.equal(await first.closed, http2.constants.NGHTTP2_CANCEL);
    const served = await waitFor("a page once the stalled answer is reset", async () => {
      const r = await read(reader, "/metrics");
      return r.status === 200 ? r.body : undefined;
    });
    assert.ok(served!.length > sliceBytes, `a page of ${served!.length} bytes`);
  } finally {
    stall.destroy();
    reader.destroy();
    await server.close({ graceMs: 500 });
  }
});

test("one buffer held by many streams counts once; an answer of one slice or less is never refused; a refusal names the connection holding the most", async () => {
  const shared = Buffer.alloc(2 * MiB, 1); // a cached page: one buffer for every answer
  const refusals: { remote: string | undefined; top: { remote: string | undefined; bytes: number } | undefined }[] = [];
  const h2 = createH2Server({
    handler: (req, response) => {
      const res = response as unknown as ServerResponse;
      const body = req.url === "/small" ? Buffer.alloc(sliceBytes, 2) : req.url === "/own" ? Buffer.alloc(2 * MiB, 3) : shared;
      answerInSlices(res, 200, { "content-length": body.length }, body, (why) => res.writeHead(503, { "content-type": "text/plain" }).end(`${why}\n`));
    },
    maxStreamsPerConnection: 16,
    maxHeaderListBytes: 16_384,
    idleSessionTimeoutMs: 60_000,
    pingIntervalMs: 60_000,
    unreadAnswerTimeoutMs: 30_000,
    maxUnreadAnswerBytesPerConnection: 64 * MiB,
    maxUnreadAnswerBytes: 2 * MiB + 32 * 1024,
    onUnreadAnswersRefused: (_message, remote, top) => refusals.push({ remote, top }),
  });
  await new Promise<void>((resolve) => h2.server.listen(0, "127.0.0.1", resolve));
  const { port } = h2.server.address() as { port: number };
  const stallers = Array.from({ length: 4 }, () => staller(port));
  try {
    // 16 streams on 4 connections hold the shared page: 2 MiB held, not 32.
    for (let i = 0; i < 16; i++) assert.equal((await stalled(stallers[i % 4]!, "/")).status, 200, `answer ${i + 1}`);
    assert.equal(h2.unsentBytes(), 2 * MiB);
    // A page of its own would pass the total (2 MiB + 32 KiB): refused, naming the connection that holds the most.
    assert.equal((await stalled(stallers[0]!, "/own")).status, 503);
    assert.equal(refusals.length, 1);
    assert.equal(refusals[0]!.top?.bytes, 2 * MiB);
    assert.match(refusals[0]!.top?.remote ?? "", /^127\.0\.0\.\d+$/);
    // One slice or less goes at once, counted nowhere: never refused.
    assert.equal((await stalled(stallers[1]!, "/small")).status, 200);
    assert.equal(h2.unsentBytes(), 2 * MiB);
  } finally {
    for (const s of stallers) s.destroy();
    h2.stop();
    await new Promise((resolve) => h2.server.close(resolve));
  }
});
