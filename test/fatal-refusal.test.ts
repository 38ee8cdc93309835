/**
 * src/client/fatal-refusal.ts: which HTTP answers are a server's refusal and
 * which are no promproxy server at all, and when every endpoint has refused.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { createFatalRefusals, isFatalRefusal, notPromproxy } from "../src/client/fatal-refusal.ts";

const url = new URL("http://proxy.example:8080");
/** The error both transports give for an HTTP status (`HTTP 401`, coded from the status), with that content type. */
const http = (status: number, code: Code, type?: string) =>
  new ConnectError(`HTTP ${status}`, code, new Headers(type === undefined ? {} : { "content-type": type, "retry-after-ms": "900" }));

test("an HTTP status without a gRPC or Connect content type is Unavailable, no promproxy server, its metadata and cause kept", () => {
  for (const [status, code, type, said] of [
    [401, Code.Unauthenticated, "text/plain; charset=utf-8", "content-type text/plain; charset=utf-8"],
    [403, Code.PermissionDenied, "application/json", "content-type application/json"],
    [401, Code.Unauthenticated, undefined, "no content-type"],
    [400, Code.Internal, "text/html", "content-type text/html"],
  ] as const) {
    const original = http(status, code, type);
    const e = notPromproxy(original, url, "proxy.example:8080");
    assert.equal(e.code, Code.Unavailable);
    assert.equal(isFatalRefusal(e), false);
    assert.equal(e.cause, original);
    assert.equal(e.metadata.get("content-type"), type ?? null);
    assert.match(e.rawMessage, new RegExp(`^http://proxy\\.example:8080 answered HTTP ${status} without a gRPC status \\(${said.replace(/[;()]/g, "\\$&")}\\): not a promproxy server \\(`));
  }
  assert.match(notPromproxy(http(503, Code.Unavailable, "text/html"), url, "x:1").rawMessage, /a proxy or balancer with no promproxy server behind it\?/);
  assert.match(notPromproxy(http(404, Code.Unimplemented, "text/html"), url, "x:1").rawMessage, /a wrong address or path\?/);
  const odd = notPromproxy(http(401, Code.Unauthenticated, "text/plain\u001b[31m" + "x".repeat(200)), url, "x:1").rawMessage;
  assert.ok(!odd.includes("\u001b") && odd.length < 300, odd);
});

test("an HTTP status with no status of its own is no refusal whatever its content type; a server's refusal and any other error stay as they are", () => {
  // A 401 claiming application/grpc without a grpc-status (the transports then code the HTTP status) is no gRPC refusal.
  for (const type of ["application/grpc", "application/grpc+proto", "application/GRPC-web", "application/connect+proto", "application/connect+json; charset=utf-8"]) {
    const e = notPromproxy(http(401, Code.Unauthenticated, type), url, "x:1");
    assert.equal(e.code, Code.Unavailable, type);
    assert.match(e.rawMessage, /answered HTTP 401 without a gRPC status \(content-type application\//i);
  }
  const refusal = new ConnectError("no valid credentials", Code.Unauthenticated, new Headers({ "content-type": "application/grpc" }));
  assert.equal(notPromproxy(refusal, url, "x:1"), refusal);
  assert.equal(isFatalRefusal(refusal), true);
  const toldSo = new ConnectError("HTTP 401", Code.InvalidArgument); // a server's own words, not the transport's
  assert.equal(notPromproxy(toldSo, url, "x:1"), toldSo);
});

test("every endpoint refused: only when each one's last attempt was a refusal retrying cannot fix", () => {
  const r = createFatalRefusals();
  const no = new ConnectError("no valid credentials", Code.Unauthenticated);
  assert.equal(r.everywhere([]), false);
  r.note("a", no);
  assert.equal(r.everywhere(["a"]), true);
  assert.equal(r.everywhere(["a", "b"]), false, "b not tried yet");
  r.note("b", new ConnectError("down", Code.Unavailable));
  assert.equal(r.everywhere(["a", "b"]), false, "b may still welcome us");
  r.note("b", no);
  assert.equal(r.everywhere(["a", "b"]), true);
  r.note("a", undefined); // welcomed
  assert.equal(r.everywhere(["a", "b"]), false);
  r.keepOnly(new Set(["a"]));
  r.note("a", no);
  assert.equal(r.everywhere(["a", "b"]), false, "b forgotten when it left the endpoints: a new b has not refused");
});
