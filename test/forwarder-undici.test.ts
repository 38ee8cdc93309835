/**
 * The forwarder's exporter requests on undici: its parser paused while a
 * chunk waits for credit, and what undici does around that pause (it parses
 * the rest at a closed connection, may hand over chunks after a pause and
 * report the end while a write is pending); chunked bodies with bad sizes;
 * interim 1xx answers; 204/304; and aborts (timeout, cancel) while the
 * request waits for its connection, while the head comes, while paused on
 * credit: no connection left open, no uncaught exception or unhandled
 * rejection.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import * as fs from "node:fs";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { after, before, test } from "node:test";
import type * as tls from "node:tls";
import { fileURLToPath } from "node:url";
import type { Dispatcher } from "undici";
import { exporterExchange } from "../src/client/targets/exporter-exchange.ts";
import { loadUndici } from "../src/client/targets/exporter-pool.ts";
import { createHttpTargets, type HttpTarget } from "../src/client/targets/http-target.ts";
import { ScrapeErrorReason, TargetError, type ResultWriter } from "../src/client/targets/target.ts";
import { rawExporter } from "./fixtures/raw-exporter.ts";
import { waitFor } from "./helpers.ts";

const uncaught: unknown[] = [];
const unhandled: unknown[] = [];
const onUncaught = (e: unknown) => void uncaught.push(e);
const onUnhandled = (e: unknown) => void unhandled.push(e);
before(() => {
  process.on("uncaughtException", onUncaught);
  process.on("unhandledRejection", onUnhandled);
});
after(() => {
  process.off("uncaughtException", onUncaught);
  process.off("unhandledRejection", onUnhandled);
  assert.deepEqual(uncaught, [], "no uncaught exception");
  assert.deepEqual(unhandled, [], "no unhandled rejection");
});

interface Got {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  error?: TargetError;
  /** What the writer saw, in order: "head", each write's bytes as "w:N", and "end" when serve settled. */
  events: string[];
}

/**
 * A writer that gives `credit` bytes at a time, refilled every `refillMs`, as the server's credit does; a write
 * waiting for credit rejects when `signal` aborts, as the client's does.
 */
function creditWriter(got: Got, signal: AbortSignal, credit = Infinity, refillMs = 1): ResultWriter {
  let left = credit;
  return {
    head(status, headers) {
      got.status = status;
      got.headers = headers;
      got.events.push("head");
    },
    async write(c) {
      let offset = 0;
      while (offset < c.byteLength) {
        if (signal.aborted) throw signal.reason;
        if (left <= 0) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(() => {
              signal.removeEventListener("abort", wake);
              resolve();
            }, refillMs);
            const wake = () => {
              clearTimeout(t);
              resolve();
            };
            signal.addEventListener("abort", wake, { once: true });
          });
          if (!signal.aborted) left = credit;
          continue;
        }
        const n = Math.min(left, c.byteLength - offset);
        left -= n;
        offset += n;
      }
      got.body = Buffer.concat([got.body, Buffer.from(c)]);
      got.events.push(`w:${c.byteLength}`);
    },
  };
}

/** One scrape of /metrics on `target`; `cancelAfterMs` aborts the scrape's signal (a cancel, or the client's deadline). */
async function scrape(target: HttpTarget, o: { credit?: number; refillMs?: number; cancelAfterMs?: number; cancelReason?: Error } = {}): Promise<Got> {
  const got: Got = { status: 0, headers: {}, body: Buffer.alloc(0), events: [] };
  const ac = new AbortController();
  const t = o.cancelAfterMs === undefined ? undefined : setTimeout(() => ac.abort(o.cancelReason ?? new TargetError(ScrapeErrorReason.CANCELLED, "cancelled by the test")), o.cancelAfterMs);
  try {
    await target.serve({ port: 9100, path: "/metrics", scheme: "http", headers: {}, timeoutMs: 10_000, signal: ac.signal }, creditWriter(got, ac.signal, o.credit, o.refillMs));
  } catch (e) {
    assert.ok(e instanceof TargetError, String(e));
    got.error = e;
  } finally {
    clearTimeout(t);
  }
  got.events.push("end");
  return got;
}

