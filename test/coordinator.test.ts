/**
 * The coordinator alone (src/server/coordinator.ts): one scrape's life driven
 * with in-memory sessions (frames fed to `session.receive`, frames sent read
 * from `session.outbound`) and node:test's mock timers, so that deadlines,
 * heartbeats, takeover probes and the drain happen when the test ticks, not
 * when the machine gets round to it. Every test asserts outcomes: what the
 * sink heard (once), frames sent, the in-flight count and gauge, the phase.
 */
import assert from "node:assert/strict";
import { describe, test, type TestContext } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { ClientFrameSchema, HelloSchema, ScrapeErrorReason, type ClientFrame } from "../gen/promproxy/v1/scrape_pb.ts";
import { createActivity } from "../src/server/activity.ts";
import { createCoordinator, type ScrapeRequest } from "../src/server/coordinator.ts";
import { createServerMetrics } from "../src/server/metrics.ts";
import { resolveServerOptions, type ServerOptions } from "../src/server/options.ts";
import type { CheckedHead } from "../src/server/result-head.ts";
import type { ScrapeFailure, ScrapeHandle } from "../src/server/scrape-types.ts";
import type { ServerFrameInit, Session } from "../src/server/session.ts";
import { silentLogger } from "../src/shared/logger.ts";
import { joinBody } from "../src/server/listen/pieced-body.ts";
import "./quiet-mock-timers.ts";


/** A coordinator on mock timers (enabled before it is made, so its heartbeat and sweep timers are mocked too). */
function setup(t: TestContext, options: ServerOptions = {}) {
  t.mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: 1_000_000 });
  const o = resolveServerOptions({ logger: silentLogger, registry: new Registry(), heartbeatIntervalMs: 10_000, ...options });
  const metrics = createServerMetrics(o.registry);
  const activity = createActivity(silentLogger, 100);
  const coordinator = createCoordinator(o, metrics, activity);
  const gauge = async () => (await metrics.inFlight.get()).values[0]?.value ?? 0;
  return { coordinator, metrics, activity, gauge, tick: (ms: number) => t.mock.timers.tick(ms) };
}

const hello = (name: string) => create(HelloSchema, { name, version: "test" });

/** What one scrape's sink heard, in order. */
function recorder() {
  const events: string[] = [];
  const failures: (ScrapeFailure | undefined)[] = [];
  return {
    events,
    failures,
    sink: {
      onHead: (h: CheckedHead) => void events.push(`head ${h.status}`),
      onChunk: (d: Uint8Array) => void events.push(`chunk ${Buffer.from(d).toString()}`),
      onEnd: (f?: ScrapeFailure) => {
        failures.push(f);
        events.push(f ? `fail ${f.outcome}` : "end");
      },
    },
  };
}

const request = (name: string, timeoutMs = 10_000): ScrapeRequest =>
  ({ name, method: "GET", port: 0, path: "/metrics", scheme: "http", headers: [], timeoutMs });

const frame = (f: ClientFrame["frame"]) => create(ClientFrameSchema, { frame: f } as never);
const headFrame = (id: bigint, contentLength?: number) =>
  frame({ case: "head", value: { scrapeId: id, status: 200, headers: contentLength === undefined ? [] : [{ name: "content-length", value: String(contentLength) }] } } as never);
const chunkFrame = (id: bigint, s: string) => frame({ case: "chunk", value: { scrapeId: id, data: Buffer.from(s) } } as never);
const endFrame = (id: bigint, error?: { reason: number; message: string }) => frame({ case: "end", value: { scrapeId: id, error } } as never);
const pongFrame = () => frame({ case: "pong", value: { nonce: 1n } } as never);
const pong = () => frame({ case: "pong", value: { nonce: 1n } } as never);

/** Every frame the session has queued for its client, taken out of the queue. */
function sent(s: Session): ServerFrameInit["frame"][] {
  const out: ServerFrameInit["frame"][] = [];
  for (let f = s.outbound.shift(); f; f = s.outbound.shift()) out.push(f.frame);
  return out;
}
const cases = (s: Session) => sent(s).map((f) => f?.case);

function started(r: ReturnType<ReturnType<typeof createCoordinator>["scrape"]>): ScrapeHandle {
  assert.ok(!("outcome" in r), `the scrape should start: ${"outcome" in r ? r.message : ""}`);
  return r;
}

