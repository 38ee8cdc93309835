// A plain node:http2 server with promproxy's HTTP/2 settings and no promproxy code: Node.js 22.23.3 aborts under
// trailer-bomb.py (Assertion failed: (current_nghttp2_memory_) == (0) in ~Http2Session). See README.md.
import http2 from "node:http2";
const server = http2.createServer(
  { settings: { maxConcurrentStreams: 16, maxHeaderListSize: 16384, initialWindowSize: 16 << 20 }, maxSessionMemory: 64 },
  (req, res) => {
    req.resume();
    req.on("end", () => res.end("ok\n"));
  },
);
server.on("session", (s) => s.on("error", () => {}));
server.listen(Number(process.argv[2] ?? 18095), "127.0.0.1", () => console.log(`listening on ${server.address().port}, node ${process.version}`));
