// A promproxy server mounted in an Express app.
//   PORT=8080 STREAM_PORT=8081 node examples/express/server.ts
//
// Express serves HTTP/1.1 only (it swaps the prototypes of node:http2's request and response objects
// for node:http's, which breaks them), and the clients' Scrape stream is bidirectional gRPC, which needs
// HTTP/2. So the Express app serves Prometheus (proxy requests, discovery) next to its own routes on
// PORT, and a node:http2 server takes the client streams on STREAM_PORT, with promproxy's Connect options.
import * as http2 from "node:http2";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import express from "express";
import { createConsoleLogger, createServer } from "promproxy/server";

const promproxy = createServer({ defaultScrapeTimeoutMs: 10_000, logger: createConsoleLogger("info") });

const app = express();
// 1. promproxy's front first, as middleware. Prometheus (proxy_url) and curl -x send `GET http://app-1/metrics`:
//    the target is in the request line, in absolute form, and Express routes by the path alone, so it would give
//    that request to the app's own `/metrics` route. frontMiddleware takes every such request, and the front's own
//    paths under the prefix (/promproxy/clients for http_sd, /promproxy/metrics, /promproxy/healthz,
//    /promproxy/readyz, the status page at /promproxy/); everything else goes on to the app.
app.use(promproxy.frontMiddleware({ prefix: "/promproxy" }));
// 3. The app's own routes.
app.get("/", (_req, res) => {
  res.type("text/plain").send("the app's home page\n");
});
app.get("/metrics", (_req, res) => {
  res.type("text/plain").send("# the app's own /metrics route\n");
});

const web = app.listen(Number(process.env["PORT"] ?? 8080), "127.0.0.1");
await new Promise<void>((resolve, reject) => web.once("listening", resolve).once("error", reject));

// The client streams: HTTP/2 in cleartext with prior knowledge (h2c), which is what the embedded
// client speaks to an http:// serverUrl.
const streams = http2.createServer({ settings: { maxConcurrentStreams: 16 } }, connectNodeAdapter(promproxy.connectOptions));
const sessions = new Set<http2.ServerHttp2Session>();
streams.on("session", (s) => {
  sessions.add(s);
  s.once("close", () => sessions.delete(s));
});
await new Promise<void>((resolve, reject) => {
  streams.once("error", reject).listen(Number(process.env["STREAM_PORT"] ?? 8081), "127.0.0.1", () => resolve());
});

const port = (web.address() as { port: number }).port;
const streamPort = (streams.address() as { port: number }).port;
console.log(`listening on ${port}`);
console.log(`client streams on ${streamPort}`);
console.log(`clients connect to http://127.0.0.1:${streamPort}; Prometheus: proxy_url http://127.0.0.1:${port}, http_sd http://127.0.0.1:${port}/promproxy/clients`);

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    void (async () => {
      await promproxy.close({ graceMs: 2_000 }); // scrapes in flight finish, clients are told to go
      streams.close();
      for (const s of sessions) s.close();
      web.close(); // ends idle keep-alive connections; the process exits once all is closed
    })();
  });
}
