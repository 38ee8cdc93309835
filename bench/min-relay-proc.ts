/**
 * Bench child: the least a stream relay can be on Node, for comparison with
 * the server and the forwarder. Role `server` (argv[2]): an HTTP/1.1 port for
 * the driver and an h2c port for one client stream; each request becomes a
 * frame `[u32 length][u32 id][path]` on the stream; the answer `[u32
 * length][u32 id][body]` becomes the response (head once, body with end()).
 * Role `client` (argv[2], argv[3] = server h2 port, argv[4] = target port):
 * opens the stream, fetches each path from the target (keep-alive node:http),
 * writes the answer. No auth, limits, credit, metrics or protocol: a floor for
 * what Node's HTTP/1.1 and HTTP/2 cost, not a product. Meant for small
 * bodies: it gathers a whole answer before sending it, in one frame, under
 * Node's default HTTP/2 windows.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import { ready, serveCommands } from "./ipc.ts";

/** Gathers length-prefixed frames from a stream's chunks: pieces are joined once, when a whole frame is there. */
function frames(onFrame: (f: Buffer) => void): (chunk: Buffer) => void {
  const pieces: Buffer[] = [];
  let have = 0;
  /** The frame's length, once its 4-byte prefix has come. */
  let need = -1;
  return (chunk) => {
    pieces.push(chunk);
    have += chunk.length;
    for (;;) {
      if (need < 0 && have >= 4) need = (pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, have)).readUInt32BE(0);
      if (need < 0 || have < 4 + need) return;
      const all = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, have);
      onFrame(all.subarray(4, 4 + need));
      const rest = all.subarray(4 + need);
      pieces.length = 0;
      have = rest.length;
      need = -1;
      if (have > 0) pieces.push(rest);
    }
  };
}

if (process.argv[2] === "server") {
  const waiting = new Map<number, http.ServerResponse>();
  let stream: http2.ServerHttp2Stream | undefined;
  let next = 0;
  const h2 = http2.createServer();
  h2.on("stream", (s) => {
    s.respond({ ":status": 200 });
    stream = s;
    s.on("data", frames((f) => {
      const id = f.readUInt32BE(0);
      const res = waiting.get(id);
      if (!res) return;
      waiting.delete(id);
      const body = f.subarray(4);
      res.writeHead(200, ["content-type", "text/plain; version=0.0.4", "content-length", String(body.length)]);
      res.end(body);
    }));
  });
  const h1 = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    if (!stream) return void res.writeHead(503).end();
    const id = ++next;
    waiting.set(id, res);
    const p = Buffer.from(req.url ?? "/");
    const f = Buffer.allocUnsafe(8 + p.length);
    f.writeUInt32BE(4 + p.length, 0);
    f.writeUInt32BE(id, 4);
    p.copy(f, 8);
    stream.write(f);
  });
  await new Promise<void>((r) => h2.listen(0, "127.0.0.1", r));
  await new Promise<void>((r) => h1.listen(0, "127.0.0.1", r));
  serveCommands({ connected: () => stream !== undefined, stop: () => setImmediate(() => process.exit(0)) });
  ready({ port: (h1.address() as { port: number }).port, h2Port: (h2.address() as { port: number }).port });
} else {
  const [h2Port, targetPort] = [Number(process.argv[3]), Number(process.argv[4])];
  const agent = new http.Agent({ keepAlive: true });
  const session = http2.connect(`http://127.0.0.1:${h2Port}`);
  const s = session.request({ ":method": "POST", ":path": "/s" });
  s.on("data", frames((f) => {
    const id = f.readUInt32BE(0);
    const path = f.subarray(4).toString();
    http.get({ host: "127.0.0.1", port: targetPort, path: path.replace(/^http:\/\/[^/]+/, ""), agent }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => {
        const body = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
        const head = Buffer.allocUnsafe(8);
        head.writeUInt32BE(4 + body.length, 0);
        head.writeUInt32BE(id, 4);
        s.write(Buffer.concat([head, body]));
      });
    });
  }));
  serveCommands({ stop: () => setImmediate(() => process.exit(0)) });
  ready({});
}
