/**
 * Pipelining limits of the HTTP/1.1 side of the port (src/server/listen/h1-server.ts), on a real loopback port
 * with raw sockets: at `maxPipelinedRequests` waiting requests every one is answered in order; one more drops the
 * connection at once (a raw 503 first where no answer has begun), its requests let go; waiting requests that make no
 * progress for `pipelinedWaitMs` get a 503 too, and a connection whose answers cannot go out at all is dropped.
 */
import assert from "node:assert/strict";
import type * as http from "node:http";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import * as net from "node:net";
import { after, before, describe, test } from "node:test";
import { createH1Server, maxPipelinedRequests } from "../src/server/listen/h1-server.ts";
import { listenOnePort } from "../src/server/listen/listen.ts";
import { resolveListenOptions } from "../src/server/listen/listen-options.ts";
import { silentLogger } from "../src/server/index.ts";
import { waitFor } from "./helpers.ts";

interface Answer {
  status: number;
  headers: string;
  body: string;
}

/** Splits what a connection received into responses (each with a Content-Length). */
function parseAnswers(text: string): Answer[] {
  const out: Answer[] = [];
  let at = 0;
  while (at < text.length) {
    const end = text.indexOf("\r\n\r\n", at);
    if (end < 0) break;
    const headers = text.slice(at, end);
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(headers)?.[1] ?? 0);
    out.push({ status: Number(headers.slice(9, 12)), headers, body: text.slice(end + 4, end + 4 + length) });
    at = end + 4 + length;
  }
  return out;
}

/** The size of `/big`'s answer: far more than loopback's socket buffers hold, so that its peer's reading paces it. */
const bigBytes = 24 * 1024 * 1024;

/** Writes `bigBytes` in 64 KiB pieces, each once the last drained (as the front's sliced answers go). */
function writeBig(res: http.ServerResponse) {
  res.writeHead(200, { "content-length": String(bigBytes) });
  const piece = Buffer.alloc(64 * 1024, 0x61);
  let left = bigBytes;
  const more = () => {
    while (left > 0) {
      left -= piece.length;
      if (!res.write(piece)) return void res.once("drain", more);
    }
    res.end();
  };
  more();
}

/**
 * A server whose `/big` requests get a 24 MiB answer written as it drains, whose `/slow` requests wait for `release()`, `/stall` ones send their head and part of a body and then
 * wait; every other path answers its own name.
 */
async function startH1(pipeline?: { pipelinedWaitMs?: number; maxPipelinedRequests?: number }) {
  const held: (() => void)[] = [];
  const refused: string[] = [];
  let parsed = 0;
  let served = 0;
  /** Requests parsed whose connection's end has not released them yet. */
  let open = 0;
  const h1 = createH1Server({
    handler: (req: http.IncomingMessage, res: http.ServerResponse) => {
      served++;
      const reply = () => res.end(`${req.url}\n`);
      if (req.url === "/slow") {
        held.push(reply);
        res.once("close", () => held.splice(held.indexOf(reply) >>> 0, 1)); // a dropped connection lets it go
      }
      else if (req.url === "/big") writeBig(res);
      else if (req.url === "/stall") {
        res.writeHead(200, { "content-length": "100" });
        res.write("part");
        held.push(reply);
      } else reply();
    },
    maxHeaderListBytes: 16_384,
    closing: () => false,
    pipeline,
    onPipelineRefused: (message, remote) => refused.push(`${remote}: ${message}`),
  });
  h1.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    parsed++;
    open++;
    let done = false;
    const end = () => {
      if (!done) open--;
      done = true;
    };
    res.once("close", end);
    req.once("close", end);
  });
  const tcp = net.createServer((socket) => h1.emit("connection", socket));
  await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve));
  return {
    port: (tcp.address() as net.AddressInfo).port,
    parsed: () => parsed,
    served: () => served,
    open: () => open,
    refused,
    held: () => held.length,
    release: () => held.splice(0).forEach((r) => r()),
    async close() {
      h1.closeAllConnections();
      h1.close();
      await new Promise((resolve) => tcp.close(resolve));
    },
  };
}

