/**
 * Proxied scrapes nobody reads count against the same unread-answer budgets as local pages: each reserves its
 * first credit (what its client may send before Prometheus has read a byte) in its connection's own budget, its
 * source address's share and the listener's total, and gets less when they are nearly spent (never less than
 * `floorCreditBytes`). Before, 280 connections of one address asking a 20 MB target and reading nothing pinned
 * 2 MiB each (an outside review: server RSS 108 -> 750 MB). The relay runs on a real listener with a scripted
 * coordinator that sends as a client does: as much as its credit allows, at once.
 */
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import * as net from "node:net";
import { test } from "node:test";
import { Registry } from "prom-client";
import { createActivity } from "../../src/server/activity.ts";
import type { Coordinator, ScrapeRequest } from "../../src/server/coordinator.ts";
import { floorCreditBytes } from "../../src/server/listen/answer-slices.ts";
import { listenOnePort } from "../../src/server/listen/listen.ts";
import { createServerMetrics } from "../../src/server/metrics.ts";
import { relayScrape } from "../../src/server/relay.ts";
import type { ScrapeSink } from "../../src/server/scrape-types.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { waitFor } from "../helpers.ts";
import { rawHttp } from "./raw-client.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const bodyBytes = 20 * MiB;
const creditBytes = 2 * MiB;
const chunkBytes = 256 * KiB;
/** The listener's total; one address may hold a quarter of it. */
const maxUnreadAnswerBytes = 32 * MiB;
const stallers = 24;

/** A client as the protocol has it: sends what its credit allows, at once; more as credit comes. */
const coordinator = {
  scrape(r: ScrapeRequest, sink: ScrapeSink) {
    let credit = r.creditBytes ?? creditBytes;
    let sent = 0;
    let over = false;
    sink.onHead({ status: 200, headers: [["content-length", String(bodyBytes)]], contentLength: bodyBytes });
    const pump = () => {
      while (!over && credit > 0 && sent < bodyBytes) {
        const n = Math.min(chunkBytes, credit, bodyBytes - sent);
        credit -= n;
        sent += n;
        sink.onChunk(Buffer.alloc(n, "x"));
      }
      if (!over && sent === bodyBytes) {
        over = true;
        sink.onEnd();
      }
    };
    setImmediate(pump);
    return {
      id: 1n,
      grant(n: number) {
        credit += n;
        setImmediate(pump);
      },
      cancel() {
        over = true;
      },
    };
  },
} as Partial<Coordinator> as Coordinator;

async function listen() {
  const metrics = createServerMetrics(new Registry());
  const activity = createActivity(silentLogger, 100);
  const deps = { coordinator, metrics, activity, grantAt: creditBytes >> 2, creditBytes };
  const request: ScrapeRequest = { name: "app", method: "GET", port: 9100, path: "/metrics", scheme: "http", headers: [], timeoutMs: 60_000 };
  /** The server side of every connection: what Node holds unsent for each is its writableLength. */
  const sockets = new Set<net.Socket>();
  const bound = await listenOnePort(
    { host: "127.0.0.1", port: 0, unreadAnswerTimeoutMs: 60_000, maxUnreadAnswerBytes, maxConnectionsPerAddress: 1000 },
    {
      h1Handler: (_req: IncomingMessage, res: ServerResponse) => {
        sockets.add(res.socket!);
        res.socket!.once("close", () => sockets.delete(res.socket!));
        relayScrape(deps, request, res, false);
      },
      h2Handler: (_req, res) => res.end(),
      logger: silentLogger,
    },
  );
  const unsent = () => [...sockets].reduce((n, s) => n + s.writableLength, 0);
  return { bound, unsent };
}

/** Asks the target from `from` and never reads a byte of the answer. */
function staller(port: number, from: string) {
  const socket = net.connect({ port, host: "127.0.0.1", localAddress: from });
  socket.on("error", () => {});
  socket.pause();
  socket.write(`GET http://app:9100/metrics HTTP/1.1\r\nHost: app:9100\r\n\r\n`);
  return socket;
}

const ask = (port: number, from: string) => rawHttp(port, "GET http://app:9100/metrics HTTP/1.1\r\nHost: app:9100\r\nConnection: close\r\n\r\n", 60_000, from);

test("scrapes nobody reads hold at most their address's share of maxUnreadAnswerBytes, plus the floor credit each; readers get 200", { timeout: 120_000 }, async (t) => {
  const { bound, unsent } = await listen();
  const held: net.Socket[] = [];
  try {
    for (let i = 0; i < stallers; i++) held.push(staller(bound.port, "127.0.0.40"));
    await waitFor("every connection open", () => bound.connections() === stallers);
    // Each staller's client sends its credit at once; wait until what Node holds stops growing.
    let last = -1;
    await waitFor("the unsent bytes to settle", () => {
      const now = unsent();
      const settled = now === last && now > 0;
      last = now;
      return settled;
    }, 20_000, 500);
    const share = maxUnreadAnswerBytes / 4;
    // At most the address's share, plus the floor credit of every scrape past it (and one chunk each in flight).
    const bound_ = share + stallers * (floorCreditBytes + chunkBytes);
    t.diagnostic(`${stallers} stallers hold ${unsent()} bytes unsent (bound ${bound_})`);
    assert.ok(unsent() <= bound_, `the stallers hold ${unsent()} bytes unsent: at most ${bound_} (${stallers} x 2 MiB without the cap)`);
    // A reader of the same address still gets the whole answer (the floor credit), and so does one of another.
    for (const from of ["127.0.0.40", "127.0.0.41"]) {
      const answer = await ask(bound.port, from);
      assert.match(answer.slice(0, 100), /^HTTP\/1.1 200 /);
      assert.equal(answer.length - answer.indexOf("\r\n\r\n") - 4, bodyBytes);
    }
  } finally {
    for (const s of held) s.destroy();
    await bound.close(100);
  }
});
