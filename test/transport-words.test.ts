/**
 * Transport failures in words: the probe that looks at what answers on a
 * port (TLS, HTTP/1.1, a promproxy server, a peer that says nothing), and its
 * cost: bounded in time, once per server and failure.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import { after, before, test } from "node:test";
import { createClient } from "../src/client/index.ts";
import { probePort, wordsOf } from "../src/client/transport-words.ts";
import { silentLogger } from "../src/server/index.ts";
import { tempDir, testPki, type CertFiles } from "./auth-certs.ts";
import { startServer, waitFor } from "./helpers.ts";
import { createServer } from "../src/server/index.ts";

const tmp = tempDir();
let cert: CertFiles;
before(async () => {
  ({ server: cert } = await testPki(tmp.dir));
});
after(() => tmp.remove());

/** A TCP server counting connections; `answer` decides what each gets. */
async function tcpServer(answer: (s: net.Socket) => void) {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    connections++;
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
    answer(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => connections,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test("the probe names what answers: TLS, HTTP/1.1, a promproxy server; a silent peer is 'unknown' within the probe's time", { timeout: 30_000 }, async () => {
  const signal = new AbortController().signal;
  const clear = await startServer();
  const secure = createServer({ logger: silentLogger });
  const { port: securePort } = await secure.listen({ host: "127.0.0.1", port: 0, tls: { cert: cert.cert, key: cert.key } });
  const h1 = http.createServer((_q, r) => r.end("x"));
  await new Promise<void>((r) => h1.listen(0, "127.0.0.1", r));
  const silent = await tcpServer(() => {}); // accepts, reads, never answers
  const closer = await tcpServer((s) => s.destroy()); // accepts and hangs up at once
  try {
    assert.equal(await probePort("127.0.0.1", clear.port, signal), "h2");
    assert.equal(await probePort("127.0.0.1", securePort, signal), "tls");
    assert.equal(await probePort("127.0.0.1", (h1.address() as net.AddressInfo).port, signal), "http1");
    const t0 = Date.now();
    assert.equal(await probePort("127.0.0.1", silent.port, signal), "unknown");
    assert.ok(Date.now() - t0 < 10_000, "bounded by the probe's timeout (2 s each step), with a wide margin");
    assert.equal(await probePort("127.0.0.1", closer.port, signal), "unknown");
    // A stopped client's probe ends at once.
    const stopped = new AbortController();
    const pending = probePort("127.0.0.1", silent.port, stopped.signal);
    stopped.abort();
    assert.equal(await pending, "unknown");
  } finally {
    await clear.close();
    await secure.close({ graceMs: 100 });
    h1.close();
    await silent.close();
    await closer.close();
  }
});

test("words from the error alone: connection refused, untrusted certificates, https:// on cleartext", () => {
  const url = new URL("https://proxy.example:8443");
  const withCause = (code: string, message = code) => Object.assign(new Error("outer"), { cause: Object.assign(new Error(message), { code }) });
  assert.match(wordsOf(withCause("ECONNREFUSED"), url) ?? "", /^nothing listens on proxy\.example:8443 \(connection refused\)/);
  assert.match(wordsOf(withCause("DEPTH_ZERO_SELF_SIGNED_CERT"), url) ?? "", /certificate is not trusted/);
  assert.match(wordsOf(withCause("ERR_SSL_WRONG_VERSION_NUMBER", "SSL routines::wrong version number"), url) ?? "", /^the server is not TLS: use http:\/\/$/);
  assert.equal(wordsOf(withCause("EWHATEVER"), url), undefined);
  // A cause chain that loops ends.
  const a: { message: string; cause?: unknown } = { message: "a" };
  a.cause = a;
  assert.equal(wordsOf(a, url), undefined);
});

test("a client retrying on an HTTP/1.1 port probes it once, not on every attempt", { timeout: 30_000 }, async () => {
  // Answers like an HTTP/1.1 server: whatever comes, a 400 and a close.
  const h1 = await tcpServer((s) => {
    s.once("data", () => s.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"));
  });
  const errors: string[] = [];
  const c = createClient({
    name: "app-1",
    serverUrl: `http://127.0.0.1:${h1.port}`,
    logger: silentLogger,
    backoff: { initialMs: 20, maxMs: 40 },
    onError: (e) => errors.push(e.rawMessage),
  });
  try {
    await c.start();
    await waitFor("20 failed attempts", () => errors.length >= 20, 20_000);
  } finally {
    await c.stop();
    await h1.close();
  }
  assert.ok(errors.every((e) => e === `127.0.0.1:${h1.port} is not a promproxy server (it answered HTTP/1.1)`), errors.join("\n"));
  // Each attempt is one connection; the probes add one per minute, not one per attempt.
  assert.ok(h1.connections() <= errors.length + 3, `${h1.connections()} connections for ${errors.length} attempts`);
});