/** Opens a connection, writes `data`, and collects everything until the server closes it. */
function exchange(port: number, data: string) {
  const socket = net.connect(port, "127.0.0.1");
  let text = "";
  socket.on("data", (c: Buffer) => (text += c.toString("latin1")));
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.write(data);
  return { socket, closed, text: () => text };
}

const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
const numbered = (n: number) => Array.from({ length: n }, (_, i) => get(`/${i}`)).join("");

describe("HTTP/1.1 pipelining limits", () => {
  let s: Awaited<ReturnType<typeof startH1>>;
  before(async () => (s = await startH1()));
  after(() => s.close());

  test(`${maxPipelinedRequests} requests waiting behind one in service: all answered in order`, async (t) => {
    const before = s.parsed();
    const openBefore = s.open();
    const c = exchange(s.port, get("/slow") + numbered(maxPipelinedRequests));
    t.after(() => void c.socket.destroy());
    await waitFor("every request parsed", () => s.parsed() - before === maxPipelinedRequests + 1);
    await waitFor("the first request in service", () => s.held() === 1);
    assert.equal(s.open() - openBefore, maxPipelinedRequests + 1, "held while nothing is read: the one in service and the bound");
    s.release();
    await waitFor("every answer", () => parseAnswers(c.text()).length === maxPipelinedRequests + 1, 20_000);
    const answers = parseAnswers(c.text());
    assert.equal(answers[0]!.body, "/slow\n");
    answers.slice(1).forEach((a, i) => assert.deepEqual([a.status, a.body], [200, `/${i}\n`]));
    assert.equal(c.socket.destroyed, false, "the connection stays open");
    assert.deepEqual(s.refused, []);
  });

  test(`one more than ${maxPipelinedRequests} waiting, nothing read: the connection dropped at once, a raw 503 its only answer`, async (t) => {
    const before = s.parsed();
    const servedBefore = s.served();
    const c = exchange(s.port, get("/slow") + numbered(maxPipelinedRequests + 3));
    t.after(() => {
      c.socket.destroy();
      s.release();
    });
    await c.closed; // not waiting for the answer in service: before, this waited for release()
    const answers = parseAnswers(c.text());
    const message = `this connection pipelined more than ${maxPipelinedRequests} requests, the maximum waiting for an answer (listen option maxPipelinedRequests): closing the connection`;
    assert.deepEqual(answers.map((a) => [a.status, a.body]), [[503, `promproxy: ${message}\n`]], "the answer in service had not begun: the 503 is read as its answer");
    assert.match(answers[0]!.headers, /\r\nconnection: close/i);
    assert.equal(s.served() - servedBefore, 1, "only the request in service was handled");
    assert.ok(s.parsed() - before <= maxPipelinedRequests + 4);
    assert.deepEqual(s.refused.splice(0), [`127.0.0.1: ${message}`], "told once, to be logged");
  });

  test(`one more than ${maxPipelinedRequests} behind an answer that has begun: dropped with no 503 (it would land inside the body)`, async (t) => {
    const c = exchange(s.port, get("/stall") + numbered(maxPipelinedRequests + 1));
    t.after(() => {
      c.socket.destroy();
      s.release();
    });
    await c.closed;
    // What of the answer had reached the kernel (its head and "part", or nothing yet), and no 503 after it.
    assert.match(c.text(), /^(HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\npart)?$/);
    assert.equal(s.refused.splice(0).length, 1);
  });
});

