/**
 * What the forwarder reads from an exporter besides its answer's body is
 * bounded: at most 5 interim (1xx) responses (as Go's net/http, Prometheus'
 * own client, takes), and HTTP framing (chunk sizes and extensions,
 * whitespace, trailers) within 64 KiB beyond what the heads and body chunks
 * need. An exporter sending `103 Early Hints` forever, or a chunk extension
 * that never ends, fails the scrape with the reason maxResponseBytes gives
 * (too large) and a message naming it, its connection closed; it was read at
 * full speed until the deadline. Ordinary answers (a 103 before the 200, tiny
 * chunks, a short chunk extension, a large head) pass as before.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import * as fs from "node:fs";
import type * as net from "node:net";
import * as path from "node:path";
import * as tls from "node:tls";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { createHttpTargets } from "../src/client/targets/http-target.ts";
import { ScrapeErrorReason, TargetError } from "../src/client/targets/target.ts";
import { rawExporter, type RawExporter } from "./fixtures/raw-exporter.ts";
import { waitFor } from "./helpers.ts";

const uncaught: unknown[] = [];
const onUncaught = (e: unknown) => void uncaught.push(e);
before(() => {
  process.on("uncaughtException", onUncaught);
  process.on("unhandledRejection", onUncaught);
});
after(() => {
  process.off("uncaughtException", onUncaught);
  process.off("unhandledRejection", onUncaught);
  assert.deepEqual(uncaught, [], "no uncaught exception or unhandled rejection");
});

const MiB = 1024 * 1024;
const chunkedHead = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
const ok = (body: string) => `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

/** Writes `first`, then `piece` as fast as the connection takes it until it closes; `sent.bytes` counts what was written. */
function flood(first: string, piece: string, sent: { bytes: number }) {
  return (socket: net.Socket) => {
    const b = Buffer.from(piece.repeat(Math.ceil(65536 / piece.length)));
    let closed = false;
    socket.on("close", () => (closed = true));
    socket.write(first);
    const pump = () => {
      while (!closed) {
        sent.bytes += b.length;
        if (!socket.write(b)) return void socket.once("drain", pump);
      }
    };
    pump();
  };
}

/** One scrape of /metrics through a fresh forwarder target (a 5 s budget); what reached the writer, or the error. */
async function scrape(e: RawExporter) {
  const [target] = createHttpTargets([{ url: `http://127.0.0.1:${e.port}`, port: 9100, timeoutMs: 5000 }]);
  const got = { status: 0, body: Buffer.alloc(0), error: undefined as TargetError | undefined };
  const chunks: Buffer[] = [];
  try {
    await target!.serve(
      { port: 9100, path: "/metrics", scheme: "http", headers: {}, timeoutMs: 10_000, signal: new AbortController().signal },
      { head: (status) => void (got.status = status), write: async (c) => void chunks.push(Buffer.from(c)) },
    );
  } catch (err) {
    assert.ok(err instanceof TargetError, String(err));
    got.error = err;
  } finally {
    target!.close();
  }
  got.body = Buffer.concat(chunks);
  return got;
}

const where = (e: RawExporter) => `target http://127.0.0.1:${e.port}/metrics`;
const framingMessage = (e: RawExporter) => `${where(e)} sent more than 65536 bytes of HTTP framing beyond its heads and body (chunk extensions, whitespace, trailers), the maximum`;

test("non-body: 103 Early Hints forever fails the scrape at the sixth (too large, naming the exporter), its connection closed, little of it read", async () => {
  const sent = { bytes: 0 };
  const e = await rawExporter(flood("", "HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n", sent));
  try {
    const r = await scrape(e);
    assert.equal(r.status, 0, "no head relayed");
    assert.equal(r.error?.reason, ScrapeErrorReason.TOO_LARGE, r.error?.message);
    assert.equal(r.error?.message, `${where(e)} sent more than 5 interim (1xx) responses before its answer, the maximum`);
    await waitFor("the exporter's connection to be closed", () => e.open === 0);
    // What the exporter got written: what the forwarder read (a read or two) and the sockets' buffers, not gigabytes.
    assert.ok(sent.bytes < 32 * MiB, `${sent.bytes} bytes sent`);
    assert.equal(e.requests.length, 1, "not tried again");
  } finally {
    await e.close();
  }
});

test("non-body: 5 interim answers before the 200 pass (Go's net/http takes 5); a sixth fails; one 103 keeps the connection", async () => {
  const early = "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n";
  const five = await rawExporter((s) => s.write(early.repeat(4) + "HTTP/1.1 102 Processing\r\n\r\n" + ok("up 1\n")));
  const six = await rawExporter((s) => s.write(early.repeat(6) + ok("up 1\n")));
  const one = await rawExporter((s) => s.write(early + ok("up 1\n")));
  const [kept] = createHttpTargets([{ url: `http://127.0.0.1:${one.port}`, port: 9100, maxScrapesPerSecond: 1e6 }]);
  try {
    const r5 = await scrape(five);
    assert.equal(r5.error, undefined, r5.error?.message);
    assert.equal(r5.body.toString(), "up 1\n");
    const r6 = await scrape(six);
    assert.equal(r6.error?.reason, ScrapeErrorReason.TOO_LARGE);
    assert.equal(r6.error?.message, `${where(six)} sent more than 5 interim (1xx) responses before its answer, the maximum`);
    await waitFor("the connection of the sixth to be closed", () => six.open === 0);
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20)); // the pool has the kept connection free again
      const chunks: Buffer[] = [];
      await kept!.serve(
        { port: 9100, path: "/metrics", scheme: "http", headers: {}, timeoutMs: 10_000, signal: new AbortController().signal },
        { head: () => {}, write: async (c) => void chunks.push(Buffer.from(c)) },
      );
      assert.equal(Buffer.concat(chunks).toString(), "up 1\n");
    }
    assert.equal(one.accepted, 1, "one 103 before the answer: the connection is kept and reused");
  } finally {
    kept!.close();
    await five.close();
    await six.close();
    await one.close();
  }
});

