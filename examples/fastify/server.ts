// A promproxy server mounted in a Fastify app, on one port.
//   PORT=8080 node examples/fastify/server.ts
//
// Prometheus speaks HTTP/1.1 to a proxy; the clients' Scrape stream is bidirectional gRPC over HTTP/2 in
// cleartext (h2c, prior knowledge). `fastify({ http2: true })` would serve HTTP/2 only, so a serverFactory
// gives Fastify a node:http server whose connections starting with the HTTP/2 preface go to a node:http2
// server instead; both hand their requests to Fastify, and fastifyConnectPlugin serves the stream.
import * as http from "node:http";
import * as http2 from "node:http2";
import type { Socket } from "node:net";
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import fastify from "fastify";
import { createConsoleLogger, createServer } from "promproxy/server";

const promproxy = createServer({ defaultScrapeTimeoutMs: 10_000, logger: createConsoleLogger("info") });

const h2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const sessions = new Set<http2.ServerHttp2Session>();

const app = fastify({
  serverFactory(fastifyHandler) {
    // Proxy requests (`GET http://app-1/metrics`: the target in absolute form) go to promproxy before
    // Fastify's router sees them: it routes by the path alone and would give them to the app's `/metrics`.
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) =>
      req.url?.startsWith("/") ? fastifyHandler(req, res) : promproxy.frontHandler(req, res);
    const h1 = http.createServer(handler);
    const h2c = http2.createServer({ settings: { maxConcurrentStreams: 16 } }, handler as never);
    h2c.on("session", (s) => {
      sessions.add(s);
      s.once("close", () => sessions.delete(s));
    });
    // Look at a connection's first bytes: the HTTP/2 preface goes to h2c, anything else to h1.
    const [h1Connection] = h1.listeners("connection") as ((socket: Socket) => void)[];
    h1.removeAllListeners("connection");
    h1.on("connection", (socket: Socket) => {
      socket.setTimeout(10_000, () => socket.destroy()); // a connection that sends nothing
      let first = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        first = Buffer.concat([first, chunk]);
        const n = Math.min(first.length, h2Preface.length);
        const isH2 = first.subarray(0, n).equals(h2Preface.subarray(0, n));
        if (isH2 && n < h2Preface.length) return; // a prefix of the preface: wait for more
        socket.off("data", onData);
        socket.setTimeout(0);
        socket.pause();
        socket.unshift(first);
        if (isH2) {
          h2c.emit("connection", socket);
        } else {
          h1Connection!.call(h1, socket);
          socket.resume();
        }
      };
      socket.on("data", onData);
    });
    return h1;
  },
});

// The client streams: promproxy's Connect options as they are (contextValues reads the peer from req.socket).
await app.register(fastifyConnectPlugin, promproxy.connectOptions);

// The front's own paths (/clients for http_sd, /metrics of the server, /healthz, /readyz) under a prefix:
// the raw request goes to promproxy, which answers it (reply.hijack(): Fastify sends nothing).
app.all("/promproxy/*", (req, reply) => {
  reply.hijack();
  req.raw.url = req.raw.url!.slice("/promproxy".length);
  promproxy.frontHandler(req.raw, reply.raw);
});

// The app's own routes.
app.get("/", async () => "the app's home page\n");
app.get("/metrics", async () => "# the app's own /metrics route\n");

// Before Fastify closes its server: end the HTTP/2 sessions (their sockets keep the listener open).
app.addHook("preClose", (done) => {
  for (const s of sessions) s.close();
  done();
});

await app.listen({ host: "127.0.0.1", port: Number(process.env["PORT"] ?? 8080) });
const { port } = app.server.address() as { port: number };
console.log(`listening on ${port}`);
console.log(`clients connect to http://127.0.0.1:${port}; Prometheus: proxy_url http://127.0.0.1:${port}, http_sd http://127.0.0.1:${port}/promproxy/clients`);

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    void (async () => {
      await promproxy.close({ graceMs: 2_000 }); // scrapes in flight finish, clients are told to go
      await app.close();
    })();
  });
}
