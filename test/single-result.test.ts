import assert from "node:assert/strict";
import { test } from "node:test";
import { Code } from "@connectrpc/connect";
import { ScrapeErrorReason } from "../gen/promproxy/v1/scrape_pb.ts";
import { targetsOf } from "../src/server/hello.ts";
import type { CheckedHead } from "../src/server/result-head.ts";
import type { ScrapeFailure } from "../src/server/scrape-types.ts";
import { createSession } from "../src/server/session.ts";
import { frame, head, order, violationOf } from "./fixtures/session-frames.ts";

// The session's rules for a ClientFrame.result (feature "single-result"): head, data and end in one frame.

const limits = { maxScrapesInFlight: 4, maxChunkBytes: 8, creditBytes: 6, maxResponseBytes: 1 << 20 };

function newSession(features = ["single-result"]) {
  return createSession(
    { name: "app-1", labels: {}, targets: targetsOf([]), sessionId: "s1", version: "v", connectedAt: new Date() },
    features,
    limits,
  );
}

function recorder() {
  const events: string[] = [];
  const failures: ScrapeFailure[] = [];
  return {
    events,
    failures,
    sink: {
      onHead: (head: CheckedHead) => events.push(`head ${head.status} ${head.headers.map(([n, v]) => `${n}=${v}`).join(",")}`),
      onChunk: (d: Uint8Array) => events.push(`chunk ${Buffer.from(d).toString()}`),
      onEnd: (f?: ScrapeFailure) => {
        if (f) failures.push(f);
        events.push(f ? `fail ${f.outcome}` : "end");
      },
    },
  };
}

type ResultInit = { status?: number; headers?: { name: string; value: string }[]; data?: string; error?: { reason: number; message: string } };
const result = (id: bigint, r: ResultInit = {}) =>
  frame({ case: "result", value: { scrapeId: id, status: r.status ?? 200, headers: r.headers ?? [], data: Buffer.from(r.data ?? ""), error: r.error } } as never);

test("a result frame is a head, a chunk and an end", () => {
  const s = newSession();
  const r = recorder();
  const h = s.scrape(order, r.sink)!;
  s.receive(result(h.id, { headers: [{ name: "Content-Type", value: "text/plain" }, { name: "content-length", value: "5" }], data: "hello" }));
  assert.deepEqual(r.events, ["head 200 content-type=text/plain,content-length=5", "chunk hello", "end"]);
  assert.equal(s.inFlight, 0);
});

test("an empty body and an error after the head are results too", () => {
  const s = newSession();
  const empty = recorder();
  s.receive(result(s.scrape(order, empty.sink)!.id, { status: 204 }));
  assert.deepEqual(empty.events, ["head 204 ", "end"]);
  const failed = recorder();
  s.receive(result(s.scrape(order, failed.sink)!.id, { data: "ab", error: { reason: ScrapeErrorReason.TIMEOUT, message: "slow" } }));
  assert.deepEqual(failed.events, ["head 200 ", "chunk ab", "fail timeout"]);
  assert.match(failed.failures[0]!.message, /client "app-1": slow/);
});

test("a result on a stream that did not negotiate it ends the stream; its scrapes fail naming the rule broken", () => {
  const s = newSession(["head"]);
  const r = recorder();
  const other = recorder();
  const h = s.scrape(order, r.sink)!;
  s.scrape(order, other.sink);
  const v = violationOf(() => s.receive(result(h.id, { data: "x" })));
  assert.equal(v.code, Code.InvalidArgument);
  assert.match(v.rawMessage, /did not negotiate the feature "single-result"/);
  s.close(v);
  for (const f of [r.failures, other.failures]) {
    assert.deepEqual(f, [{ outcome: "disconnected", message: 'client "app-1" disconnected: cut off for breaking the protocol: scrape 1: a result frame, but the stream did not negotiate the feature "single-result"' }]);
  }
});

test("a result after a head ends the stream; a second result for an ended scrape is dropped, a third head ends the stream", () => {
  const s = newSession();
  const a = s.scrape(order, recorder().sink)!;
  s.receive(result(a.id, { data: "x" }));
  s.receive(result(a.id, { data: "x" })); // a frame for a scrape that ended: dropped
  assert.match(violationOf(() => s.receive(head(a.id))).rawMessage, /^scrape 1: a second late head/);
  const b = s.scrape(order, recorder().sink)!;
  s.receive(head(b.id));
  assert.match(violationOf(() => s.receive(result(b.id))).rawMessage, /scrape 2: a result after its head/);
  assert.match(violationOf(() => s.receive(result(99n))).rawMessage, /result for scrape 99, which was never ordered/);
});

