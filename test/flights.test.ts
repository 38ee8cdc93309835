/**
 * The wait for a place (src/server/flights.ts), through the coordinator on
 * in-memory sessions and node:test's mock timers: a scrape that finds its
 * client's `maxScrapesInFlight` places taken waits for one, in order of
 * arrival, at most `maxScrapesWaiting` of them and each at most half its
 * timeout; it leaves the wait when Prometheus hangs up, when the client goes,
 * when the server closes. Every test asserts what each sink heard, the frames
 * sent, and the counts.
 */
import assert from "node:assert/strict";
import { describe, test, type TestContext } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Registry } from "prom-client";
import { ClientFrameSchema, HelloSchema, type ClientFrame } from "../gen/promproxy/v1/scrape_pb.ts";
import { createActivity } from "../src/server/activity.ts";
import { createCoordinator, type ScrapeRequest } from "../src/server/coordinator.ts";
import { createServerMetrics } from "../src/server/metrics.ts";
import { resolveServerOptions, type ServerOptions } from "../src/server/options.ts";
import type { CheckedHead } from "../src/server/result-head.ts";
import type { ScrapeFailure, ScrapeHandle } from "../src/server/scrape-types.ts";
import type { ServerFrameInit, Session } from "../src/server/session.ts";
import { silentLogger } from "../src/shared/logger.ts";
import "./quiet-mock-timers.ts";


function setup(t: TestContext, options: ServerOptions = {}) {
  t.mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: 1_000_000 });
  const o = resolveServerOptions({ logger: silentLogger, registry: new Registry(), maxScrapesInFlight: 1, maxScrapesWaiting: 2, ...options });
  const metrics = createServerMetrics(o.registry);
  const coordinator = createCoordinator(o, metrics, createActivity(silentLogger, 100));
  const gauge = async (g: "inFlight" | "waiting") => (await metrics[g].get()).values[0]?.value ?? 0;
  return { coordinator, gauge, tick: (ms: number) => t.mock.timers.tick(ms) };
}

function recorder() {
  const events: string[] = [];
  const failures: (ScrapeFailure | undefined)[] = [];
  const sink = {
    onHead: (h: CheckedHead) => void events.push(`head ${h.status}`),
    onChunk: (d: Uint8Array) => void events.push(`chunk ${Buffer.from(d).toString()}`),
    onEnd: (f?: ScrapeFailure) => {
      failures.push(f);
      events.push(f ? `fail ${f.outcome}` : "end");
    },
  };
  return { events, failures, sink };
}

const request = (timeoutMs = 10_000): ScrapeRequest => ({ name: "app", method: "GET", port: 0, path: "/metrics", scheme: "http", headers: [], timeoutMs });
const frame = (f: ClientFrame["frame"]) => create(ClientFrameSchema, { frame: f } as never);
const headFrame = (id: bigint) => frame({ case: "head", value: { scrapeId: id, status: 200, headers: [] } } as never);
const endFrame = (id: bigint) => frame({ case: "end", value: { scrapeId: id } } as never);

function sent(s: Session): NonNullable<ServerFrameInit["frame"]>[] {
  const out: NonNullable<ServerFrameInit["frame"]>[] = [];
  for (let f = s.outbound.shift(); f; f = s.outbound.shift()) if (f.frame) out.push(f.frame);
  return out;
}
const orders = (frames: ReturnType<typeof sent>) => frames.filter((f) => f.case === "order").map((f) => f.value as { scrapeId: bigint; timeout: { seconds: bigint; nanos: number } });

function started(r: ScrapeHandle | ScrapeFailure): ScrapeHandle {
  assert.ok(!("outcome" in r), `the scrape should start or wait: ${"outcome" in r ? r.message : ""}`);
  return r;
}

