/**
 * nghttp2's words for a server that broke HTTP/2 ("Protocol error", "Flooding
 * was detected ...", ...) are the reason a stream on the fast transport ended:
 * said as the server's doing, the original kept as the cause (the words for a
 * failed attempt still probe the port on them).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code } from "@connectrpc/connect";
import { errorFromNode } from "../src/client/grpc-fast/grpc-status.ts";
import { worthProbing } from "../src/client/transport-words.ts";

const nghttp2 = (message: string) => Object.assign(new Error(message), { code: "ERR_HTTP2_ERROR" });

test("nghttp2's words for a broken server end a stream as 'the server broke HTTP/2: ...'", () => {
  for (const words of [
    "Protocol error",
    "Flooding was detected in this HTTP/2 session, and it must be closed",
    "Too many invalid HTTP/2 frames",
    "Too many CONTINUATION frames following a HEADER frame",
  ]) {
    const original = nghttp2(words);
    const e = errorFromNode(original);
    assert.equal(e.rawMessage, `the server broke HTTP/2: ${words}`);
    assert.equal(e.code, Code.Internal);
    assert.equal(e.cause, original);
    if (words === "Protocol error") assert.ok(worthProbing(e, new URL("http://127.0.0.1:1")), "a port that is no HTTP/2 server is still probed");
  }
});

test("other Node errors keep their words", () => {
  const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
  assert.equal(errorFromNode(reset).rawMessage, "read ECONNRESET");
  assert.equal(errorFromNode(reset).code, Code.Aborted);
  assert.equal(errorFromNode(new Error("a Protocol error in the middle")).rawMessage, "a Protocol error in the middle");
});