describe("HTTP/1.1 pipelining past the limit, many connections that read nothing", () => {
  test("each is dropped at once, the requests it parsed let go, and a good client is answered every time", async (t) => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const s = await startH1(); // the default maxPipelinedRequests
    t.after(() => {
      s.release();
      return s.close();
    });
    const live = () => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    // The review's flood: 250 requests in one write, reading nothing; the first one's answer does not begin.
    const flood = get("/slow") + numbered(249);
    const base = live();
    const conns: ReturnType<typeof exchange>[] = [];
    t.after(() => conns.forEach((c) => c.socket.destroy()));
    let good = 0;
    for (let round = 0; round < 10; round++) {
      const batch = Array.from({ length: 30 }, () => exchange(s.port, flood));
      conns.push(...batch);
      const g = exchange(s.port, get("/good"));
      await waitFor("the good answer", () => g.text().endsWith("/good\n"));
      if (parseAnswers(g.text()).some((a) => a.status === 200 && a.body === "/good\n")) good++;
      g.socket.destroy();
      await Promise.all(batch.map((c) => c.closed)); // before: open until the answer in service went out
    }
    assert.equal(good, 10, "the good client was answered every round");
    await waitFor("every request released", () => s.open() === 0);
    const grew = live() - base;
    t.diagnostic(`300 connections x 250 pipelined requests: heap +${(grew / 1024 / 1024).toFixed(1)} MiB once they were dropped`);
    assert.ok(grew < 8 * 1024 * 1024, `the heap grew by ${grew} bytes`);
    for (const c of conns) assert.deepEqual(parseAnswers(c.text()).map((a) => a.status), [503]);
    assert.equal(s.served(), 300 + 10, "one request handled per flooding connection, and the good ones");
  });
});

describe("HTTP/1.1 answers stay in request order", () => {
  test("a request Node cannot parse behind others: its 400 comes after their answers", async (t) => {
    const s = await startH1();
    t.after(() => s.close());
    const c = exchange(s.port, get("/slow") + get("/a") + "GET /b HTTP/1.1\r\nBad Header: x\r\n\r\n");
    t.after(() => void c.socket.destroy());
    await waitFor("the first request in service", () => s.held() === 1);
    await new Promise((resolve) => setTimeout(resolve, 200)); // the parse error has been seen
    assert.equal(c.text(), "", "nothing before the answer in service");
    s.release();
    await c.closed;
    const answers = parseAnswers(c.text());
    assert.deepEqual(answers.map((a) => [a.status, a.body]), [
      [200, "/slow\n"],
      [200, "/a\n"],
      [400, "promproxy: bad request: invalid header name (a space or a character not allowed in a header name)\n"],
    ]);
  });
});

