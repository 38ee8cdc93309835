/**
 * A server may not renegotiate TLS on an HTTP/2 connection (RFC 9113 §9.2.1), and the client refuses it: a hostile
 * server that renegotiated TLS 1.2 some 150 times a second cost the host 15-16 % of a core, unseen by every
 * HTTP/2 budget (no frames; `bytesRead` counts decrypted bytes only) (outside review, round 18b). The client and
 * the forwarder's exporter connections are made with OpenSSL's SSL_OP_NO_RENEGOTIATION.
 *
 * The hostile server here is a TLS 1.2 front that passes the decrypted bytes to a real promproxy server and asks
 * for a renegotiation every 20 ms: none completes. Likewise an https exporter asking before it answers.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as tls from "node:tls";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import * as https from "node:https";
import { createHttpTargets } from "../../src/client/targets/http-target.ts";
import { startClient, startServer, waitFor } from "../helpers.ts";

const tlsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "../fixtures/forwarder-tls");
const key = readFileSync(path.join(tlsDir, "server.key"));
const cert = readFileSync(path.join(tlsDir, "server.pem"));
const ca = readFileSync(path.join(tlsDir, "ca.pem"), "utf8");

for (const transport of ["fast", "connect"] as const) {
  test(`${transport}: a server's TLS renegotiation requests are refused`, { timeout: 60_000 }, async () => {
    const server = await startServer();
    let asked = 0;
    let completed = 0;
    let refused = 0;
    const timers = new Set<NodeJS.Timeout>();
    const front = tls.createServer({ key, cert, maxVersion: "TLSv1.2", ALPNProtocols: ["h2"] }, (socket) => {
      const back = net.connect(server.port, "127.0.0.1");
      socket.pipe(back).pipe(socket);
      const close = () => {
        socket.destroy();
        back.destroy();
      };
      socket.on("error", close).on("close", close);
      back.on("error", close).on("close", close);
      // One request at a time, the next 20 ms after the last completed; a refused one ends the connection.
      const renegotiate = () => {
        timers.delete(timer);
        if (socket.destroyed) return;
        asked++;
        socket.renegotiate({ rejectUnauthorized: false }, (e) => {
          if (e) return void refused++;
          completed++;
          timers.add((timer = setTimeout(renegotiate, 20)));
        });
      };
      let timer = setTimeout(renegotiate, 20);
      timers.add(timer);
    });
    await new Promise<void>((r) => front.listen(0, "127.0.0.1", r));
    const port = (front.address() as net.AddressInfo).port;
    const lines: string[] = [];
    const keep = (level: string) => (m: string, f?: object) => void lines.push(`${level} ${m} ${JSON.stringify(f ?? {})}`);
    const logger = { debug: keep("debug"), info: keep("info"), warn: keep("warn"), error: keep("error") };
    const client = await startClient(`https://localhost:${port}`, "app", { tls: { ca }, transport, logger });
    try {
      await waitFor("renegotiations asked", () => asked >= 3 || completed >= 20, 20_000);
      assert.equal(completed, 0, `${completed} of ${asked} renegotiations completed (${refused} refused)`);
      // The server ends TLS when its request is refused: said as TLS words, not OpenSSL's codes and source file.
      const cut = lines.filter((l) => l.startsWith("warn disconnected"));
      for (const l of cut) assert.match(l, /"reason":"TLS error: [^"]*handshake failure \(SSL alert number 40\)"/, l);
    } finally {
      for (const t of timers) clearTimeout(t);
      await client.stop();
      await new Promise((r) => front.close(r));
      await server.close();
    }
  });
}

test("forwarder: an https exporter's renegotiation request is refused", { timeout: 60_000 }, async () => {
  let completed = 0;
  const exporter = https.createServer({ key, cert, maxVersion: "TLSv1.2" }, (req, res) => {
    (req.socket as tls.TLSSocket).renegotiate({ rejectUnauthorized: false }, (e) => {
      if (e) return void res.destroy();
      completed++;
      res.end("up 1\n");
    });
  });
  await new Promise<void>((r) => exporter.listen(0, "127.0.0.1", r));
  const port = (exporter.address() as net.AddressInfo).port;
  const outcomes: string[] = [];
  const [target] = createHttpTargets([{ url: `https://localhost:${port}/metrics`, port: 9100, tls: { ca } }], { onResult: (r) => outcomes.push(r.outcome) });
  try {
    for (let i = 0; i < 3; i++) {
      await target!
        .serve({ port: 9100, path: "/metrics", scheme: "http", headers: {}, timeoutMs: 3000, signal: new AbortController().signal }, { head() {}, write: async () => {} })
        .catch(() => {});
    }
    assert.equal(outcomes.length, 3, String(outcomes));
    assert.equal(completed, 0, `${completed} of 3 renegotiations completed: ${outcomes}`);
  } finally {
    target!.close?.();
    exporter.closeAllConnections();
    await new Promise((r) => exporter.close(r));
  }
});
