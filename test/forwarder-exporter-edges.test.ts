/**
 * The forwarder's exporter requests at edges found by reviews of the undici
 * port: an https exporter that offers HTTP/2 (the forwarder speaks HTTP/1.1
 * only), a first TLS handshake that never completes under concurrent scrapes
 * (later scrapes still get through; nothing is left queued or connecting), a
 * kept-alive answer whose exporter closes the connection right after its last
 * byte while that byte's write waits for credit (a whole answer, not "cut
 * off"); and, scraped through a real server and forwarder as Prometheus does:
 * trailers past the head limit, a status line past it, 204 and 304 with a
 * Content-Length, and a target URL whose scheme does not match its port.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import * as fs from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as path from "node:path";
import { test } from "node:test";
import * as tls from "node:tls";
import { fileURLToPath } from "node:url";
import { createClient, silentLogger } from "../src/client/index.ts";
import { createHttpTargets, type HttpTarget } from "../src/client/targets/http-target.ts";
import { exporterMaxHeaderSize } from "../src/client/targets/exporter-pool.ts";
import { ScrapeErrorReason, TargetError } from "../src/client/targets/target.ts";
import { rawExporter } from "./fixtures/raw-exporter.ts";
import { proxyGet, startServer, waitFor, type ProxyResponse } from "./helpers.ts";

const tlsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures/forwarder-tls");
const [cert, key] = ["server.pem", "server.key"].map((f) => fs.readFileSync(path.join(tlsDir, f)));

/** One scrape of `t`: the status, the body, or the TargetError; `write` may hold each chunk (credit). */
async function scrape(t: HttpTarget, timeoutMs = 5_000, hold?: () => Promise<void>) {
  let status: number | undefined;
  const parts: Buffer[] = [];
  try {
    await t.serve(
      { port: 9100, path: "/metrics", scheme: "http", headers: {}, timeoutMs, signal: new AbortController().signal },
      {
        head(s) {
          status = s;
        },
        write(c) {
          parts.push(Buffer.from(c));
          return hold ? hold() : Promise.resolve();
        },
      },
    );
    return { status, body: Buffer.concat(parts) };
  } catch (e) {
    assert.ok(e instanceof TargetError, `a TargetError, got ${String(e)}`);
    return { status, body: Buffer.concat(parts), error: e };
  }
}

/**
 * A real server and an in-process forwarder client "fwd" with one target per URL (ports 9101, 9102, ...);
 * `run` scrapes target i through the server as Prometheus does: the status, headers and body, or the
 * request's error when the response ended early.
 */
async function throughForwarder(
  urls: string[],
  run: (scrape: (i: number) => Promise<ProxyResponse & { error?: Error }>) => Promise<void>,
): Promise<void> {
  const s = await startServer();
  const c = createClient({
    name: "fwd",
    serverUrl: s.url,
    targets: urls.map((url, i) => ({ url, port: 9101 + i, tls: { insecureSkipVerify: true }, timeoutMs: 5_000 })),
    logger: silentLogger,
    backoff: { initialMs: 50, maxMs: 500 },
  });
  try {
    await c.start({ timeoutMs: 10_000 });
    await run((i) => proxyGet(s.port, `http://fwd:${9101 + i}/metrics`).catch((error: Error) => ({ status: 0, headers: {}, body: Buffer.alloc(0), error })));
  } finally {
    await c.stop();
    await s.close();
  }
}

