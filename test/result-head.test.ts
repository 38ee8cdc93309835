import assert from "node:assert/strict";
import { test } from "node:test";
import { checkHead } from "../src/server/result-head.ts";

const h = (name: string, value: string) => ({ $typeName: "promproxy.v1.Header" as const, name, value });

test("a result head keeps the body's headers in order, lower-cased, and drops the others", () => {
  const r = checkHead(200, [h("Content-Type", "text/plain"), h("set-cookie", "a=b"), h("content-length", "12"), h("Content-Encoding", "gzip")]);
  assert.deepEqual(r, { status: 200, headers: [["content-type", "text/plain"], ["content-length", "12"], ["content-encoding", "gzip"]], contentLength: 12 });
});

test("each relayed header at most once, whatever its case; dropped ones may repeat", () => {
  for (const name of ["content-type", "content-encoding", "content-length"]) {
    const r = checkHead(200, [h(name, "1"), h(name.toUpperCase(), "1")]);
    assert.deepEqual(r, { error: `the header ${name} twice` });
  }
  assert.ok(!("error" in checkHead(200, [h("x-a", "1"), h("x-a", "2"), h("content-type", "a"), h("content-length", "1"), h("content-encoding", "b")])));
});

test("statuses, values and content-lengths that cannot be relayed are refused", () => {
  assert.match((checkHead(101, []) as { error: string }).error, /only final statuses/);
  assert.match((checkHead(200, [h("content-type", "a\r\nb")]) as { error: string }).error, /invalid content-type/);
  assert.match((checkHead(200, [h("content-length", "-1")]) as { error: string }).error, /invalid content-length/);
});

test("204 and 304 have no body: their content-length is neither relayed nor held to", () => {
  for (const status of [204, 304]) {
    const r = checkHead(status, [h("content-type", "text/plain"), h("content-length", "4")]);
    assert.deepEqual(r, { status, headers: [["content-type", "text/plain"]] });
    assert.match((checkHead(status, [h("content-length", "x")]) as { error: string }).error, /invalid content-length/);
  }
  assert.deepEqual(checkHead(205, [h("content-length", "0")]), { status: 205, headers: [["content-length", "0"]], contentLength: 0 });
});
