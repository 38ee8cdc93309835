/**
 * What the port answers requests it cannot take, on a real server and loopback port with raw sockets: every
 * refusal has a one-line `promproxy: ` body that says which rule the request broke (Node's parse errors by their
 * code, a missing or repeated Host header), and so does every refusal of the RPC paths and of CONNECT, over
 * HTTP/1.1 and HTTP/2.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { after, before, describe, test } from "node:test";
import { startServer, type TestServer } from "./helpers.ts";
import { bodyOf, rawExchange, statusOf } from "./e2e/fixtures/faults/util.ts";

let s: TestServer;
before(async () => (s = await startServer()));
after(() => s.close());

const ask = async (bytes: string) => {
  const r = await rawExchange(s.port, [bytes], { timeoutMs: 5_000 });
  return { status: statusOf(r.text), body: bodyOf(r.text), text: r.text, closed: r.closed };
};

describe("HTTP/1.1: the Host header", () => {
  test("no Host header: 400 with a line saying so, and the connection closed", async () => {
    const r = await ask("GET /healthz HTTP/1.1\r\n\r\n");
    assert.equal(r.status, 400, r.text);
    assert.equal(r.body, "promproxy: bad request: no Host header (HTTP/1.1 requires one)\n");
    assert.ok(r.closed);
  });

  test("two Host headers: 400 (RFC 9112 section 3.2)", async () => {
    const r = await ask("GET /healthz HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n");
    assert.equal(r.status, 400, r.text);
    assert.equal(r.body, "promproxy: bad request: more than one Host header\n");
  });

  test("one Host header, and an HTTP/1.0 request without one, are served", async () => {
    assert.equal((await ask("GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")).status, 200);
    assert.equal((await ask("GET /healthz HTTP/1.0\r\n\r\n")).status, 200);
  });
});

describe("HTTP/1.1: requests Node cannot parse get a line naming the rule", () => {
  const ok = "GET http://app-1/metrics HTTP/1.1\r\nHost: app-1\r\n";
  const cases: [string, string, string][] = [
    ["a space in a header name", `${ok}Bad Header: v\r\n\r\n`, "invalid header name (a space or a character not allowed in a header name)"],
    ["a control character in a header value", `${ok}X-A: a\u0001b\r\n\r\n`, "invalid character in a header value"],
    ["a folded header", `${ok}X-A: a\r\n b\r\n\r\n`, "a header value continued on the next line (obsolete line folding)"],
    ["a Content-Length that is not a number", `${ok}Content-Length: abc\r\n\r\n`, "Content-Length is not a number"],
    ["two Content-Length headers", `${ok}Content-Length: 1\r\nContent-Length: 2\r\n\r\nab`, "more than one Content-Length, or Content-Length with Transfer-Encoding"],
    ["Content-Length and Transfer-Encoding", `${ok}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n`, "both Transfer-Encoding and Content-Length"],
    ["Transfer-Encoding after Content-Length", `${ok}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, "both Transfer-Encoding and Content-Length"],
    ["a Transfer-Encoding that does not end with chunked", `${ok}Transfer-Encoding: chunked, gzip\r\n\r\n`, "Transfer-Encoding must end with chunked"],
    ["a NUL in the request target", "GET http://app-1/me\u0000trics HTTP/1.1\r\nHost: x\r\n\r\n", "invalid character in the request target (URI)"],
    ["a space in the request target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", "the request line is not METHOD TARGET HTTP/1.1 (a space in the target?)"],
    ["an unknown HTTP version", "GET / HTTP/3.7\r\nHost: x\r\n\r\n", "invalid HTTP version in the request line (want HTTP/1.1)"],
    ["bare LF line ends", "GET / HTTP/1.1\nHost: x\n\n", "lines must end with CRLF"],
    ["an SSH banner", "SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP method at the start of the request (another protocol, or TLS, on this cleartext port?)"],
  ];
  for (const [what, bytes, message] of cases) {
    test(`${what}: 400 "${message}"`, async () => {
      const r = await ask(bytes);
      assert.equal(r.status, 400, r.text);
      assert.equal(r.body, `promproxy: bad request: ${message}\n`);
      assert.ok(r.closed);
    });
  }
});

/** One HTTP/2 request on a fresh connection: status, headers and body. */
function h2(port: number, headers: http2.OutgoingHttpHeaders, body?: string) {
  return new Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const stream = session.request(headers, { endStream: body === undefined });
    let text = "";
    let head: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (head = h));
    stream.on("data", (c: Buffer) => (text += c.toString()));
    stream.on("error", reject);
    stream.on("end", () => {
      session.close();
      resolve({ status: Number(head[":status"]), headers: head, body: text });
    });
    if (body !== undefined) stream.end(body);
  });
}

describe("the RPC paths and CONNECT: refusals carry a line", () => {
  const rpc = "/promproxy.v1.ScrapeService/Scrape";
  test("HTTP/1.1 POST to the Scrape stream: 505, it needs HTTP/2", async () => {
    const r = await ask(`POST ${rpc} HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc\r\nContent-Length: 0\r\n\r\n`);
    assert.equal(r.status, 505, r.text);
    assert.equal(r.body, `promproxy: "${rpc}" is a bidirectional stream: it needs HTTP/2 (gRPC, gRPC-web or Connect over h2), this request came over HTTP/1.1\n`);
    assert.ok(r.closed);
  });

  test("HTTP/2 with a content type no RPC protocol takes: 415 naming it", async () => {
    const r = await h2(s.port, { ":method": "POST", ":path": rpc, "content-type": "application/json" }, "{}");
    assert.equal(r.status, 415);
    assert.equal(r.body, 'promproxy: content-type "application/json" is not an RPC protocol\'s: use application/grpc, application/grpc-web or application/connect+proto (or their +json forms)\n');
  });

  test("HTTP/2 GET on the Scrape path: 405, RPCs are POST", async () => {
    const r = await h2(s.port, { ":method": "GET", ":path": rpc });
    assert.equal(r.status, 405);
    assert.equal(r.headers["allow"], "POST");
    assert.equal(r.body, `promproxy: method GET not allowed on "${rpc}": RPCs are POST\n`);
  });

  test("HTTP/2 to a method the service does not have: 404 naming the one it has", async () => {
    const r = await h2(s.port, { ":method": "POST", ":path": "/promproxy.v1.ScrapeService/Nope", "content-type": "application/grpc" }, "");
    assert.equal(r.status, 404);
    assert.equal(r.body, `promproxy: no RPC "/promproxy.v1.ScrapeService/Nope": this server serves ${rpc}\n`);
  });

  test("HTTP/2 CONNECT: 405 with the same line as HTTP/1.1's", async () => {
    const r = await h2(s.port, { ":method": "CONNECT", ":authority": "app-1:80" });
    assert.equal(r.status, 405);
    assert.equal(r.headers["allow"], "GET, HEAD");
    assert.equal(r.body, "promproxy: CONNECT is not supported: this server only proxies GET requests to connected clients\n");
  });
});
