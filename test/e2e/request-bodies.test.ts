/**
 * Request bodies on requests that take none (src/server/listen/request-bodies.ts): every HTTP/1.1 request, and
 * every HTTP/2 request but the RPCs. A body up to the listen option `maxRequestBodyBytes` is read and dropped (the
 * connection stays usable, its bytes never parsed as a request); one announced past it, of unknown length over
 * HTTP/1.1, or running past it over HTTP/2 is answered 413 in one line and its connection closed. Before, Node
 * drained an endless body after the answer (HTTP/1.1) and nghttp2 took DATA on streams it had reset (HTTP/2):
 * the server read gigabytes and never closed the connections (outside review, round 18a).
 *
 * Bytes are counted as the peer wrote them: what the server read plus what the sockets' buffers hold (a few MiB
 * on loopback). Without the bound the writers reach `cap` on an open connection.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import { test } from "node:test";
import { createServer, silentLogger, type PromproxyServer } from "../../src/server/index.ts";
import { maxRequestBodyBytes } from "../../src/server/listen/request-bodies.ts";
import { proxyGet, startClient } from "../helpers.ts";
import { rawHttp } from "./raw-client.ts";
import { frame } from "./fixtures/hostile-server/control-server.ts";
import { block } from "./fixtures/hpack.ts";

const MiB = 1024 * 1024;
/** What an endless writer writes at most before it gives up on the connection being closed. */
const cap = 256 * MiB;
/** What the peer may have written when the server closed: the bound plus the sockets' buffers, with room. */
const closedWithin = 32 * MiB;

async function serve(maxBody?: number): Promise<{ server: PromproxyServer; port: number; close: () => Promise<void> }> {
  const server = createServer({ logger: silentLogger });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0, ...(maxBody === undefined ? {} : { maxRequestBodyBytes: maxBody }) });
  return { server, port, close: () => server.close({ graceMs: 500 }) };
}

/** Writes `head` then `chunk` again and again until the server closes the connection or `cap` bytes went; what it answered. */
function endless(port: number, head: Buffer | string, chunk: Buffer): Promise<{ written: number; answer: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    const got: Buffer[] = [];
    let written = 0;
    let closed = false;
    socket.on("data", (c: Buffer) => got.push(c));
    socket.on("error", () => {});
    const pump = () => {
      while (!socket.destroyed && written < cap) {
        written += chunk.length;
        if (!socket.write(chunk)) return void socket.once("drain", pump);
      }
      if (written >= cap) socket.destroy();
    };
    socket.on("close", () => resolve({ written, answer: Buffer.concat(got).toString("latin1"), closed }));
    socket.on("end", () => (closed = true));
    socket.once("connect", () => {
      socket.write(head);
      pump();
    });
    // A reset from the server (it closed with unread bytes) counts as closed too.
    socket.on("error", () => (closed = written < cap));
  });
}

const chunked = Buffer.from(`10000\r\n${"a".repeat(0x10000)}\r\n`.repeat(16));