test("exporter edges: an https exporter offering h2 is spoken to in HTTP/1.1, its head held to the HTTP/1.1 limit", { timeout: 60_000 }, async () => {
  /** An https exporter offering h2 and HTTP/1.1; `pad` bytes of one extra header in its answers. */
  const exporter = async (pad: number) => {
    const server = http2.createSecureServer({ cert, key, allowHTTP1: true }, (req, res) => {
      if (pad > 0) res.setHeader("x-pad", "x".repeat(pad));
      res.setHeader("content-type", "text/plain");
      res.end(`version ${req.httpVersion}\n`);
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return server;
  };
  const server = await exporter(0);
  const hugeServer = await exporter(exporterMaxHeaderSize + 1024);
  const url = (s: http2.Http2SecureServer) => `https://127.0.0.1:${(s.address() as net.AddressInfo).port}/`;
  const [t] = createHttpTargets([{ url: url(server), port: 9100, tls: { insecureSkipVerify: true } }]);
  const [huge] = createHttpTargets([{ url: url(hugeServer), port: 9100, tls: { insecureSkipVerify: true } }]);
  try {
    for (let i = 0; i < 2; i++) {
      const r = await scrape(t!);
      assert.equal(r.error, undefined, r.error?.message);
      assert.equal(r.body.toString(), "version 1.1\n");
    }
    const h = await scrape(huge!);
    assert.equal(h.error?.reason, ScrapeErrorReason.UNREACHABLE, h.error?.message);
    assert.match(h.error?.message ?? "", /response head larger than 16384 bytes/);
  } finally {
    t!.close();
    huge!.close();
    server.close();
    hugeServer.close();
  }
});

test("exporter edges: a first TLS handshake that never completes, under 8 concurrent scrapes that time out, leaves later scrapes unharmed", { timeout: 60_000 }, async () => {
  const real = http2.createSecureServer({ cert, key, allowHTTP1: true }, (_req, res) => res.end("up 1\n"));
  real.listen(0, "127.0.0.1");
  await once(real, "listening");
  let accepted = 0;
  const open = new Set<net.Socket>();
  const front = net.createServer((s) => {
    accepted++;
    open.add(s);
    s.on("close", () => open.delete(s));
    s.on("error", () => {});
    if (accepted === 1) return void s.resume(); // the ClientHello is never answered
    const up = net.connect((real.address() as net.AddressInfo).port, "127.0.0.1");
    up.on("error", () => s.destroy());
    s.on("close", () => up.destroy());
    s.pipe(up).pipe(s);
  });
  front.listen(0, "127.0.0.1");
  await once(front, "listening");
  const [t] = createHttpTargets([{ url: `https://127.0.0.1:${(front.address() as net.AddressInfo).port}/`, port: 9100, tls: { insecureSkipVerify: true }, maxScrapesPerSecond: 1e6 }]);
  try {
    // The forwarder's budget is the order's timeout less a margin: 1.25 s leaves it a few hundred ms.
    const first = await Promise.all(Array.from({ length: 8 }, () => scrape(t!, 1_250)));
    for (const r of first) if (r.error) assert.equal(r.error.reason, ScrapeErrorReason.TIMEOUT, r.error.message);
    for (let i = 0; i < 3; i++) {
      const r = await scrape(t!, 5_000);
      assert.equal(r.error, undefined, `scrape ${i + 1} after the stuck handshake: ${r.error?.message}`);
      assert.equal(r.body.toString(), "up 1\n");
    }
  } finally {
    t!.close();
  }
  await waitFor("the exporter's connections to be closed after close()", () => open.size === 0);
  front.close();
  real.close();
});

test("exporter edges: an exporter closing its kept connection right after the last byte, while that byte's write waits for credit, gave a whole answer", { timeout: 60_000 }, async () => {
  const size = 1024 * 1024;
  const body = Buffer.alloc(size, "m");
  const server = net.createServer((s) => {
    s.on("error", () => {});
    let got = "";
    s.on("data", (d) => {
      got += d.toString("latin1");
      if (!got.includes("\r\n\r\n")) return;
      got = "";
      // Keep-alive (no Connection: close), then the connection closed as soon as the body is out.
      s.write(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${size}\r\n\r\n`);
      s.end(body);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const [t] = createHttpTargets([{ url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`, port: 9100, maxScrapesPerSecond: 1e6 }]);
  try {
    // Every chunk's write settles a little later, as when the server's credit comes back; 4 at a time, 5 rounds.
    const hold = () => new Promise<void>((resolve) => setTimeout(resolve, Math.random() * 3));
    for (let round = 0; round < 5; round++) {
      const rs = await Promise.all(Array.from({ length: 4 }, () => scrape(t!, 30_000, hold)));
      for (const r of rs) {
        assert.equal(r.error, undefined, r.error?.message);
        assert.equal(r.body.length, size);
      }
    }
  } finally {
    t!.close();
    server.close();
  }
});

test("exporter edges: an unasked 101 upgrade and a Content-Length that is not one number are named as such", { timeout: 60_000 }, async () => {
  const upgrade = await rawExporter((socket) => socket.write("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"));
  const twoLengths = await rawExporter((socket) => socket.end("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 5\r\n\r\nabcde"));
  const targets = [upgrade, twoLengths].map((e) => createHttpTargets([{ url: `http://127.0.0.1:${e.port}/`, port: 9100 }])[0]!);
  try {
    const [u, l] = [await scrape(targets[0]!), await scrape(targets[1]!)];
    assert.equal(u.error?.reason, ScrapeErrorReason.UNREACHABLE);
    assert.match(u.error?.message ?? "", /: answered 101 Switching Protocols, an upgrade a GET does not ask for \(UND_ERR_SOCKET\)$/);
    assert.ok(l.error, "two lengths are refused");
    assert.match(l.error.message, /(Content-Length that is not one number|length differs from its Content-Length)/, l.error.message);
  } finally {
    for (const t of targets) t.close();
    await upgrade.close();
    await twoLengths.close();
  }
});

test("exporter edges: trailers after a whole chunked body are ignored, as Prometheus ignores them; past the head limit they close the connection, the scrape still succeeds", { timeout: 60_000 }, async () => {
  // Chosen: success. The trailers come after the last chunk, so the body is whole and already relayed; Prometheus
  // scraping the exporter directly ignores trailers too. What the forwarder reads stays bounded: undici stops at
  // the head limit (16 KiB of trailers) and the connection is closed instead of kept.
  const chunked = (trailers: string) => `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n5\r\nup 1\n\r\n0\r\n${trailers}\r\n`;
  const many = Array.from({ length: 5_000 }, (_, i) => `x-trailer-${i}: ${"v".repeat(10)}\r\n`).join("");
  const few = await rawExporter((socket) => socket.write(chunked("x-checksum: 1234\r\n")));
  const flood = await rawExporter((socket) => socket.write(chunked(many)));
  try {
    await throughForwarder([`http://127.0.0.1:${few.port}`, `http://127.0.0.1:${flood.port}`], async (scrape) => {
      for (let i = 0; i < 2; i++) {
        const r = await scrape(0);
        assert.equal(r.error, undefined, r.error?.message);
        assert.equal(r.status, 200, r.body.toString());
        assert.equal(r.body.toString(), "up 1\n");
      }
      assert.equal(few.accepted, 1, "small trailers: the connection is kept");
      for (let i = 0; i < 2; i++) {
        const r = await scrape(1);
        assert.equal(r.error, undefined, `trailers over the head limit: ${r.error?.message}`);
        assert.equal(r.status, 200, r.body.toString());
        assert.equal(r.body.toString(), "up 1\n");
        await waitFor("the exporter's connection to be closed", () => flood.open === 0);
      }
      assert.equal(flood.accepted, 2, "a connection whose trailers were cut short is not kept");
    });
  } finally {
    await few.close();
    await flood.close();
  }
});

test("exporter edges: the status line counts against the response head limit: 100 KB of it fails clearly, at the bound passes, one byte over fails", { timeout: 60_000 }, async () => {
  // The limit holds the reason phrase with the header names and values (as undici counts headers): this answer's
  // one header, content-length: 5, is 15 bytes of it.
  const answer = (reason: string) => `HTTP/1.1 200 ${reason}\r\ncontent-length: 5\r\n\r\nup 1\n`;
  const atBound = exporterMaxHeaderSize - 1 - 15;
  const exporters = await Promise.all(
    ["O".repeat(100_000), "O".repeat(atBound), "O".repeat(atBound + 1)].map((reason) => rawExporter((socket) => socket.write(answer(reason)))),
  );
  try {
    await throughForwarder(exporters.map((e) => `http://127.0.0.1:${e.port}`), async (scrape) => {
      const huge = await scrape(0);
      assert.equal(huge.status, 502, huge.body.toString());
      assert.match(
        huge.body.toString(),
        new RegExp(`: target http://127\\.0\\.0\\.1:${exporters[0]!.port}/metrics: answered with a response head larger than ${exporterMaxHeaderSize} bytes \\(its status line alone is longer\\) \\(UND_ERR_HEADERS_OVERFLOW\\)\\n$`),
      );
      const at = await scrape(1);
      assert.equal(at.status, 200, at.body.toString());
      assert.equal(at.body.toString(), "up 1\n");
      const over = await scrape(2);
      assert.equal(over.status, 502, over.body.toString());
      assert.match(
        over.body.toString(),
        new RegExp(`: answered with a response head larger than ${exporterMaxHeaderSize} bytes \\(its status line is ${atBound + 1 + 13} bytes of it\\) \\(UND_ERR_HEADERS_OVERFLOW\\)\\n$`),
      );
      for (const e of [exporters[0]!, exporters[2]!]) await waitFor("the refused answer's connection to be closed", () => e.open === 0);
    });
  } finally {
    for (const e of exporters) await e.close();
  }
});

test("exporter edges: a Content-Length on 204 is refused as the exporter's error; on 304 it describes a representation not sent, and the 304 is relayed without it", { timeout: 60_000 }, async () => {
  // RFC 9110: a 204 has no content and a server must not send Content-Length (or Transfer-Encoding) with it, so a
  // 204 announcing 5 bytes is malformed (whatever follows is not its body). A 304 may carry the Content-Length of
  // the representation a 200 would have sent; it has no content either, so the relayed 304 has no Content-Length.
  const answers = [
    "HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n",
    "HTTP/1.1 204 No Content\r\ntransfer-encoding: chunked\r\n\r\n",
    "HTTP/1.1 304 Not Modified\r\netag: \"x\"\r\ncontent-length: 5\r\n\r\n",
    "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
  ];
  const exporters = await Promise.all(answers.map((a) => rawExporter((socket) => socket.write(a))));
  try {
    await throughForwarder(exporters.map((e) => `http://127.0.0.1:${e.port}`), async (scrape) => {
      const [withLength, chunked] = [await scrape(0), await scrape(1)];
      assert.equal(withLength.status, 502, withLength.body.toString());
      assert.match(
        withLength.body.toString(),
        new RegExp(`^promproxy: client "fwd": target http://127\\.0\\.0\\.1:${exporters[0]!.port}/metrics: answered malformed HTTP: 204 No Content with Content-Length: 5, but a 204 answer has no content\\n$`),
      );
      assert.equal(chunked.status, 502, chunked.body.toString());
      assert.match(chunked.body.toString(), /: answered malformed HTTP: 204 No Content with Transfer-Encoding: chunked, but a 204 answer has no content\n$/);
      for (let i = 0; i < 2; i++) {
        const notModified = await scrape(2);
        assert.equal(notModified.status, 304, notModified.body.toString());
        assert.equal(notModified.body.length, 0);
        assert.notEqual(notModified.headers["content-length"], "5");
      }
      const empty = await scrape(3);
      assert.equal(empty.status, 204, empty.body.toString());
      assert.equal(empty.body.length, 0);
    });
  } finally {
    for (const e of exporters) await e.close();
  }
});

test("exporter edges: an http:// target whose port speaks TLS, and an https:// target whose port speaks plain HTTP, are told to change the scheme", { timeout: 60_000 }, async () => {
  // A TLS server that answers the plain request with TLS records (an alert, a handshake), and Node's TLS server,
  // which closes the connection without a byte: the forwarder then tries a TLS handshake on the port to tell.
  const alert = await rawExporter((socket) => socket.end(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46])));
  const handshake = await rawExporter((socket) => socket.end(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x0e, 0x00, 0x00, 0x00])));
  const nodeTls = tls.createServer({ cert, key }, (socket) => socket.end("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nup 1\n"));
  nodeTls.on("tlsClientError", () => {});
  const plain = http.createServer((_req, res) => res.end("up 1\n"));
  const closing = await rawExporter((socket) => socket.destroy());
  for (const s of [nodeTls, plain]) s.listen(0, "127.0.0.1");
  await Promise.all([once(nodeTls, "listening"), once(plain, "listening")]);
  const portOf = (s: net.Server) => (s.address() as net.AddressInfo).port;
  const urls = [
    `http://127.0.0.1:${alert.port}`,
    `http://127.0.0.1:${handshake.port}`,
    `http://127.0.0.1:${portOf(nodeTls)}`,
    `https://127.0.0.1:${portOf(plain)}`,
    `http://127.0.0.1:${closing.port}`,
  ];
  try {
    await throughForwarder(urls, async (scrape) => {
      for (const i of [0, 1]) {
        const r = await scrape(i);
        assert.equal(r.status, 502, r.body.toString());
        assert.match(r.body.toString(), new RegExp(`: target ${urls[i]!.replace(/\./g, "\\.")}/metrics: answered with TLS, not HTTP: use https:// in the target URL \\(HPE_INVALID_CONSTANT\\)\\n$`));
      }
      const n = await scrape(2);
      assert.equal(n.status, 502, n.body.toString());
      assert.match(n.body.toString(), new RegExp(`: target ${urls[2]!.replace(/\./g, "\\.")}/metrics: closed the connection without answering, and speaks TLS on that port: use https:// in the target URL \\(UND_ERR_SOCKET\\)\\n$`));
      const p = await scrape(3);
      assert.equal(p.status, 502, p.body.toString());
      assert.match(p.body.toString(), new RegExp(`: target ${urls[3]!.replace(/\./g, "\\.")}/metrics: answered something that is not TLS \\(a plain HTTP exporter\\?\\): use http:// in the target URL \\(ERR_SSL_WRONG_VERSION_NUMBER\\)\\n$`));
      // A plain exporter that closes without answering is not mistaken for TLS.
      const c = await scrape(4);
      assert.equal(c.status, 502, c.body.toString());
      assert.match(c.body.toString(), /: connection reset by the exporter \(other side closed, UND_ERR_SOCKET\)\n$/);
    });
  } finally {
    await alert.close();
    await handshake.close();
    await closing.close();
    nodeTls.close();
    plain.close();
  }
});