// Scrapes one after the other as fast as they go: no rate limit of the target's in the way.
const target = (url: string, more: { timeoutMs?: number } = {}) => createHttpTargets([{ url, port: 9100, maxScrapesPerSecond: 1e6, ...more }])[0]!;

test("undici: an exporter that closes its connection at the end of its answer while the forwarder waits for a small credit, 20 times: never a crash, every body whole and in order", async () => {
  const body = Array.from({ length: 3000 }, (_, i) => `line_${i} ${i}\n`).join("");
  const styles = [
    `HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\n${body}`,
    `HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n${body}`,
    `HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
  ];
  for (const [s, answer] of styles.entries()) {
    const a = await rawExporter((socket) => socket.end(answer));
    const t = target(`http://127.0.0.1:${a.port}`);
    try {
      for (let i = 0; i < 20; i++) {
        const r = await scrape(t, { credit: 2048 });
        assert.equal(r.error, undefined, `style ${s}, run ${i}: ${r.error?.message}`);
        assert.equal(r.body.toString(), body, `style ${s}, run ${i}`);
        assert.equal(r.events.at(-1), "end");
      }
      await waitFor("the exporter's connections to be closed", () => a.open === 0);
      assert.equal(a.accepted, 20);
    } finally {
      t.close();
      await a.close();
    }
  }
  assert.deepEqual(uncaught, []);
});

test("undici: chunks handed over during a pending write, after a pause too, wait in order behind it and leave as one; the end waits for the last write", async () => {
  // A dispatcher that does what undici does at a closed connection: it goes on after the pause and ends at once.
  const c1 = Buffer.from("first ");
  const c2 = Buffer.from("second ");
  const c3 = Buffer.from("last\n");
  let resumed = 0;
  const fake = {
    stats: { free: 0 },
    dispatch(_opts: Dispatcher.DispatchOptions, h: Dispatcher.DispatchHandler) {
      let paused = false;
      const controller: Dispatcher.DispatchController = {
        aborted: false,
        paused: false,
        reason: null,
        abort: () => assert.fail("not aborted"),
        pause: () => void (paused = true),
        resume: () => void resumed++,
      };
      setImmediate(() => {
        h.onRequestStart?.(controller, null);
        h.onResponseStart?.(controller, 200, { "content-length": "18" }, "OK");
        h.onResponseData?.(controller, c1);
        assert.ok(!paused, "not paused on a pending write alone: what comes meanwhile is gathered behind it");
        h.onResponseData?.(controller, c2);
        assert.ok(paused, "paused once a chunk's worth (chunkBytes) is gathered behind the pending write");
        h.onResponseData?.(controller, c3);
        h.onResponseEnd?.(controller, {});
      });
      return true;
    },
  } as unknown as Dispatcher;
  const events: string[] = [];
  const written: string[] = [];
  await exporterExchange(fake, { path: "/metrics", headers: {} }, new AbortController().signal, 10_000, {
    chunkBytes: 4,
    head: (status) => void events.push(`head ${status}`),
    data: (chunk) =>
      new Promise<void>((resolve) =>
        setTimeout(() => {
          written.push(chunk.toString());
          events.push(`w:${chunk.byteLength}`);
          resolve();
        }, 30),
      ),
  });
  events.push("end");
  assert.deepEqual(written, ["first ", "second last\n"]);
  assert.deepEqual(events, ["head 200", "w:6", "w:12", "end"]);
  assert.equal(resumed, 0, "never resumed after the end (the connection may carry another request by then)");
});

test("undici: the last chunk paused, then the end: the end comes after all bytes, in order (a real exporter, kept-alive and closing)", async () => {
  const body = "x".repeat(50_000) + "END\n";
  for (const extra of ["", "connection: close\r\n"]) {
    const a = await rawExporter((socket) => {
      // The head and most of the body, then the last bytes alone a little later.
      socket.write(`HTTP/1.1 200 OK\r\n${extra}content-length: ${body.length}\r\n\r\n${body.slice(0, -4)}`);
      setTimeout(() => (extra ? socket.end(body.slice(-4)) : socket.write(body.slice(-4))), 30);
    });
    const t = target(`http://127.0.0.1:${a.port}`);
    try {
      const r = await scrape(t, { credit: 1024, refillMs: 2 });
      assert.equal(r.error, undefined, r.error?.message);
      assert.equal(r.body.toString(), body);
      assert.equal(r.events[0], "head");
      assert.equal(r.events.at(-1), "end");
      assert.ok(r.events.slice(1, -1).every((e) => e.startsWith("w:")));
    } finally {
      t.close();
      await a.close();
    }
  }
});

