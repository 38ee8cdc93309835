/**
 * withoutStack (src/shared/without-stack.ts) and the stream-close reason built with it (closedError): the words are
 * unchanged, no stack is captured, and the process's stack limit is restored, also when the constructor throws.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code } from "@connectrpc/connect";
import { withoutStack } from "../src/shared/without-stack.ts";
import { closedError } from "../src/server/grpc-fast/messages.ts";

test("withoutStack: no frames captured, the limit restored after a throw", () => {
  const before = Error.stackTraceLimit;
  const e = withoutStack(() => new Error("x"));
  assert.equal(e.stack, "Error: x");
  assert.throws(() => withoutStack(() => { throw new TypeError("boom"); }), /boom/);
  assert.equal(Error.stackTraceLimit, before);
  assert.match(new Error("y").stack ?? "", /\n\s+at /, "stacks elsewhere are whole");
});

test("closedError: the reset code's name (or hex), the socket error first, Canceled", () => {
  const at = (rstCode: number | undefined, error?: Error) => closedError({ rstCode } as never, error);
  assert.equal(at(8).rawMessage, "Stream closed with error code NGHTTP2_CANCEL");
  assert.equal(at(0).rawMessage, "Stream closed with error code NGHTTP2_NO_ERROR");
  assert.equal(at(undefined).rawMessage, "Stream closed with error code 0x0");
  assert.equal(at(0x77).rawMessage, "Stream closed with error code 0x77");
  const reset = at(8, Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }));
  assert.equal(reset.rawMessage, "read ECONNRESET ECONNRESET; Stream closed with error code NGHTTP2_CANCEL");
  assert.equal(reset.code, Code.Canceled);
  assert.equal(reset.stack?.includes("\n    at "), false);
});
