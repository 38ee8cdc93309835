import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ClientFrameSchema, ScrapeErrorReason } from "../gen/promproxy/v1/scrape_pb.ts";
import { groupsOf } from "../src/server/discovery.ts";
import { targetsOf } from "../src/server/hello.ts";
import type { CheckedHead } from "../src/server/result-head.ts";
import type { ScrapeFailure } from "../src/server/scrape-types.ts";
import { createSession } from "../src/server/session.ts";
import { chunk, end, frame, head, order, violationOf } from "./fixtures/session-frames.ts";

const limits = { maxScrapesInFlight: 2, maxChunkBytes: 4, creditBytes: 8, maxResponseBytes: 1 << 20 };

function newSession() {
  return createSession(
    { name: "app-1", labels: { env: "prod" }, targets: targetsOf([]), sessionId: "s1", version: "v", connectedAt: new Date() },
    [],
    limits,
  );
}

function recorder() {
  const events: string[] = [];
  let failure: ScrapeFailure | undefined;
  return {
    events,
    get failure() {
      return failure;
    },
    sink: {
      onHead: (head: CheckedHead) => events.push(`head ${head.status}`),
      onChunk: (d: Uint8Array) => events.push(`chunk ${Buffer.from(d).toString()}`),
      onEnd: (f?: ScrapeFailure) => {
        failure = f;
        events.push(f ? `fail ${f.outcome}` : "end");
      },
    },
  };
}

test("a scrape goes order, head, chunks, end; credit is enforced", () => {
  const s = newSession();
  const r = recorder();
  const h = s.scrape(order, r.sink);
  assert.ok(h);
  assert.equal(s.inFlight, 1);
  s.receive(head(h.id));
  s.receive(chunk(h.id, "abcd"));
  s.receive(chunk(h.id, "efgh"));
  // 8 bytes of credit used up: one more byte is a violation
  const v = violationOf(() => s.receive(chunk(h.id, "i")));
  assert.equal(v.code, Code.ResourceExhausted);
  h.grant(4);
  s.receive(chunk(h.id, "ijkl"));
  s.receive(end(h.id));
  assert.deepEqual(r.events, ["head 200", "chunk abcd", "chunk efgh", "chunk ijkl", "end"]);
  assert.equal(s.inFlight, 0);
});

test("protocol violations end the stream with a clear code", () => {
  const s = newSession();
  const h = s.scrape(order, recorder().sink)!;
  assert.equal(violationOf(() => s.receive(chunk(h.id, "a"))).code, Code.InvalidArgument, "chunk before head");
  s.receive(head(h.id));
  assert.match(violationOf(() => s.receive(head(h.id))).message, /second head/);
  assert.equal(violationOf(() => s.receive(chunk(h.id, "12345"))).code, Code.ResourceExhausted, "chunk above the limit");
  assert.match(violationOf(() => s.receive(chunk(99n, "a"))).message, /never ordered/);
  assert.match(violationOf(() => s.receive(head(99n))).message, /never ordered/);
  assert.match(violationOf(() => s.receive(frame({ case: "hello", value: { name: "x" } } as never))).message, /second hello/);
  s.receive(create(ClientFrameSchema)); // no frame kind set (or one from a newer client): ignored
  s.receive(end(h.id));
  s.receive(chunk(h.id, "a")); // a frame for a scrape that ended: dropped, the stream stays up
  assert.match(violationOf(() => s.receive(head(3n, 700))).message, /never ordered/);
});

test("an end without a head or error is a violation; a head that is not final fails that scrape only", async () => {
  const s = newSession();
  const a = s.scrape(order, recorder().sink)!;
  assert.match(violationOf(() => s.receive(end(a.id))).message, /without head/);
  const s2 = newSession();
  const r = recorder();
  const b = s2.scrape(order, r.sink)!;
  s2.receive(head(b.id, 101));
  assert.equal(r.failure?.outcome, "bad_result");
  assert.match(r.failure?.message ?? "", /^client "app-1" sent HTTP status 101, but only final statuses 200-599 can be relayed$/);
  const kinds: string[] = [];
  for await (const f of s2.outbound) {
    kinds.push(String(f.frame?.case));
    if (kinds.length === 2) break;
  }
  assert.deepEqual(kinds, ["order", "cancel"], "the client is told to stop that scrape");
  s2.receive(chunk(b.id, "late")); // within its credit: tolerated
  assert.ok(s2.scrape(order, recorder().sink), "the session still takes orders");
});