test("HTTP/1.1: endless chunked bodies on /clients and a proxied scrape get 413 and a closed connection; a good scrape beside is served", { timeout: 60_000 }, async () => {
  const s = await serve();
  const client = await startClient(`http://127.0.0.1:${s.port}`, "app-1");
  try {
    const floods = [
      endless(s.port, "GET /clients HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", chunked),
      endless(s.port, "GET http://app-1/metrics HTTP/1.1\r\nHost: app-1\r\nTransfer-Encoding: chunked\r\n\r\n", chunked),
      endless(s.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n", Buffer.alloc(1 << 20, 97)),
    ];
    const good = await proxyGet(s.port, "http://app-1/metrics");
    assert.equal(good.status, 200);
    assert.match(good.body.toString(), /test_up_total\{name="app-1"\} 1/);
    for (const f of await Promise.all(floods)) {
      assert.ok(f.written < closedWithin, `the peer wrote ${(f.written / MiB).toFixed(1)} MiB before the server closed (at most ${closedWithin / MiB})`);
      assert.match(f.answer, /^HTTP\/1.1 413 /, f.answer.slice(0, 80));
      assert.match(f.answer, /connection: close\r\n/i);
      assert.match(f.answer, /\r\n\r\npromproxy: a request body of (unknown length \(Transfer-Encoding\)|1000000000000 bytes) on a request that takes none: at most 65536 bytes are read \(listen option maxRequestBodyBytes\): closing the connection\n$/);
    }
    assert.equal((await proxyGet(s.port, "http://app-1/metrics")).status, 200);
  } finally {
    await client.stop();
    await s.close();
  }
});

test("HTTP/1.1: a body of maxRequestBodyBytes is read and dropped (the connection stays usable, the body never parsed as a request); one byte more is 413, unread", { timeout: 30_000 }, async () => {
  const max = 1000;
  const s = await serve(max);
  try {
    // The body looks like a request: were it parsed as one, a third answer would come.
    const smuggled = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    const body = smuggled.padEnd(max, "z");
    const atBound = await rawHttp(s.port, `POST http://app-1/metrics HTTP/1.1\r\nHost: app-1\r\nContent-Length: ${max}\r\n\r\n${body}GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.match(atBound, /^HTTP\/1.1 405 /);
    assert.match(atBound, /promproxy: method POST not allowed: only GET and HEAD are proxied\n/);
    assert.equal(atBound.match(/HTTP\/1.1 \d{3} /g)?.length, 2, atBound);
    assert.match(atBound, /\r\n\r\nok\n$/);
    const over = await rawHttp(s.port, `GET /clients HTTP/1.1\r\nHost: x\r\nContent-Length: ${max + 1}\r\n\r\n${"z".repeat(max + 1)}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.match(over, /^HTTP\/1.1 413 /);
    assert.equal(over.match(/HTTP\/1.1 \d{3} /g)?.length, 1, over);
    assert.match(over, /\r\n\r\npromproxy: a request body of 1001 bytes on a request that takes none: at most 1000 bytes are read \(listen option maxRequestBodyBytes\): closing the connection\n$/);
    // Expect: 100-continue: the 100 goes only for a body that is to be read.
    const ask = await rawHttp(s.port, `GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${max + 1}\r\n\r\n`);
    assert.match(ask, /^HTTP\/1.1 413 /, ask.slice(0, 60));
    const small = await rawHttp(s.port, `GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc`);
    assert.match(small, /^HTTP\/1.1 100 Continue\r\n\r\nHTTP\/1.1 200 OK\r\n/);
    // A chunked body, even a small one, has no length to judge before it is read: 413 unread.
    const te = await rawHttp(s.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert.match(te, /^HTTP\/1.1 413 /);
    assert.equal(te.match(/HTTP\/1.1 \d{3} /g)?.length, 1, te);
    // Transfer-Encoding with Content-Length stays Node's parse error: 400.
    const both = await rawHttp(s.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n");
    assert.match(both, /^HTTP\/1.1 400 /);
  } finally {
    await s.close();
  }
});

test("HTTP/2: endless DATA on POST /clients streams, sent on whatever the server says, ends in 413 and a closed connection; the RPC and a good scrape are served", { timeout: 60_000 }, async () => {
  const s = await serve();
  const client = await startClient(`http://127.0.0.1:${s.port}`, "app-1"); // its Scrape stream: an RPC, which takes a body
  try {
    const preface = Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), frame(4, 0, 0, Buffer.alloc(0))]);
    const streams = [1, 3, 5];
    const heads = streams.map((id) => frame(1, 4, id, block([[":method", "POST"], [":scheme", "http"], [":path", "/clients"], [":authority", "x"]])));
    const data = Buffer.concat(streams.map((id) => frame(0, 0, id, Buffer.alloc(16_384, 122))));
    const flood = await endless(s.port, Buffer.concat([preface, ...heads]), data);
    assert.ok(flood.written < closedWithin, `the peer wrote ${(flood.written / MiB).toFixed(1)} MiB before the server closed (at most ${closedWithin / MiB})`);
    assert.match(flood.answer, /promproxy: a request body of more than 65536 bytes on a request that takes none/);
    const good = await proxyGet(s.port, "http://app-1/metrics");
    assert.equal(good.status, 200);
    assert.match(good.body.toString(), /test_up_total\{name="app-1"\} 1/);
  } finally {
    await client.stop();
    await s.close();
  }
});

/** One request on `session`: status, body and the stream's reset code. */
function ask(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<{ status: number; body: string; rst: number }> {
  return new Promise((resolve) => {
    const r = session.request(headers, { endStream: body === undefined });
    let status = 0;
    const got: Buffer[] = [];
    r.on("response", (h) => (status = Number(h[":status"])));
    r.on("data", (c: Buffer) => got.push(c));
    r.on("error", () => {});
    r.on("close", () => resolve({ status, body: Buffer.concat(got).toString(), rst: r.rstCode ?? 0 }));
    if (body !== undefined) r.end(body);
  });
}

test("HTTP/2: a body of maxRequestBodyBytes on /clients is read and dropped (405, the session stays usable); one announced longer is 413 and the session closes", { timeout: 30_000 }, async () => {
  const max = 1000;
  const s = await serve(max);
  try {
    const session = http2.connect(`http://127.0.0.1:${s.port}`);
    session.on("error", () => {});
    const atBound = await ask(session, { ":method": "POST", ":path": "/clients" }, Buffer.alloc(max, 97));
    assert.equal(atBound.status, 405);
    assert.equal(atBound.body, "promproxy: method POST not allowed on /clients\n");
    assert.equal((await ask(session, { ":path": "/healthz" })).body, "ok\n");
    assert.equal(session.closed || session.destroyed, false);
    const closed = new Promise((r) => session.once("close", r));
    const over = await ask(session, { ":method": "POST", ":path": "/healthz", "content-length": String(max + 1) }, Buffer.alloc(max + 1, 97));
    assert.equal(over.status, 413);
    assert.equal(over.body, "promproxy: a request body of 1001 bytes on a request that takes none: at most 1000 bytes are read (listen option maxRequestBodyBytes): closing the connection\n");
    await closed;
    // Running past the bound without announcing it: 413 too.
    const again = http2.connect(`http://127.0.0.1:${s.port}`);
    again.on("error", () => {});
    const past = await ask(again, { ":method": "POST", ":path": "/nowhere" }, Buffer.alloc(max + 1, 97));
    assert.equal(past.status, 413);
    assert.match(past.body, /^promproxy: a request body of more than 1000 bytes on a request that takes none/);
    again.destroy();
  } finally {
    await s.close();
  }
});

test("maxRequestBodyBytes: 64 KiB by default; a whole number >= 0", async () => {
  assert.equal(maxRequestBodyBytes, 64 * 1024);
  const server = createServer({ logger: silentLogger });
  await assert.rejects(server.listen({ port: 0, maxRequestBodyBytes: -1 }), /listen option maxRequestBodyBytes must be a whole number >= 0, got -1/);
  await assert.rejects(server.listen({ port: 0, maxRequestBodyBytes: 1.5 }), /maxRequestBodyBytes must be a whole number >= 0, got 1.5/);
  await server.close({ graceMs: 100 });
});
