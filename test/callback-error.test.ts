import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { forCallback, maxCallbackMessageChars } from "../src/client/callback-error.ts";

test("an error within bounds reaches the application as it is", () => {
  const e = new ConnectError("the server ended the stream", Code.Unavailable, undefined, undefined, new Error("read ECONNRESET"));
  assert.equal(forCallback(e), e);
});

test("a server's long, multi-line message is cut to one line of 1 KiB, escaped; code, metadata, details and a bounded cause stay", () => {
  const raw = new ConnectError("m".repeat(60_000) + "\r\nforged", Code.Unavailable, { "retry-after": "1" }, undefined, new Error("x\n".repeat(5_000)));
  raw.details = [{ type: "a.B", value: new Uint8Array([1]) }];
  const said = new ConnectError("the server refused: " + "y".repeat(3_000), Code.PermissionDenied, undefined, undefined, raw); // in our words, the original its cause
  const e = forCallback(said);
  assert.equal(e.code, Code.PermissionDenied);
  assert.ok(e.rawMessage.length <= maxCallbackMessageChars + 1 && e.rawMessage.endsWith("…"), `${e.rawMessage.length} characters`);
  const cause = e.cause as ConnectError;
  assert.ok(cause instanceof ConnectError);
  assert.equal(cause.code, Code.Unavailable);
  assert.equal(cause.metadata.get("retry-after"), "1");
  assert.deepEqual(cause.details, raw.details);
  assert.ok(cause.rawMessage.length <= maxCallbackMessageChars + 1);
  const inner = cause.cause as Error;
  assert.ok(inner.message.length <= maxCallbackMessageChars + 1 && !/[\r\n]/.test(inner.message), inner.message.slice(0, 40));
  assert.match(forCallback(new ConnectError("a\r\nb\u001b[31m", Code.Internal)).rawMessage, /^a\\r\\nb\\u001b\[31m$/);
});