describe("HTTP/1.1 pipelined requests that make no progress", () => {
  test("the answer in service goes out, then the first waiting request gets 503 and the connection closes", async (t) => {
    const s = await startH1({ pipelinedWaitMs: 1_500 });
    t.after(() => s.close());
    const c = exchange(s.port, get("/slow") + numbered(3));
    t.after(() => void c.socket.destroy());
    await waitFor("the first request in service", () => s.held() === 1);
    await new Promise((resolve) => setTimeout(resolve, 2_000)); // past pipelinedWaitMs, before twice it
    assert.equal(c.text(), "", "nothing can go out before the answer in service");
    s.release();
    await c.closed;
    const answers = parseAnswers(c.text());
    assert.deepEqual(answers.map((a) => a.status), [200, 503]);
    assert.equal(answers[0]!.body, "/slow\n");
    assert.match(answers[1]!.headers, /\r\nconnection: close/i);
    assert.equal(answers[1]!.body, "promproxy: this pipelined request waited 1.5s behind an earlier one that did not finish: closing the connection\n");
    assert.equal(s.refused.length, 1, "told once, to be logged");
  });

  test("an answer in service that has not begun (a scrape within its deadline) is waited for, then the 503", async (t) => {
    const s = await startH1({ pipelinedWaitMs: 300 });
    t.after(() => s.close());
    const c = exchange(s.port, get("/slow") + numbered(2));
    t.after(() => void c.socket.destroy());
    await waitFor("the first request in service", () => s.held() === 1);
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // five times pipelinedWaitMs
    assert.equal(c.socket.destroyed, false, "still open");
    s.release();
    await c.closed;
    assert.deepEqual(parseAnswers(c.text()).map((a) => a.status), [200, 503]);
  });

  test("requests pipelined behind a large answer read slowly, for many times pipelinedWaitMs: the answer whole, then theirs", async (t) => {
    const s = await startH1({ pipelinedWaitMs: 1_000 });
    t.after(() => s.close());
    const socket = net.connect(s.port, "127.0.0.1");
    t.after(() => void socket.destroy());
    socket.on("error", () => {});
    // At most 512 KiB a 100 ms (5 MiB/s): the 24 MiB take about 3 s past what the socket buffers hold. The server's
    // writes move in steps of a few MiB (the kernel wakes a writer once much of its send buffer is free), so a
    // period of 1 s, not less, always sees one.
    let got = 0;
    let allowance = 0;
    const tick = setInterval(() => {
      allowance = 512 * 1024;
      socket.resume();
    }, 100);
    t.after(() => clearInterval(tick));
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => {
      got += c.length;
      chunks.push(c);
      allowance -= c.length;
      if (allowance <= 0) socket.pause();
    });
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.write(get("/big") + numbered(2));
    const t0 = performance.now();
    const last = () => chunks.at(-1)?.toString("latin1") ?? "";
    await waitFor("every answer read, or the connection closed", () => last().endsWith("/1\n") || socket.destroyed, 60_000);
    const took = performance.now() - t0;
    assert.ok(took > 2 * 1_000, `the reading took ${Math.round(took)} ms, longer than twice pipelinedWaitMs and more (else the test proves nothing)`);
    assert.equal(socket.destroyed, false, `the connection was not dropped under a reader that reads (${got} bytes read; refused: ${s.refused.join(" / ")})`);
    const text = Buffer.concat(chunks).toString("latin1");
    const tail = text.slice(text.indexOf("\r\n\r\n") + 4 + bigBytes);
    assert.deepEqual(parseAnswers(tail).map((a) => a.body), ["/0\n", "/1\n"]);
    assert.deepEqual(s.refused, [], "nobody answered 503");
    socket.destroy();
    await closed;
  });

  test("an answer in service that began and cannot finish (a peer that reads nothing): dropped after twice pipelinedWaitMs", async (t) => {
    const s = await startH1({ pipelinedWaitMs: 300 });
    t.after(() => s.close());
    const t0 = performance.now();
    const c = exchange(s.port, get("/stall") + numbered(2));
    t.after(() => {
      c.socket.destroy();
      s.release();
    });
    await c.closed;
    assert.ok(performance.now() - t0 >= 600, "not before the 503 had its own wait");
    assert.match(c.text(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\npart$/);
  });
});

describe("the listen option maxPipelinedRequests", () => {
  test("resolved with its default, and refused when not a positive whole number", () => {
    assert.equal(resolveListenOptions({}).maxPipelinedRequests, maxPipelinedRequests);
    for (const bad of [0, -1, 1.5, NaN]) {
      assert.throws(() => resolveListenOptions({ maxPipelinedRequests: bad }), /listen option maxPipelinedRequests must be a positive whole number/, String(bad));
    }
  });

  test("on a listening port: at 2 waiting all are answered, one more drops the connection", async (t) => {
    const bound = await listenOnePort(
      { port: 0, maxPipelinedRequests: 2 },
      { h1Handler: (req, res) => res.end(`${req.url}\n`), h2Handler: () => {}, logger: silentLogger },
    );
    t.after(() => bound.close(200));
    const at = exchange(bound.port, numbered(3)); // one in service, two waiting
    t.after(() => void at.socket.destroy());
    await waitFor("three answers", () => parseAnswers(at.text()).length === 3);
    assert.deepEqual(parseAnswers(at.text()).map((a) => a.body), ["/0\n", "/1\n", "/2\n"]);
    const over = exchange(bound.port, numbered(4));
    await over.closed;
    const statuses = parseAnswers(over.text()).map((a) => a.status);
    // Closed by the server: the answer in service if it had gone out already, or the 503 where none had begun.
    assert.ok(statuses.length <= 1, `at most one answer: ${statuses.join(",")}`);
  });
});
