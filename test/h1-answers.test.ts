/**
 * What the port answers requests it cannot take, on a real server and loopback port with raw sockets: every
 * refusal has a one-line `promproxy: ` body that says which rule the request broke (Node's parse errors by their
 * code, a missing or repeated Host header).
 */
import assert from "node:assert/strict";
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