test("late frames for a cancelled scrape are accepted within its credit", () => {
  const s = newSession();
  const r = recorder();
  const h = s.scrape(order, r.sink)!;
  while (s.outbound.shift()); // the order went out
  s.receive(head(h.id));
  h.cancel("deadline exceeded");
  s.receive(chunk(h.id, "abcd"));
  s.receive(chunk(h.id, "efgh"));
  assert.equal(violationOf(() => s.receive(chunk(h.id, "x"))).code, Code.ResourceExhausted);
  s.receive(end(h.id));
  assert.deepEqual(r.events, ["head 200"], "the sink hears nothing after cancel");
});

test("in-flight limit: a third scrape is refused", () => {
  const s = newSession();
  assert.ok(s.scrape(order, recorder().sink));
  assert.ok(s.scrape(order, recorder().sink));
  assert.equal(s.scrape(order, recorder().sink), undefined);
});

test("client error ends map to outcomes; close fails what is in flight", () => {
  const s = newSession();
  const cases: [number, string][] = [
    [ScrapeErrorReason.UNREACHABLE, "target_unreachable"],
    [ScrapeErrorReason.TIMEOUT, "timeout"],
  ];
  for (const [reason, outcome] of cases) {
    const r = recorder();
    const h = s.scrape(order, r.sink)!;
    s.receive(end(h.id, { reason, message: "target x: boom\nsecond line" }));
    assert.equal(r.failure?.outcome, outcome);
    assert.equal(r.failure?.message, 'client "app-1": target x: boom second line');
  }
  const r = recorder();
  s.scrape(order, r.sink);
  s.close(new ConnectError("the client stopped reading its stream (1025 frames unread)\nsecond line", Code.DeadlineExceeded));
  assert.deepEqual(r.failure, { outcome: "disconnected", message: 'client "app-1" disconnected: the client stopped reading its stream (1025 frames unread) second line' });
  const quiet = newSession();
  const q = recorder();
  quiet.scrape(order, q.sink);
  quiet.close();
  assert.deepEqual(q.failure, { outcome: "disconnected", message: 'client "app-1" disconnected' }, "a stream that simply ended");
  assert.equal(s.scrape(order, recorder().sink), undefined, "a closed session takes no orders");
});

test("serves() checks announced ports and paths", () => {
  const s = createSession(
    {
      name: "fw",
      labels: {},
      targets: targetsOf([
        { port: 9100, path: "/", labels: {} },
        { port: 9200, path: "/probe", labels: { kind: "blackbox" } },
      ] as never),
      sessionId: "s2",
      version: "",
      connectedAt: new Date(),
    },
    [],
    limits,
  );
  assert.ok(s.serves(9100, "/metrics"));
  assert.ok(s.serves(9200, "/probe?target=x"));
  assert.ok(!s.serves(9200, "/metrics"));
  assert.ok(!s.serves(80, "/metrics"));
  assert.deepEqual(groupsOf(s.info), [
    { targets: ["fw:9100"], labels: { __meta_promproxy_client: "fw", __meta_promproxy_session_id: "s2", __meta_promproxy_connected: "true" } },
    { targets: ["fw:9200"], labels: { kind: "blackbox", __meta_promproxy_client: "fw", __meta_promproxy_session_id: "s2", __meta_promproxy_connected: "true", __metrics_path__: "/probe" } },
  ]);
  assert.deepEqual(groupsOf(newSession().info), [
    { targets: ["app-1"], labels: { env: "prod", __meta_promproxy_client: "app-1", __meta_promproxy_session_id: "s1", __meta_promproxy_connected: "true" } },
  ]);
});

test("probe: a live client answers, a dead or closed one does not", async () => {
  const s = newSession();
  const live = s.probe(1000);
  s.receive(frame({ case: "pong", value: { nonce: 1n } } as never));
  assert.equal(await live, true);
  assert.equal(await newSession().probe(20), false, "no frame within the probe time");
  const closing = newSession();
  const pending = closing.probe(1000);
  closing.close();
  assert.equal(await pending, false);
  assert.equal(await closing.probe(1000), false, "a closed session is dead at once");
});