test("exporter edges: an http:// target on a Go https exporter (node_exporter with TLS), whose server answers 400 'Client sent an HTTP request to an HTTPS server.', is told to use https://", { timeout: 60_000 }, async () => {
  // The bytes Go's net/http writes to a plain request on a TLS port, then it closes the connection.
  const goTls = await rawExporter((socket) => socket.end("HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"));
  // A header-less 400 with another body, and one with no body at all, are the exporter's own answers: relayed.
  const other400 = await rawExporter((socket) => socket.end("HTTP/1.0 400 Bad Request\r\n\r\nno such collector\n"));
  const bare400 = await rawExporter((socket) => socket.end("HTTP/1.0 400 Bad Request\r\n\r\n"));
  try {
    await throughForwarder([goTls, other400, bare400].map((e) => `http://127.0.0.1:${e.port}`), async (scrape) => {
      const r = await scrape(0);
      assert.equal(r.status, 502, r.body.toString());
      assert.match(
        r.body.toString(),
        new RegExp(`: target http://127\\.0\\.0\\.1:${goTls.port}/metrics: answered 400 "Client sent an HTTP request to an HTTPS server\\.": use https:// in the target URL\\n$`),
      );
      const o = await scrape(1);
      assert.equal(o.status, 400);
      assert.equal(o.body.toString(), "no such collector\n");
      const b = await scrape(2);
      assert.equal(b.status, 400);
      assert.equal(b.body.length, 0);
    });
  } finally {
    await goTls.close();
    await other400.close();
    await bare400.close();
  }
});