test("undici: a chunked body with bad chunk sizes fails clearly, after its head, and its connection is closed", async () => {
  const head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
  const bad = ["5\r\nup 1\n\r\nzz\r\nmore\r\n0\r\n\r\n", "FFFFFFFFFFFFFFFFFFFF\r\nup\r\n", "-5\r\nup 1\n\r\n0\r\n\r\n"];
  for (const rest of bad) {
    const a = await rawExporter((socket) => socket.write(head + rest));
    const t = target(`http://127.0.0.1:${a.port}`);
    try {
      const r = await scrape(t);
      assert.equal(r.status, 200, "the head was relayed");
      assert.equal(r.error?.reason, ScrapeErrorReason.UNREACHABLE, JSON.stringify(rest));
      assert.match(r.error?.message ?? "", new RegExp(`^target http://127\\.0\\.0\\.1:${a.port}/metrics: answered malformed HTTP: .*chunk size`, "i"));
      assert.equal(a.requests.length, 1, "not tried again");
      await waitFor("the exporter's connection to be closed", () => a.open === 0);
    } finally {
      t.close();
      await a.close();
    }
  }
  // A chunk longer than what comes before the close: cut off.
  const short = await rawExporter((socket) => socket.end(head + "100\r\nup 1\n"));
  const t = target(`http://127.0.0.1:${short.port}`);
  try {
    const r = await scrape(t);
    assert.equal(r.error?.message, `target http://127.0.0.1:${short.port}/metrics closed the connection before the end of its answer`);
  } finally {
    t.close();
    await short.close();
  }
});

test("undici: interim 1xx answers (102, 103 Early Hints) before the 200 are skipped; an unasked 100 Continue fails clearly", async () => {
  const ok = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nup 1\n";
  const a = await rawExporter((socket) => socket.write(`HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n${ok}`));
  const c = await rawExporter((socket) => socket.write(`HTTP/1.1 100 Continue\r\n\r\n${ok}`));
  const ta = target(`http://127.0.0.1:${a.port}`);
  const tc = target(`http://127.0.0.1:${c.port}`);
  try {
    for (let i = 0; i < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20)); // the pool has the kept connection free again
      const r = await scrape(ta);
      assert.equal(r.error, undefined, r.error?.message);
      assert.equal(r.status, 200);
      assert.deepEqual(r.headers, { "content-type": "text/plain", "content-length": "5" });
      assert.equal(r.body.toString(), "up 1\n");
    }
    assert.equal(a.accepted, 1, "the connection was kept");
    const r = await scrape(tc);
    assert.equal(r.status, 0);
    assert.equal(r.error?.message, `target http://127.0.0.1:${c.port}/metrics: answered malformed HTTP: an interim 100 Continue the request did not ask for (UND_ERR_SOCKET)`);
    assert.equal(c.requests.length, 1, "not tried again");
  } finally {
    ta.close();
    tc.close();
    await a.close();
    await c.close();
  }
});

test("undici: 204 and 304 answers have no body; the connection is kept", async () => {
  for (const status of ["204 No Content", "304 Not Modified"]) {
    const a = await rawExporter((socket) => socket.write(`HTTP/1.1 ${status}\r\netag: "x"\r\n\r\n`));
    const t = target(`http://127.0.0.1:${a.port}`);
    try {
      for (let i = 0; i < 2; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20)); // the pool has the kept connection free again
        const r = await scrape(t);
        assert.equal(r.error, undefined, r.error?.message);
        assert.equal(r.status, Number(status.slice(0, 3)));
        assert.equal(r.body.length, 0);
        assert.deepEqual(r.events, ["head", "end"]);
      }
      assert.equal(a.accepted, 1);
    } finally {
      t.close();
      await a.close();
    }
  }
});

