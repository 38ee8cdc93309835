/**
 * HTTP/1.1 answers nobody reads are bounded as HTTP/2 ones are: a large local page (`/clients` of tens of MB) counts
 * against the listener's `maxUnreadAnswerBytes` while its peer has not taken it (a new one past the total is answered
 * 503 with one line), and a connection holding answer bytes its peer takes nothing of for `unreadAnswerTimeoutMs`
 * is closed, a proxied scrape's as well as a page's. Before, an HTTP/1.1 answer was written whole, uncounted, and
 * its connection held it until the peer left: 25 connections asking for a 58 MB `/clients` pinned 1.7 GB.
 */
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import * as net from "node:net";
import { test } from "node:test";
import { answerInSlices } from "../../src/server/listen/answer-slices.ts";
import { listenOnePort } from "../../src/server/listen/listen.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { waitFor } from "../helpers.ts";
import { rawHttp } from "./raw-client.ts";

const MiB = 1024 * 1024;
const pageBytes = 32 * MiB;

/** Asks `path` from `from` (a loopback address) and never reads a byte of the answer. */
function staller(port: number, path: string, from = "127.0.0.1") {
  const socket = net.connect({ port, host: "127.0.0.1", localAddress: from });
  socket.on("error", () => {});
  socket.pause();
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  return socket;
}

async function listen() {
  let held = 0;
  const bound = await listenOnePort(
    { host: "127.0.0.1", port: 0, unreadAnswerTimeoutMs: 1_000, maxUnreadAnswerBytes: 64 * MiB },
    {
      h1Handler: (req: IncomingMessage, res: ServerResponse) => {
        if (req.url === "/page") {
          // A page built for each request (a `/clients` that changed in between): each counts on its own.
          const page = Buffer.alloc(pageBytes, "x");
          return answerInSlices(res, 200, { "content-length": page.length }, page, (why) => {
            const line = `promproxy: ${why}\n`;
            res.writeHead(503, { "content-length": Buffer.byteLength(line) }).end(line);
          });
        }
        // What a proxied scrape does: its body written as it comes, not through answerInSlices.
        res.writeHead(200, { "content-length": 16 * MiB });
        for (let i = 0; i < 16; i++) res.write(Buffer.alloc(MiB, "y"));
        res.end();
        held++;
      },
      h2Handler: (_req, res) => res.end(),
      logger: silentLogger,
    },
  );
  return { bound, held: () => held };
}

test("HTTP/1.1 pages nobody reads count against maxUnreadAnswerBytes; a connection that reads nothing is closed", { timeout: 60_000 }, async () => {
  const { bound } = await listen();
  const stallers: net.Socket[] = [];
  try {
    // Two addresses (one may hold only a quarter of the total: 16 MiB, one answer at most).
    for (let i = 0; i < 2; i++) stallers.push(staller(bound.port, "/page", `127.0.0.${20 + i}`));
    await waitFor("both connections open", () => bound.connections() === 2);
    await new Promise((r) => setTimeout(r, 200)); // both answers under way, held
    // 2 x 32 MiB held: a third past the 64 MiB total is refused, in one line, whoever asks.
    const refused = await rawHttp(bound.port, "GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 10_000);
    assert.match(refused.slice(0, 300), /^HTTP\/1.1 503 /);
    assert.match(refused, /\r\n\r\npromproxy: the server holds \d+ bytes of answers their peers have not read \(at most 67108864, listen option maxUnreadAnswerBytes\): retry later\n$/);
    // Neither staller takes anything: closed after unreadAnswerTimeoutMs (checked every quarter of it).
    await waitFor("the stalled connections to be closed", () => bound.connections() === 0, 15_000);
    // Their answers are released: a reader gets the whole page.
    const whole = await rawHttp(bound.port, "GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 20_000);
    assert.match(whole.slice(0, 100), /^HTTP\/1.1 200 /);
    assert.equal(whole.length - whole.indexOf("\r\n\r\n") - 4, pageBytes);
  } finally {
    for (const s of stallers) s.destroy();
    await bound.close(100);
  }
});

test("an HTTP/1.1 answer written as it comes (a proxied scrape) that nobody reads: its connection is closed", { timeout: 60_000 }, async () => {
  const { bound, held } = await listen();
  const s = staller(bound.port, "/scrape");
  try {
    await waitFor("the answer written", () => held() === 1);
    await waitFor("the stalled connection to be closed", () => bound.connections() === 0, 15_000);
  } finally {
    s.destroy();
    await bound.close(100);
  }
});

test("one address holds at most a quarter of maxUnreadAnswerBytes: its next page is 503, another address is served", { timeout: 60_000 }, async () => {
  const { bound } = await listen();
  const stallers: net.Socket[] = [];
  try {
    stallers.push(staller(bound.port, "/page", "127.0.0.30")); // one answer alone always goes: 32 MiB held
    await waitFor("its connection open", () => bound.connections() === 1);
    await new Promise((r) => setTimeout(r, 200));
    const again = await rawHttp(bound.port, "GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 10_000, "127.0.0.30");
    assert.match(again.slice(0, 300), /^HTTP\/1.1 503 /);
    assert.match(again, /\r\n\r\npromproxy: this address holds \d+ bytes of answers its connections have not read; \d+ more would pass 16777216, its share of listen option maxUnreadAnswerBytes: read them first\n$/);
    const other = await rawHttp(bound.port, "GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 20_000, "127.0.0.31");
    assert.match(other.slice(0, 100), /^HTTP\/1.1 200 /);
  } finally {
    for (const s of stallers) s.destroy();
    await bound.close(100);
  }
});