test("probes that overlap share one ping, and an answer stands for the probes of the next second", async () => {
  const s = newSession();
  const probes = Array.from({ length: 500 }, () => s.probe(5_000));
  assert.equal(s.outbound.size, 1, "one ping for 500 probes (a flood of hellos for a held name)");
  assert.equal(s.outbound.shift()?.frame?.case, "ping");
  s.receive(frame({ case: "pong", value: { nonce: 1n } } as never));
  assert.deepEqual(new Set(await Promise.all(probes)), new Set([true]));
  assert.equal(await s.probe(5_000), true, "answered a moment ago: alive, at once");
  assert.equal(s.outbound.size, 0, "and no ping for it");
});

test("a scrape cancelled while its order waits unsent is taken back: neither order nor cancel goes out", () => {
  const s = newSession();
  for (let i = 0; i < 5_000; i++) s.scrape(order, recorder().sink)!.cancel("prometheus went away");
  assert.equal(s.outbound.size, 0, "abandoned faster than the client reads: nothing piles up");
  assert.equal(s.inFlight, 0);
  const sent = s.scrape(order, recorder().sink)!;
  const queued = s.scrape(order, recorder().sink)!;
  assert.equal(s.outbound.shift()?.frame?.case, "order");
  sent.cancel("prometheus went away");
  queued.cancel("prometheus went away");
  const out = [];
  for (let f = s.outbound.shift(); f; f = s.outbound.shift()) out.push(f.frame);
  assert.deepEqual(out.filter((f) => f?.case !== "ping").map((f) => [f?.case, (f?.value as { scrapeId: bigint }).scrapeId]), [["cancel", sent.id]], "the order sent is cancelled; the one unsent is gone");
  // Late frames for the scrape whose order went out are still accepted within its credit.
  s.receive(head(sent.id));
  s.receive(end(sent.id));
});

test("a scrape given up on after its order went out keeps its place until the client shows it read the cancel", async () => {
  const s = newSession(); // 2 places
  const a = s.scrape(order, recorder().sink)!;
  const b = s.scrape({ ...order, timeoutMs: 50 }, recorder().sink)!;
  while (s.outbound.shift()); // both orders went out
  a.cancel("Prometheus went away");
  b.cancel("Prometheus went away");
  const sent = [];
  for (let f = s.outbound.shift(); f; f = s.outbound.shift()) sent.push(f.frame);
  assert.deepEqual(sent.map((f) => f?.case), ["cancel", "ping", "cancel"], "a ping after the first cancel, one at a time");
  assert.equal(s.inFlight, 0, "nothing in flight for Prometheus");
  assert.equal(s.givenUp, 2);
  assert.equal(s.scrape(order, recorder().sink), undefined, "but the client still has both: no third order");
  s.receive(end(a.id, { reason: ScrapeErrorReason.CANCELLED, message: "cancelled" }));
  const c = s.scrape(order, recorder().sink);
  assert.ok(c, "the client ended one: its place is free");
  assert.equal(s.scrape(order, recorder().sink), undefined);
  await new Promise((r) => setTimeout(r, 80));
  assert.ok(s.scrape(order, recorder().sink), "the other's deadline passed (a client that shows nothing gives up by then)");
});

test("a client that sends no end frees the places of scrapes given up on by answering the ping after their cancels", () => {
  const s = newSession(); // 2 places
  const hs = [s.scrape({ ...order, timeoutMs: 300_000 }, recorder().sink)!, s.scrape({ ...order, timeoutMs: 300_000 }, recorder().sink)!];
  while (s.outbound.shift());
  for (const h of hs) h.cancel("Prometheus went away");
  const frames = [];
  for (let f = s.outbound.shift(); f; f = s.outbound.shift()) frames.push(f.frame);
  const ping = frames.find((f) => f?.case === "ping")?.value as { nonce: bigint };
  assert.equal(s.scrape(order, recorder().sink), undefined, "held (a stranger asked for 300 s timeouts and hung up)");
  s.receive(frame({ case: "pong", value: { nonce: ping.nonce } } as never));
  const next = s.outbound.shift()?.frame;
  assert.equal(next?.case, "ping", "the second cancel came after the first ping: one more round");
  s.receive(frame({ case: "pong", value: { nonce: (next?.value as { nonce: bigint }).nonce } } as never));
  assert.equal(s.givenUp, 0, "the client read both cancels: their places are free, one round trip later, not 300 s");
  assert.ok(s.scrape(order, recorder().sink));
});