test("undici: a scrape that times out or is cancelled while its request waits for a connection gives the connection attempt up", async () => {
  assert.equal(typeof loadUndici().queuedAbort, "symbol", "undici still offers the queued request's abort");
  // An https exporter that accepts the connection and never answers the TLS ClientHello: the connect never ends.
  const a = await rawExporter(() => {}, () => {});
  const t = target(`https://127.0.0.1:${a.port}`, { timeoutMs: 300 });
  try {
    const r = await scrape(t);
    assert.equal(r.error?.reason, ScrapeErrorReason.TIMEOUT);
    assert.equal(r.error?.message, `target https://127.0.0.1:${a.port}/metrics did not answer within 0.3s`);
    await waitFor("the connection attempt to be given up", () => a.open === 0);
    const c = await scrape(t, { cancelAfterMs: 100 });
    assert.equal(c.error?.reason, ScrapeErrorReason.CANCELLED);
    await waitFor("the connection attempt to be given up", () => a.open === 0);
    assert.equal(a.accepted, 2);
  } finally {
    t.close();
    await a.close();
  }
});

test("undici: a scrape that times out or is cancelled while the head comes, or while paused on credit, closes its connection", async () => {
  const slowHead = await rawExporter((socket) => socket.write("HTTP/1.1 200 OK\r\nx-slow: "));
  const big = await rawExporter((socket) => socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 4000000\r\n\r\n${"a".repeat(4_000_000)}`));
  const th = target(`http://127.0.0.1:${slowHead.port}`, { timeoutMs: 300 });
  const tb = target(`http://127.0.0.1:${big.port}`, { timeoutMs: 300 });
  try {
    const h = await scrape(th);
    assert.equal(h.error?.reason, ScrapeErrorReason.TIMEOUT);
    assert.equal(h.status, 0);
    const hc = await scrape(th, { cancelAfterMs: 100 });
    assert.equal(hc.error?.reason, ScrapeErrorReason.CANCELLED);
    await waitFor("the head's connections to be closed", () => slowHead.open === 0);
    assert.equal(slowHead.accepted, 2);

    // Credit that never comes back: the write waits until the scrape's own deadline (a little after the target's budget) aborts it.
    const b = await scrape(tb, { credit: 1024, refillMs: 60_000, cancelAfterMs: 325 });
    assert.equal(b.status, 200);
    assert.equal(b.error?.reason, ScrapeErrorReason.TIMEOUT);
    assert.equal(b.error?.message, `target http://127.0.0.1:${big.port}/metrics answered, but its answer did not end within 0.3s`);
    const bc = await scrape(tb, { credit: 1024, refillMs: 60_000, cancelAfterMs: 100 });
    assert.equal(bc.error?.reason, ScrapeErrorReason.CANCELLED);
    assert.deepEqual(bc.events.slice(0, 1), ["head"]);
    await waitFor("the body's connections to be closed", () => big.open === 0);
    assert.equal(big.accepted, 2);
  } finally {
    th.close();
    tb.close();
    await slowHead.close();
    await big.close();
  }
});

test("undici: the target's tls.serverName is the name sent (SNI) and verified, whatever the URL's host", async () => {
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures/forwarder-tls");
  const [ca, cert, key] = ["ca.pem", "server.pem", "server.key"].map((f) => fs.readFileSync(path.join(dir, f)));
  const names: (string | false | null)[] = [];
  const server = https.createServer({ cert, key }, (req, res) => {
    names.push((req.socket as tls.TLSSocket).servername);
    res.writeHead(200, { "content-type": "text/plain" }).end("up 1\n");
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  const named = createHttpTargets([{ url: `https://127.0.0.1:${port}`, port: 9100, tls: { ca, serverName: "localhost" } }])[0]!;
  const wrong = createHttpTargets([{ url: `https://localhost:${port}`, port: 9100, tls: { ca, serverName: "wrong.example" } }])[0]!;
  try {
    const r = await scrape(named);
    assert.equal(r.error, undefined, r.error?.message);
    assert.equal(r.body.toString(), "up 1\n");
    assert.deepEqual(names, ["localhost"]);
    const w = await scrape(wrong);
    assert.equal(w.error?.reason, ScrapeErrorReason.UNREACHABLE);
    assert.match(w.error?.message ?? "", /: TLS handshake failed: .*wrong\.example.* \(ERR_TLS_CERT_ALTNAME_INVALID\)$/);
    assert.equal(names.length, 1);
  } finally {
    named.close();
    wrong.close();
    server.closeAllConnections();
    server.close();
  }
});