describe("flights: the wait for a place", () => {
  test("over the limit a scrape waits, in order; over the wait's limit 503 at once; each gets the next place with the time it has left", async (t) => {
    const { coordinator, gauge, tick } = setup(t);
    const s = await coordinator.join(create(HelloSchema, { name: "app", version: "t" }), undefined);
    const [a, b, c] = [recorder(), recorder(), recorder()];
    const ha = started(coordinator.scrape(request(), a.sink));
    started(coordinator.scrape(request(), b.sink));
    started(coordinator.scrape(request(), c.sink));
    assert.deepEqual(coordinator.scrape(request(), recorder().sink), {
      outcome: "busy",
      message: 'client "app" has 1 scrapes in flight, the maximum, and 2 more wait for a place',
    });
    assert.equal(orders(sent(s)).length, 1, "only the first is ordered");
    assert.equal(coordinator.inFlight, 3, "the waiting ones count as in flight (the drain waits for them)");
    assert.equal(await gauge("waiting"), 2);
    assert.equal(await gauge("inFlight"), 3);

    tick(2_000);
    s.receive(headFrame(ha.id));
    s.receive(endFrame(ha.id));
    assert.deepEqual(a.events, ["head 200", "end"]);
    const next = orders(sent(s));
    assert.equal(next.length, 1, "the next in line is ordered at once, and only it");
    // It waited 2 s of its 10: it asks the client for the 8 s left, less 0.5 s (its own error then wins the race).
    assert.deepEqual(next[0]?.timeout, { seconds: 7n, nanos: 500_000_000 });
    assert.equal(await gauge("waiting"), 1);
    s.receive(headFrame(next[0]!.scrapeId));
    s.receive(endFrame(next[0]!.scrapeId));
    assert.deepEqual(b.events, ["head 200", "end"], "first come, first served");
    assert.equal(orders(sent(s)).length, 1);
    assert.deepEqual(c.events, []);
    assert.equal(await gauge("waiting"), 0);
    assert.equal(coordinator.inFlight, 1);
  });

  test("a scrape whose Prometheus hangs up leaves the wait: never ordered, heard by no one, the next one gets the place", async (t) => {
    const { coordinator, gauge } = setup(t);
    const s = await coordinator.join(create(HelloSchema, { name: "app", version: "t" }), undefined);
    const [a, b, c] = [recorder(), recorder(), recorder()];
    const ha = started(coordinator.scrape(request(), a.sink));
    const hb = started(coordinator.scrape(request(), b.sink));
    started(coordinator.scrape(request(), c.sink));
    sent(s);
    hb.cancel("prometheus went away");
    hb.grant(1_000); // nothing to grant to: no frame
    assert.deepEqual(sent(s), [], "a scrape never ordered costs the client nothing");
    assert.equal(await gauge("waiting"), 1);
    s.receive(headFrame(ha.id));
    s.receive(endFrame(ha.id));
    assert.equal(orders(sent(s)).length, 1, "the one behind it is ordered");
    assert.deepEqual(b.events, [], "the one that hung up hears nothing");
    assert.equal(coordinator.inFlight, 1);
    assert.equal(await gauge("waiting"), 0);
  });

  test("no place within half its timeout: 503 saying so, never ordered, nothing left in flight", async (t) => {
    const { coordinator, gauge, tick } = setup(t);
    const s = await coordinator.join(create(HelloSchema, { name: "app", version: "t" }), undefined);
    const [a, b] = [recorder(), recorder()];
    started(coordinator.scrape(request(30_000), a.sink));
    started(coordinator.scrape(request(4_000), b.sink));
    sent(s);
    tick(1_999);
    assert.deepEqual(b.events, []);
    tick(1);
    assert.deepEqual(b.events, ["fail busy"]);
    assert.equal(b.failures[0]?.message, `client "app" has 1 scrapes in flight, the maximum; none came free within 2s (half the scrape's timeout)`);
    assert.equal(orders(sent(s)).length, 0);
    assert.equal(coordinator.inFlight, 1);
    assert.equal(await gauge("waiting"), 0);
    tick(60_000);
    assert.deepEqual(b.events, ["fail busy"], "exactly once");
  });

  test("a place held for a scrape given up on frees for the waiting one when the client answers the ping after the cancel", async (t) => {
    const { coordinator } = setup(t);
    const s = await coordinator.join(create(HelloSchema, { name: "app", version: "t" }), undefined);
    const [a, b] = [recorder(), recorder()];
    const ha = started(coordinator.scrape(request(), a.sink));
    sent(s);
    ha.cancel("prometheus went away"); // ordered, so its place is held until the client read the cancel
    started(coordinator.scrape(request(), b.sink));
    const frames = sent(s);
    assert.deepEqual(frames.map((f) => f.case), ["cancel", "ping"]);
    const nonce = (frames[1]!.value as { nonce: bigint }).nonce;
    s.receive(frame({ case: "pong", value: { nonce } } as never));
    assert.equal(orders(sent(s)).length, 1, "ordered as soon as the client showed it read the cancel");
  });

  test("a held place whose hold runs out on its own (a client that neither ends nor pongs) frees for the waiting one", async (t) => {
    const { coordinator, tick } = setup(t);
    const s = await coordinator.join(create(HelloSchema, { name: "app", version: "t" }), undefined);
    const [a, b] = [recorder(), recorder()];
    const ha = started(coordinator.scrape(request(2_000), a.sink));
    sent(s);
    ha.cancel("prometheus went away"); // held until its order's deadline: 1.8 s
    started(coordinator.scrape(request(10_000), b.sink));
    sent(s);
    tick(1_700);
    assert.equal(orders(sent(s)).length, 0);
    tick(300);
    assert.equal(orders(sent(s)).length, 1, "taken within a recheck of the hold's end");
    assert.deepEqual(b.events, []);
  });

  test("a place freed by time alone goes to the scrape that waited, not to one arriving before the recheck saw it", async (t) => {
    const { coordinator, tick } = setup(t);
    const s = await coordinator.join(create(HelloSchema, { name: "app", version: "t" }), undefined);
    const [a, b, c] = [recorder(), recorder(), recorder()];
    const ha = started(coordinator.scrape(request(2_050), a.sink));
    sent(s);
    ha.cancel("prometheus went away"); // its place held until its order's deadline: 1.845 s
    started(coordinator.scrape(request(), b.sink));
    sent(s);
    tick(1_800); // the recheck at 1.8 s finds the place still held
    tick(50); // freed at 1.845 s; the next recheck is at 1.9 s
    started(coordinator.scrape(request(), c.sink));
    const placed = orders(sent(s));
    assert.equal(placed.length, 1, "one order: the place freed");
    tick(1_000);
    assert.equal(orders(sent(s)).length, 0, "and only one");
    assert.deepEqual(b.events, []);
    assert.deepEqual(c.events, []);
    assert.equal(coordinator.inFlight, 2, "b in flight, c waiting behind it");
    // b got it: when c's own half timeout passes, c is the one answered busy.
    tick(4_100);
    assert.deepEqual(c.events, ["fail busy"]);
    assert.deepEqual(b.events, []);
  });

  test("a silent stream replaced by a new one for the same client: its waiting scrapes wait for the new one's places", async (t) => {
    const { coordinator, tick } = setup(t, { takeoverProbeMs: 2_000 });
    const old = await coordinator.join(create(HelloSchema, { name: "app", version: "t" }), undefined);
    const [a, b] = [recorder(), recorder()];
    started(coordinator.scrape(request(60_000), a.sink));
    started(coordinator.scrape(request(60_000), b.sink));
    sent(old);
    const joining = coordinator.join(create(HelloSchema, { name: "app", version: "t" }), undefined);
    tick(2_000); // the old stream does not answer the probe
    const next = await joining;
    assert.deepEqual(a.events, ["fail disconnected"], "the one in flight on the old stream fails");
    assert.deepEqual(b.events, []);
    const placed = orders(sent(next));
    assert.equal(placed.length, 1, "the waiting one is ordered on the new stream");
    next.receive(headFrame(placed[0]!.scrapeId));
    next.receive(endFrame(placed[0]!.scrapeId));
    assert.deepEqual(b.events, ["head 200", "end"]);
    assert.equal(coordinator.inFlight, 0);
  });

  test("the client goes while scrapes wait: each fails once, saying why", async (t) => {
    const { coordinator, tick } = setup(t);
    const s = await coordinator.join(create(HelloSchema, { name: "app", version: "t" }), undefined);
    const [a, b] = [recorder(), recorder()];
    started(coordinator.scrape(request(), a.sink));
    started(coordinator.scrape(request(), b.sink));
    s.close();
    coordinator.leave(s, { reason: "the client said goodbye", broke: false });
    assert.deepEqual(a.events, ["fail disconnected"]);
    assert.deepEqual(b.events, ["fail disconnected"]);
    assert.equal(b.failures[0]?.message, 'client "app" disconnected while the scrape waited for a place: the client said goodbye');
    assert.equal(coordinator.inFlight, 0);
    tick(60_000);
    assert.deepEqual(b.events, ["fail disconnected"]);
  });

  test("a scrape a peer forwarded never waits: 503 at once (it would hold a connection of the peer's pool)", async (t) => {
    const { coordinator, gauge } = setup(t);
    await coordinator.join(create(HelloSchema, { name: "app", version: "t" }), undefined);
    started(coordinator.scrape(request(), recorder().sink));
    assert.deepEqual(coordinator.scrape({ ...request(), noWait: true }, recorder().sink), { outcome: "busy", message: 'client "app" has 1 scrapes in flight, the maximum' });
    assert.equal(await gauge("waiting"), 0);
  });

  test("a client that says it works on fewer at once than the server allows: that many in flight, the rest wait", async (t) => {
    const { coordinator } = setup(t, { maxScrapesInFlight: 16 });
    const s = await coordinator.join(create(HelloSchema, { name: "app", version: "t", maxInFlight: 2 }), undefined);
    for (let i = 0; i < 4; i++) started(coordinator.scrape(request(), recorder().sink));
    assert.equal(orders(sent(s)).length, 2);
    assert.equal(s.maxInFlight, 2);
    assert.deepEqual(coordinator.scrape(request(), recorder().sink), { outcome: "busy", message: 'client "app" has 2 scrapes in flight, the most it said it works on at once, and 2 more wait for a place' });
  });

  test("maxScrapesWaiting 0: 503 at once, as without a wait", async (t) => {
    const { coordinator } = setup(t, { maxScrapesWaiting: 0 });
    await coordinator.join(create(HelloSchema, { name: "app", version: "t" }), undefined);
    started(coordinator.scrape(request(), recorder().sink));
    assert.deepEqual(coordinator.scrape(request(), recorder().sink), { outcome: "busy", message: 'client "app" has 1 scrapes in flight, the maximum' });
    assert.equal(coordinator.inFlight, 1);
  });

  test("the drain waits for waiting scrapes; at the close those still waiting are answered shutting down", async (t) => {
    const { coordinator, tick } = setup(t);
    const s = await coordinator.join(create(HelloSchema, { name: "app", version: "t" }), undefined);
    const [a, b] = [recorder(), recorder()];
    started(coordinator.scrape(request(60_000), a.sink));
    started(coordinator.scrape(request(60_000), b.sink));
    let closed = false;
    void coordinator.shutdown({ drainDelayMs: 0, graceMs: 5_000 }).then(() => (closed = true));
    tick(0);
    await new Promise((r) => setImmediate(r));
    assert.equal(closed, false, "two scrapes still in flight");
    tick(5_000);
    await new Promise((r) => setImmediate(r));
    assert.equal(closed, true);
    assert.deepEqual(b.events, ["fail shutting_down"]);
    assert.deepEqual(a.events, ["fail disconnected"]);
    assert.equal(orders(sent(s)).length, 1);
  });

  test("options: maxScrapesWaiting is a whole number >= 0", () => {
    for (const bad of [-1, 1.5, Number.NaN]) assert.throws(() => resolveServerOptions({ maxScrapesWaiting: bad }), /maxScrapesWaiting must be a whole number >= 0/);
    assert.equal(resolveServerOptions({}).maxScrapesWaiting, 64);
    assert.equal(resolveServerOptions({ maxScrapesWaiting: 0 }).maxScrapesWaiting, 0);
  });
});
