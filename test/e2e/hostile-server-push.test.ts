/**
 * The client trusts no server: HTTP/2 server push. The client's sessions say SETTINGS_ENABLE_PUSH 0, whatever
 * `http2Options` ask, so a PUSH_PROMISE is a protocol error that ends the connection (the client redials with its
 * backoff). With push on (Node's default), a server pushing streams as fast as its socket took them cost the host
 * 54-103 % of a core, ~150 MB of native memory and event-loop stalls of up to 0.57 s, with no log line and no
 * disconnect (an outside review).
 */
import assert from "node:assert/strict";
import * as net from "node:net";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { startClient, waitFor } from "../helpers.ts";
import { encodeFrame, envelope, startHostileServer, welcome } from "./fixtures/hostile-server/server.ts";

const frame = (type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)) => {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
};
/** An HPACK literal header without indexing (names and values under 127 bytes). */
const literal = (name: string, value: string) => Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);

/**
 * A raw HTTP/2 server (hand-made frames: Node's own server will not push to a client that disabled push): it
 * welcomes the Scrape stream, then sends PUSH_PROMISE and the pushed stream's HEADERS in batches for as long as
 * the connection stays open. Counts the promises written on each connection.
 */
async function startPusher() {
  const promised: number[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => {});
    const conn = promised.push(0) - 1;
    sock.write(frame(4, 0, 0)); // SETTINGS
    let buf = Buffer.alloc(0);
    let prefaced = false;
    let started = false;
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!prefaced) {
        if (buf.length < 24) return;
        buf = buf.subarray(24);
        prefaced = true;
      }
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const [type, flags] = [buf[3], buf[4] ?? 0];
        const sid = buf.readUInt32BE(5) & 0x7fffffff;
        buf = buf.subarray(9 + len);
        if (type === 4 && !(flags & 1)) sock.write(frame(4, 1, 0)); // SETTINGS ack
        if (type === 1 && !started) {
          started = true;
          sock.write(frame(1, 4, sid, Buffer.concat([Buffer.from([0x88]), literal("content-type", "application/grpc")])));
          sock.write(frame(0, 0, sid, envelope(encodeFrame(welcome()))));
          let n = 0;
          const push = () => {
            if (sock.destroyed) return;
            const batch: Buffer[] = [];
            for (let i = 0; i < 200; i++) {
              const id = Buffer.alloc(4);
              id.writeUInt32BE(2 * ++n);
              const head = Buffer.concat([Buffer.from([0x82, 0x86]), literal(":path", "/p"), literal(":authority", "a")]);
              batch.push(frame(5, 4, sid, Buffer.concat([id, head])), frame(1, 5, 2 * n, Buffer.from([0x88])));
            }
            promised[conn] = n;
            if (sock.write(Buffer.concat(batch))) setImmediate(push);
            else sock.once("drain", push);
          };
          push();
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    promised,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

test("the client's sessions refuse server push, even when http2Options ask for it", { timeout: 30_000 }, async () => {
  const allowed: boolean[] = [];
  const server = await startHostileServer(async (s) => {
    allowed.push(s.stream.pushAllowed);
    await s.send(welcome());
  });
  const c = await startClient(server.url, "no-push", { http2Options: { settings: { enablePush: true } } });
  try {
    assert.deepEqual(allowed, [false]);
  } finally {
    await c.stop();
    await server.close();
  }
});

test("a server that pushes streams anyway: each connection ends at its first promise, the client redials", { timeout: 30_000 }, async () => {
  const pusher = await startPusher();
  const reasons: string[] = [];
  const c = await startClient(pusher.url, "pushed", { onDisconnected: (e?: ConnectError) => void reasons.push(`${Code[e?.code ?? 0]}: ${e?.rawMessage}`) });
  try {
    await waitFor("three connections ended", () => reasons.length >= 3 && pusher.promised.length >= 3, 20_000);
    // A connection ends at the first batch it reads: at most a few batches of 200 promises were written on it.
    for (const n of pusher.promised.slice(0, 3)) assert.ok(n <= 5_000, `${n} promises written on one connection`);
    assert.match(reasons[0] ?? "", /Protocol error|PUSH|push/i, reasons.join("\n"));
  } finally {
    await c.stop();
    await pusher.close();
  }
});
