/**
 * A server's words, where they are shown: escapedLine for what is printed raw
 * (the CLI's stderr), reasonField for a log line's `reason` field.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { noMessageWords, reasonField } from "../src/client/reason-field.ts";
import { escapedLine } from "../src/shared/escaped-line.ts";

test("escapedLine: CR, LF, tab by name, other control characters as \\uXXXX, printable text as it is", () => {
  assert.equal(escapedLine("line1\r\n2026-12-07T00:00:00.000Z ERROR promproxy: forged line"), "line1\\r\\n2026-12-07T00:00:00.000Z ERROR promproxy: forged line");
  assert.equal(escapedLine("a\u0001b\u001b[31mred\u007f\u0085\tx"), "a\\u0001b\\u001b[31mred\\u007f\\u0085\\tx");
  assert.equal(escapedLine("a\u2028b\u2029c\u202ed\u2066e"), "a\\u2028b\\u2029c\\u202ed\\u2066e");
  assert.equal(escapedLine("name ünïcode 名前 🙂 %41"), "name ünïcode 名前 🙂 %41");
  assert.equal(escapedLine(""), "");
});

test("escapedLine: at most 512 characters and a mark, never a cut escape", () => {
  assert.equal(escapedLine("x".repeat(512)), "x".repeat(512));
  assert.equal(escapedLine("x".repeat(513)), "x".repeat(512) + "…");
  const cut = escapedLine("x".repeat(509) + "\u0001yy");
  assert.equal(cut, "x".repeat(509) + "…", "an escape that does not fit is left out whole");
  assert.equal(escapedLine("\n".repeat(1000)).length, 512 + 1);
  assert.equal(escapedLine("ab\ncd", 4), "ab\\n…");
});

test("reasonField: one line of at most 512 characters, words for no message", () => {
  assert.equal(reasonField("line1\r\n2026-12-07 ERROR forged"), "line1 2026-12-07 ERROR forged");
  assert.equal(reasonField("a\u0001b\u001b[31mred\u2028c\u0085d\u202ee"), "a b [31mred c d e");
  assert.equal(reasonField("y".repeat(600)), "y".repeat(512) + "…");
  assert.equal(reasonField(""), noMessageWords);
  assert.equal(reasonField("\r\n"), noMessageWords);
  assert.equal(reasonField("the server is draining"), "the server is draining");
});

test("reasonField: OpenSSL's error string in TLS words, without its codes and source file", () => {
  const raw = "C0ACF31E887F0000:error:0A000410:SSL routines:ssl3_read_bytes:ssl/tls alert handshake failure:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:918:SSL alert number 40\n";
  assert.equal(reasonField(raw), "TLS error: ssl/tls alert handshake failure (SSL alert number 40)");
  assert.equal(reasonField(raw.replace(":SSL alert number 40\n", ":")), "TLS error: ssl/tls alert handshake failure");
  assert.equal(reasonField("the server said error:0A000410 in passing"), "the server said error:0A000410 in passing");
});