/** Lets promise continuations run (setImmediate is not mocked). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("coordinator: deadline", () => {
  test("reached: the order is cancelled, the sink hears timeout exactly once, nothing stays in flight", async (t) => {
    const { coordinator, gauge, tick } = setup(t);
    const s = await coordinator.join(hello("app"), undefined);
    const r = recorder();
    const h = started(coordinator.scrape(request("app", 2_000), r.sink));
    const order = sent(s);
    assert.equal(order[0]?.case, "order");
    // The client is asked to finish a little early (10 % of 2 s): its own error then wins the race.
    assert.deepEqual(order[0]?.case === "order" && order[0].value.timeout, { seconds: 1n, nanos: 800_000_000 });
    assert.equal(coordinator.inFlight, 1);
    assert.equal(await gauge(), 1);

    tick(1_999);
    assert.deepEqual(r.events, [], "nothing before the deadline");
    tick(1);
    assert.deepEqual(r.events, ["fail timeout"]);
    assert.equal(r.failures[0]?.message, 'scrape of "app" timed out after 2s');
    const cancel = sent(s).filter((f) => f?.case !== "ping"); // a ping follows, for the place held until the client read the cancel
    assert.equal(cancel.length, 1);
    assert.equal(cancel[0]?.case, "cancel");
    assert.equal(cancel[0]?.case === "cancel" && cancel[0].value.scrapeId, h.id);
    assert.equal(coordinator.inFlight, 0);
    assert.equal(await gauge(), 0);

    // The client's answer arrives late: accepted quietly, heard by no one.
    s.receive(headFrame(h.id));
    s.receive(endFrame(h.id));
    tick(60_000);
    assert.deepEqual(r.events, ["fail timeout"], "exactly once");
    assert.equal(coordinator.inFlight, 0);
  });

  test("the client's own timeout before the deadline is the timeout answer, named as the deadline's", async (t) => {
    const { coordinator, tick } = setup(t);
    const s = await coordinator.join(hello("app"), undefined);
    const r = recorder();
    const h = started(coordinator.scrape(request("app", 2_000), r.sink));
    tick(1_800);
    s.receive(endFrame(h.id, { reason: ScrapeErrorReason.TIMEOUT, message: "exporter took too long" }));
    assert.deepEqual(r.events, ["fail timeout"]);
    assert.equal(r.failures[0]?.message, 'scrape of "app" timed out after 2s: client "app": exporter took too long');
    tick(10_000);
    assert.deepEqual(r.events, ["fail timeout"], "the deadline's timer was cleared");
    assert.equal(coordinator.inFlight, 0);
  });

  test("a timeout the client reports long before the deadline is its target's own: not said as the deadline's", async (t) => {
    const { coordinator, tick } = setup(t);
    const s = await coordinator.join(hello("app"), undefined);
    const r = recorder();
    const h = started(coordinator.scrape(request("app", 2_000), r.sink));
    tick(9);
    s.receive(endFrame(h.id, { reason: ScrapeErrorReason.TIMEOUT, message: "exporter timeout 5ms" }));
    assert.deepEqual(r.events, ["fail timeout"]);
    assert.equal(r.failures[0]?.message, 'client "app": exporter timeout 5ms');
  });

  test("a success ends before the deadline: the timer never fires", async (t) => {
    const { coordinator, gauge, tick } = setup(t);
    const s = await coordinator.join(hello("app"), undefined);
    const r = recorder();
    const h = started(coordinator.scrape(request("app", 2_000), r.sink));
    sent(s);
    s.receive(headFrame(h.id));
    s.receive(chunkFrame(h.id, "up 1\n"));
    s.receive(endFrame(h.id));
    tick(5_000);
    assert.deepEqual(r.events, ["head 200", "chunk up 1\n", "end"]);
    assert.deepEqual(cases(s), [], "no cancel sent");
    assert.equal(await gauge(), 0);
  });
});

describe("coordinator: a cancel crossing an end", () => {
  test("cancel first: the client's end that crossed it is heard by no one, in flight drops once", async (t) => {
    const { coordinator, gauge, tick } = setup(t);
    const s = await coordinator.join(hello("app"), undefined);
    const r = recorder();
    const h = started(coordinator.scrape(request("app"), r.sink));
    sent(s);
    s.receive(headFrame(h.id));
    h.cancel("prometheus went away");
    assert.deepEqual(cases(s), ["cancel", "ping"], "a ping after it: the place is held until the client read the cancel");
    s.receive(chunkFrame(h.id, "late"));
    s.receive(endFrame(h.id));
    h.cancel("again");
    tick(20_000);
    assert.deepEqual(r.events, ["head 200"], "a cancelled scrape's sink hears no end");
    assert.deepEqual(cases(s).filter((c) => c !== "ping"), [], "one cancel frame only");
    assert.equal(coordinator.inFlight, 0);
    assert.equal(await gauge(), 0);
  });

  test("end first: the cancel after it sends nothing and counts nothing", async (t) => {
    const { coordinator, gauge } = setup(t);
    const s = await coordinator.join(hello("app"), undefined);
    const r = recorder();
    const other = recorder();
    const h = started(coordinator.scrape(request("app"), r.sink));
    started(coordinator.scrape(request("app"), other.sink));
    sent(s);
    s.receive(headFrame(h.id));
    s.receive(endFrame(h.id));
    h.cancel("prometheus went away");
    assert.deepEqual(r.events, ["head 200", "end"]);
    assert.deepEqual(cases(s), [], "no cancel for an ended scrape");
    assert.equal(coordinator.inFlight, 1, "the other scrape is still counted: the late cancel did not count twice");
    assert.equal(await gauge(), 1);
  });
});

describe("coordinator: end exactly once", () => {
  test("a duplicate end, a late chunk's end and the stream's close after the end add nothing", async (t) => {
    const { coordinator, tick } = setup(t);
    const s = await coordinator.join(hello("app"), undefined);
    const r = recorder();
    const h = started(coordinator.scrape(request("app", 1_000), r.sink));
    s.receive(headFrame(h.id, 3));
    s.receive(chunkFrame(h.id, "abc"));
    s.receive(endFrame(h.id));
    s.receive(endFrame(h.id));
    s.receive(endFrame(h.id, { reason: ScrapeErrorReason.INTERNAL, message: "too late" }));
    s.close(new ConnectError("gone", Code.Unavailable));
    coordinator.leave(s, { reason: "gone", broke: true });
    tick(5_000);
    assert.deepEqual(r.events, ["head 200", "chunk abc", "end"]);
    assert.equal(coordinator.inFlight, 0);
  });

  test("a result refused by the session ends the scrape once, then the deadline passes in silence", async (t) => {
    const { coordinator, tick } = setup(t);
    const s = await coordinator.join(hello("app"), undefined);
    const r = recorder();
    const h = started(coordinator.scrape(request("app", 1_000), r.sink));
    sent(s);
    s.receive(headFrame(h.id, 2));
    s.receive(chunkFrame(h.id, "abc")); // more than its content-length
    assert.deepEqual(r.events, ["head 200", "fail bad_result"]);
    assert.deepEqual(cases(s), ["cancel"]);
    s.receive(endFrame(h.id));
    tick(5_000);
    assert.deepEqual(r.events, ["head 200", "fail bad_result"]);
    assert.equal(coordinator.inFlight, 0);
  });
});

describe("coordinator: drain", () => {
  test("in-flight scrapes finish; new ones are served for the drain delay, then refused; streams told to go", async (t) => {
    const { coordinator, gauge, tick } = setup(t);
    const s = await coordinator.join(hello("app"), undefined);
    const first = recorder();
    const h1 = started(coordinator.scrape(request("app", 60_000), first.sink));
    let done = false;
    const closed = coordinator.shutdown({ drainDelayMs: 1_000, graceMs: 30_000 }).then(() => (done = true));
    assert.equal(coordinator.phase, "draining");
    assert.equal(coordinator.ready, false);
    assert.throws(() => coordinator.admit(), (e: unknown) => ConnectError.from(e).code === Code.Unavailable);

    // Draining: still served (Prometheus re-dials through the balancer meanwhile).
    const second = recorder();
    const h2 = started(coordinator.scrape(request("app", 60_000), second.sink));
    tick(1_000);
    await settle();
    assert.equal(coordinator.phase, "refusing");
    const refused = coordinator.scrape(request("app"), recorder().sink);
    assert.deepEqual(refused, { outcome: "shutting_down", message: "server is shutting down" });
    assert.equal(coordinator.inFlight, 2);

    s.receive(headFrame(h1.id));
    s.receive(endFrame(h1.id));
    await settle();
    assert.equal(done, false, "one scrape still in flight");
    s.receive(headFrame(h2.id));
    s.receive(endFrame(h2.id));
    await closed;
    assert.deepEqual(first.events, ["head 200", "end"]);
    assert.deepEqual(second.events, ["head 200", "end"]);
    assert.equal(coordinator.phase, "closed");
    assert.equal(await gauge(), 0);
    assert.equal(s.outbound.closed, true);
    assert.equal(ConnectError.from(s.outbound.error).code, Code.Unavailable);
  });

  test("a scrape that outlasts the grace is failed when its stream is told to go", async (t) => {
    const { coordinator, tick } = setup(t);
    const s = await coordinator.join(hello("app"), undefined);
    const r = recorder();
    started(coordinator.scrape(request("app", 600_000), r.sink));
    let done = false;
    const closed = coordinator.shutdown({ drainDelayMs: 0, graceMs: 5_000 }).then(() => (done = true));
    tick(0);
    await settle();
    tick(4_999);
    await settle();
    assert.equal(done, false);
    tick(1);
    await closed;
    assert.deepEqual(r.events, ["fail disconnected"]);
    assert.equal(coordinator.inFlight, 0);
    assert.equal(s.outbound.closed, true);
  });

  test("nothing in flight: closed right after the drain delay", async (t) => {
    const { coordinator, tick } = setup(t);
    await coordinator.join(hello("app"), undefined);
    const closed = coordinator.shutdown({ drainDelayMs: 500, graceMs: 60_000 });
    tick(500);
    await closed;
    assert.equal(coordinator.phase, "closed");
    await assert.rejects(coordinator.join(hello("other"), undefined), (e: unknown) => ConnectError.from(e).code === Code.Unavailable);
  });
});

describe("coordinator: takeover", () => {
  test("a silent holder is replaced mid-scrape: its scrape fails once (disconnected), the new stream serves", async (t) => {
    const { coordinator, tick } = setup(t, { takeoverProbeMs: 2_000 });
    const old = await coordinator.join(hello("app"), undefined);
    const r = recorder();
    const h = started(coordinator.scrape(request("app", 20_000), r.sink));
    old.receive(headFrame(h.id));
    sent(old);
    const joining = coordinator.join(hello("app"), undefined);
    assert.deepEqual(cases(old), ["ping"], "the holder is probed");
    tick(2_000);
    const next = await joining;
    assert.notEqual(next, old);
    assert.deepEqual(r.events, ["head 200", "fail disconnected"]);
    assert.equal(ConnectError.from(old.outbound.error).code, Code.Aborted);
    assert.equal(coordinator.inFlight, 0);
    assert.equal(coordinator.holder("app")?.sessionId, next.info.sessionId);

    // The old stream's late frames reach no one; the new one serves.
    old.receive(endFrame(h.id));
    tick(25_000); // past the old scrape's deadline, within the new stream's heartbeat timeout
    assert.deepEqual(r.events, ["head 200", "fail disconnected"]);
    const r2 = recorder();
    const h2 = started(coordinator.scrape(request("app"), r2.sink));
    next.receive(headFrame(h2.id));
    next.receive(endFrame(h2.id));
    assert.deepEqual(r2.events, ["head 200", "end"]);
  });

  test("a holder that answers the probe keeps its name and its scrape", async (t) => {
    const { coordinator, tick } = setup(t, { takeoverProbeMs: 2_000 });
    const old = await coordinator.join(hello("app"), undefined);
    const r = recorder();
    const h = started(coordinator.scrape(request("app", 60_000), r.sink));
    const joining = coordinator.join(hello("app"), undefined);
    tick(500);
    old.receive(pong());
    await assert.rejects(joining, (e: unknown) => ConnectError.from(e).code === Code.AlreadyExists);
    old.receive(headFrame(h.id));
    old.receive(endFrame(h.id));
    assert.deepEqual(r.events, ["head 200", "end"]);
    assert.equal(coordinator.holder("app")?.sessionId, old.info.sessionId);
  });
});

describe("coordinator: vanished", () => {
  test("a stream lost mid-scrape: the scrape fails once (disconnected), then the name answers vanished", async (t) => {
    const { coordinator, gauge, tick } = setup(t);
    const s = await coordinator.join(hello("app"), undefined);
    const r = recorder();
    const h = started(coordinator.scrape(request("app", 60_000), r.sink));
    s.receive(headFrame(h.id));
    s.close(new ConnectError("stream reset", Code.Unavailable));
    coordinator.leave(s, { reason: "the stream broke", broke: true });
    assert.deepEqual(r.events, ["head 200", "fail disconnected"]);
    assert.equal(r.failures[0]?.message, 'client "app" disconnected: stream reset');
    assert.equal(coordinator.inFlight, 0);
    assert.equal(await gauge(), 0);
    tick(60_000);
    assert.deepEqual(r.events, ["head 200", "fail disconnected"], "the deadline passes in silence");

    assert.deepEqual(coordinator.scrape(request("app"), recorder().sink), { outcome: "vanished", message: 'client "app" disconnected 60s ago: the stream broke' });
    assert.equal(coordinator.vanished()[0]?.info.name, "app");
    assert.match(joinBody(coordinator.discovery().body).toString(), /"__meta_promproxy_connected":"false"/);
  });

  test("a stream gone silent is closed by the heartbeat: its scrape fails, its name answers vanished", async (t) => {
    const { coordinator, tick } = setup(t, { heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 3_000 });
    const s = await coordinator.join(hello("app"), undefined);
    const r = recorder();
    started(coordinator.scrape(request("app", 60_000), r.sink));
    tick(3_000);
    assert.deepEqual(r.events, [], "not yet: silent for 3 s, not more");
    tick(1_000);
    assert.deepEqual(r.events, ["fail disconnected"]);
    assert.equal(ConnectError.from(s.outbound.error).code, Code.DeadlineExceeded);
    const v = coordinator.scrape(request("app"), recorder().sink);
    assert.ok("outcome" in v && v.outcome === "vanished", JSON.stringify(v));
    assert.match(v.message, /nothing heard from the client for 3s/);
  });

  test("a stream that answers but takes nothing of what waits for a heartbeat timeout is closed as not reading", async (t) => {
    const { coordinator, tick } = setup(t, { heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 3_000 });
    const s = await coordinator.join(hello("app"), undefined);
    const r = recorder();
    started(coordinator.scrape(request("app", 60_000), r.sink)); // its order waits: nothing takes it
    for (let i = 0; i < 3; i++) {
      tick(1_000);
      s.receive(pongFrame());
    }
    assert.deepEqual(r.events, [], "not yet: waiting for 3 s, not more");
    tick(1_000);
    assert.deepEqual(r.events, ["fail disconnected"]);
    assert.match(r.failures[0]?.message ?? "", /^client "app" disconnected: the client stopped reading its stream \(1 frames unread for 4s\)$/);
  });

  test("a clean goodbye is not vanished: the name is unknown at once", async (t) => {
    const { coordinator } = setup(t);
    const s = await coordinator.join(hello("app"), undefined);
    s.close();
    coordinator.leave(s, { reason: "the client said goodbye", broke: false });
    assert.deepEqual(coordinator.scrape(request("app"), recorder().sink), { outcome: "unknown_client", message: 'no client "app" connected' });
    assert.deepEqual(coordinator.vanished(), []);
  });
});

describe("coordinator: refusals before any order", () => {
  test("unknown client, path not served, the in-flight limit", async (t) => {
    const { coordinator } = setup(t, { maxScrapesInFlight: 1, maxScrapesWaiting: 0 });
    const s = await coordinator.join(create(HelloSchema, { name: "app", version: "t", targets: [{ port: 9100, path: "/metrics" }] }), undefined);
    assert.deepEqual(coordinator.scrape(request("nobody"), recorder().sink), { outcome: "unknown_client", message: 'no client "nobody" connected' });
    assert.deepEqual(coordinator.scrape({ ...request("app"), port: 9100, path: "/other" }, recorder().sink), {
      outcome: "not_found",
      message: 'client "app" serves nothing at port 9100 path "/other"',
    });
    started(coordinator.scrape({ ...request("app"), port: 9100 }, recorder().sink));
    assert.deepEqual(coordinator.scrape({ ...request("app"), port: 9100 }, recorder().sink), {
      outcome: "busy",
      message: 'client "app" has 1 scrapes in flight, the maximum',
    });
    assert.deepEqual(cases(s), ["order"], "only the started scrape was ordered");
    assert.equal(coordinator.inFlight, 1);
  });
});
