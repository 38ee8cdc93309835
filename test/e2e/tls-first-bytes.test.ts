/**
 * The TLS port's first-byte timer (outside review 18a, L1): an HTTP/1.1
 * connection (ALPN http/1.1) that finishes its handshake and sends nothing was
 * held by Node's headersTimeout (20-45 s: 900 of them raised the RSS 117 ->
 * 153 MB), not by the listen option `prefaceTimeoutMs` that closes a silent
 * cleartext connection or a slow ClientHello. Now the same timer runs after
 * the handshake, until the connection's first bytes.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import * as tls from "node:tls";
import { createServer, silentLogger } from "../../src/server/index.ts";
import { tempDir, testPki, type CertFiles } from "../auth-certs.ts";

const prefaceTimeoutMs = 1_000;
let tmp: ReturnType<typeof tempDir>;
let cert: CertFiles;
before(async () => {
  tmp = tempDir();
  ({ server: cert } = await testPki(tmp.dir));
});
after(() => tmp.remove());

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An HTTP/1.1 TLS connection writing `pieces` (each after its pause); what came back, and when the server closed it. */
async function exchange(port: number, pieces: [pauseMs: number, text: string][], waitMs: number): Promise<{ text: string; closedAfterMs: number | undefined }> {
  const socket = tls.connect({ host: "127.0.0.1", port, ALPNProtocols: ["http/1.1"], rejectUnauthorized: false });
  socket.on("error", () => {});
  await new Promise<void>((resolve, reject) => socket.once("secureConnect", () => resolve()).once("error", reject));
  assert.equal(socket.alpnProtocol, "http/1.1");
  const t0 = performance.now();
  let text = "";
  socket.setEncoding("utf8").on("data", (d: string) => (text += d));
  const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(performance.now() - t0)));
  for (const [pause, piece] of pieces) {
    await delay(pause);
    if (!socket.destroyed) socket.write(piece);
  }
  const closedAfterMs = await Promise.race([closed, delay(waitMs).then(() => undefined)]);
  socket.destroy();
  return { text, closedAfterMs };
}

test(`an HTTP/1.1 TLS connection silent after its handshake is closed after prefaceTimeoutMs (${prefaceTimeoutMs} ms); its first bytes in time stop the timer`, { timeout: 60_000 }, async () => {
  const server = createServer({ logger: silentLogger });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0, prefaceTimeoutMs, tls: { cert: cert.cert, key: cert.key } });
  try {
    const request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    const [silent, inTime, slowRest] = await Promise.all([
      // Over the bound: nothing at all. Closed about then (Node's headersTimeout alone held it 20-45 s).
      exchange(port, [], 10_000),
      // Under the bound: the request at half of it is answered.
      exchange(port, [[prefaceTimeoutMs / 2, request]], 10_000),
      // First bytes under the bound, the rest well past it: the timer stopped at the first bytes (what follows is
      // HTTP/1.1's own business, its headersTimeout).
      exchange(port, [[prefaceTimeoutMs / 4, request.slice(0, 5)], [prefaceTimeoutMs * 2, request.slice(5)]], 10_000),
    ]);
    assert.equal(silent.text, "", "nothing written to the silent connection");
    assert.ok(silent.closedAfterMs !== undefined, "the silent connection was closed within 10 s");
    assert.ok(silent.closedAfterMs >= prefaceTimeoutMs / 2, `closed after ${silent.closedAfterMs.toFixed(0)} ms: not before the timeout`);
    for (const [what, r] of [["in time", inTime], ["first bytes in time", slowRest]] as const) {
      assert.match(r.text, /^HTTP\/1\.1 200 /, `${what}: answered, got ${JSON.stringify(r.text.slice(0, 80))}`);
    }
  } finally {
    await server.close({ graceMs: 200 });
  }
});