test("non-body: a chunk extension that never ends, or endless whitespace before a header value, fails the scrape (too large), little of it read", async () => {
  const cases = [
    { name: "chunk extension", first: chunkedHead + "1;", piece: "a=b;", headed: true },
    { name: "chunk extension after a whole chunk", first: chunkedHead + "5\r\nup 1\n\r\n1;x=", piece: "y", headed: true },
    { name: "whitespace before a header value", first: "HTTP/1.1 200 OK\r\ncontent-type:", piece: " ", headed: false },
    // A 12-byte extension on every 1-byte chunk: 19 bytes read for each body byte (the twelfth review).
    { name: "an extension on every tiny chunk", first: chunkedHead, piece: "1;eeeeeeeeeeee\r\na\r\n", headed: true },
  ];
  for (const c of cases) {
    const sent = { bytes: 0 };
    const e = await rawExporter(flood(c.first, c.piece, sent));
    try {
      const r = await scrape(e);
      assert.equal(r.status, c.headed ? 200 : 0, c.name);
      assert.equal(r.error?.reason, ScrapeErrorReason.TOO_LARGE, `${c.name}: ${r.error?.message}`);
      assert.equal(r.error?.message, framingMessage(e), c.name);
      await waitFor("the exporter's connection to be closed", () => e.open === 0);
      assert.ok(sent.bytes < 32 * MiB, `${c.name}: ${sent.bytes} bytes sent`);
    } finally {
      await e.close();
    }
  }
});

test("non-body: on an https exporter, the framing is counted on the decrypted bytes: an endless chunk extension fails the same way", async () => {
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures/forwarder-tls");
  const sent = { bytes: 0 };
  const answer = flood(chunkedHead + "1;", "a=b;", sent);
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ cert: fs.readFileSync(path.join(dir, "server.pem")), key: fs.readFileSync(path.join(dir, "server.key")) }, (socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
    socket.once("data", () => answer(socket));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as net.AddressInfo).port;
  const [target] = createHttpTargets([{ url: `https://127.0.0.1:${port}`, port: 9100, timeoutMs: 5000, tls: { ca: fs.readFileSync(path.join(dir, "ca.pem")), serverName: "localhost" } }]);
  try {
    const error = await target!
      .serve({ port: 9100, path: "/metrics", scheme: "http", headers: {}, timeoutMs: 10_000, signal: new AbortController().signal }, { head: () => {}, write: async () => {} })
      .then(() => undefined, (e: unknown) => e as TargetError);
    assert.equal(error?.reason, ScrapeErrorReason.TOO_LARGE, error?.message);
    assert.equal(error?.message, `target https://127.0.0.1:${port}/metrics sent more than 65536 bytes of HTTP framing beyond its heads and body (chunk extensions, whitespace, trailers), the maximum`);
    await waitFor("the exporter's connection to be closed", () => sockets.size === 0);
    assert.ok(sent.bytes < 32 * MiB, `${sent.bytes} bytes sent`);
  } finally {
    target!.close();
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});

test("non-body: ordinary framing passes whole: 1-byte chunks, 4 KiB chunks, a short chunk extension on each chunk, trailers, a head of many small headers", async () => {
  const tiny = "ab\ncd\n".repeat(4000);
  const big = Buffer.alloc(4 * MiB, "x").toString();
  const chunk = (s: string, ext = "") => `${Buffer.byteLength(s).toString(16)}${ext}\r\n${s}\r\n`;
  const smallHeaders = Array.from({ length: 1500 }, (_, i) => `x${i}:${i % 10}\r\n`).join("");
  const cases = [
    { name: "1-byte chunks", answer: chunkedHead + [...tiny].map((ch) => chunk(ch)).join("") + "0\r\n\r\n", body: tiny },
    { name: "4 KiB chunks", answer: chunkedHead + (big.match(/.{1,4096}/gs) ?? []).map((s) => chunk(s)).join("") + "0\r\n\r\n", body: big },
    { name: "an extension on each chunk", answer: chunkedHead + (tiny.match(/.{1,6}/gs) ?? []).map((s) => chunk(s, ";name=value")).join("") + "0\r\n\r\n", body: tiny },
    { name: "trailers", answer: chunkedHead + chunk("up 1\n") + "0\r\n" + "x-trailer: v\r\n".repeat(500) + "\r\n", body: "up 1\n" },
    { name: "a head of 1500 small headers", answer: `HTTP/1.1 200 OK\r\n${smallHeaders}content-length: 5\r\n\r\nup 1\n`, body: "up 1\n" },
  ];
  for (const c of cases) {
    const e = await rawExporter((s) => s.write(c.answer));
    try {
      const r = await scrape(e);
      assert.equal(r.error, undefined, `${c.name}: ${r.error?.message}`);
      assert.equal(r.status, 200, c.name);
      assert.ok(r.body.toString() === c.body, `${c.name}: the whole body`);
    } finally {
      await e.close();
    }
  }
});
