// A promproxy server mounted in bare node:http2 and node:http servers.
//   PORT=8080 STREAM_PORT=8081 node examples/http2/server.ts
//   PORT=8443 TLS_CERT_FILE=server.pem TLS_KEY_FILE=server.key node examples/http2/server.ts   # TLS, one port
//
// The clients' Scrape stream (bidirectional gRPC) needs HTTP/2; Prometheus speaks HTTP/1.1 to its
// proxy_url. In cleartext node:http2 serves HTTP/2 only (`allowHTTP1` works with TLS alone), so the
// streams get a node:http2 server and Prometheus a node:http server. (server.listen() does both on one
// port, sniffing a connection's first bytes.) With TLS one node:http2 server does both, chosen by ALPN.
import * as fs from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createConsoleLogger, createServer } from "promproxy/server";

const promproxy = createServer({ defaultScrapeTimeoutMs: 10_000, logger: createConsoleLogger("info") });
const certFile = process.env["TLS_CERT_FILE"];
const keyFile = process.env["TLS_KEY_FILE"];

const sessions = new Set<http2.ServerHttp2Session>();
const track = (s: http2.Http2Server | http2.Http2SecureServer) =>
  s.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
const listen = (s: http.Server | http2.Http2Server | http2.Http2SecureServer, port: number) =>
  new Promise<number>((resolve, reject) => {
    s.once("error", reject).listen(port, "127.0.0.1", () => resolve((s.address() as { port: number }).port));
  });

let servers: (http.Server | http2.Http2Server | http2.Http2SecureServer)[];
if (certFile && keyFile) {
  // TLS: one port. `allowHTTP1` serves HTTP/1.1 to clients that negotiate it, but Node picks h2 whenever a
  // client offers it, and Prometheus (Go, HTTP/2 enabled by default) offers both and then refuses to send
  // an http:// scrape over an HTTP/2 proxy connection ("http2: unsupported scheme"). So prefer HTTP/1.1:
  // Prometheus, curl and browsers get it; gRPC/Connect clients (ours), which offer only h2, get HTTP/2.
  const secure = http2.createSecureServer(
    {
      allowHTTP1: true,
      cert: fs.readFileSync(certFile),
      key: fs.readFileSync(keyFile),
      ALPNCallback: ({ protocols }) => (protocols.includes("http/1.1") ? "http/1.1" : protocols.includes("h2") ? "h2" : undefined),
      settings: { maxConcurrentStreams: 16 },
    },
    promproxy.handler, // the Scrape service and the front, by path
  );
  track(secure);
  const port = await listen(secure, Number(process.env["PORT"] ?? 8443));
  servers = [secure];
  console.log(`listening on ${port}`);
  console.log(`clients connect to https://localhost:${port}; Prometheus: proxy_url https://localhost:${port}, http_sd https://localhost:${port}/clients`);
} else {
  // The client streams: h2c (prior knowledge), what the embedded client speaks to an http:// serverUrl.
  const streams = http2.createServer({ settings: { maxConcurrentStreams: 16 } }, connectNodeAdapter(promproxy.connectOptions));
  track(streams);
  // Prometheus: proxy requests, /clients, /metrics, /healthz, /readyz.
  const front = http.createServer(promproxy.frontHandler);
  const port = await listen(front, Number(process.env["PORT"] ?? 8080));
  const streamPort = await listen(streams, Number(process.env["STREAM_PORT"] ?? 8081));
  servers = [streams, front];
  console.log(`listening on ${port}`);
  console.log(`client streams on ${streamPort}`);
  console.log(`clients connect to http://127.0.0.1:${streamPort}; Prometheus: proxy_url http://127.0.0.1:${port}, http_sd http://127.0.0.1:${port}/clients`);
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    void (async () => {
      await promproxy.close({ graceMs: 2_000 }); // scrapes in flight finish, clients are told to go
      for (const s of servers) s.close(); // stop listening; idle HTTP/1.1 keep-alive connections end
      for (const s of sessions) s.close(); // HTTP/2 sessions (their streams have ended)
    })();
  });
}