test("a result's data is held to the chunk limit and the credit, at and over", () => {
  const s = newSession();
  const atCredit = recorder();
  s.receive(result(s.scrape(order, atCredit.sink)!.id, { data: "123456" })); // the credit: 6 bytes
  assert.deepEqual(atCredit.events, ["head 200 ", "chunk 123456", "end"]);
  const overCredit = s.scrape(order, recorder().sink)!;
  const v = violationOf(() => s.receive(result(overCredit.id, { data: "1234567" })));
  assert.equal(v.code, Code.ResourceExhausted);
  assert.match(v.rawMessage, /result beyond the granted credit/);
  const bigCredit = s.scrape(order, recorder().sink)!;
  bigCredit.grant(100);
  const over = violationOf(() => s.receive(result(bigCredit.id, { data: "123456789" })));
  assert.match(over.rawMessage, /chunk of 9 bytes exceeds the maximum of 8/);
});

test("a bad head or a body over its content-length fails that scrape only; a HEAD order takes an empty result", () => {
  const s = newSession(["single-result", "head"]);
  const bad = recorder();
  s.receive(result(s.scrape(order, bad.sink)!.id, { status: 101, data: "x" }));
  assert.deepEqual(bad.events, ["fail bad_result"]);
  const long = recorder();
  s.receive(result(s.scrape(order, long.sink)!.id, { headers: [{ name: "content-length", value: "2" }], data: "abc" }));
  assert.deepEqual(long.events, ["head 200 content-length=2", "fail bad_result"]);
  const short = recorder();
  s.receive(result(s.scrape(order, short.sink)!.id, { headers: [{ name: "content-length", value: "4" }], data: "abc" }));
  assert.deepEqual(short.events, ["head 200 content-length=4", "chunk abc", "fail bad_result"]);
  const headOnly = recorder();
  s.receive(result(s.scrape({ ...order, method: "HEAD" }, headOnly.sink)!.id, { headers: [{ name: "content-length", value: "40" }] }));
  assert.deepEqual(headOnly.events, ["head 200 content-length=40", "end"]);
  const headWithBody = recorder();
  s.receive(result(s.scrape({ ...order, method: "HEAD" }, headWithBody.sink)!.id, { data: "x" }));
  assert.deepEqual(headWithBody.events, ["head 200 ", "fail bad_result"]);
});

test("a late result for a cancelled scrape is accepted within its credit", () => {
  const s = newSession();
  const h = s.scrape(order, recorder().sink)!;
  while (s.outbound.shift()); // the order went out (one still unsent is withdrawn on cancel: nothing can come back)
  h.cancel("gone");
  s.receive(result(h.id, { data: "123456" }));
  s.receive(frame({ case: "end", value: { scrapeId: h.id } } as never)); // the scrape has ended: dropped
  assert.match(violationOf(() => s.receive(result(h.id))).rawMessage, /a second late head/); // one late head a scrape
  const g = s.scrape(order, recorder().sink)!;
  while (s.outbound.shift());
  g.cancel("gone");
  assert.equal(violationOf(() => s.receive(result(g.id, { data: "1234567" }))).code, Code.ResourceExhausted);
});

test("late frames for scrapes given up on long ago (past the 128 whose credit is kept) are dropped; ids never issued end the stream", () => {
  const s = createSession(
    { name: "app-1", labels: {}, targets: targetsOf([]), sessionId: "s1", version: "v", connectedAt: new Date() },
    ["single-result"],
    { ...limits, maxScrapesInFlight: 1_000 }, // each given-up scrape keeps its place until its end comes
  );
  const sinks = Array.from({ length: 300 }, () => recorder());
  const ids = sinks.map((r) => {
    const h = s.scrape(order, r.sink)!;
    while (s.outbound.shift()); // the order went out
    h.cancel("Prometheus hung up");
    return h.id;
  });
  for (const id of ids) {
    s.receive(result(id, { data: "123456" }));
    s.receive(frame({ case: "end", value: { scrapeId: id } } as never));
  }
  assert.ok(sinks.every((r) => r.events.length === 0), "nothing reaches a sink after its cancel");
  const live = recorder();
  s.receive(result(s.scrape(order, live.sink)!.id, { data: "ok" }));
  assert.deepEqual(live.events, ["head 200 ", "chunk ok", "end"]);
  // The last 128 given up on are still held to their credit (6 bytes).
  const held = s.scrape(order, recorder().sink)!;
  while (s.outbound.shift());
  held.cancel("gone");
  assert.equal(violationOf(() => s.receive(result(held.id, { data: "1234567" }))).code, Code.ResourceExhausted);
  assert.match(violationOf(() => s.receive(result(303n))).rawMessage, /result for scrape 303, which was never ordered/);
});
