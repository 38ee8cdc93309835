/**
 * What operators see, in units: the status pages built at most once a second
 * whatever the request rate (counted, not timed), failed scrapes grouped,
 * refusals recorded with a bound per kind and name clashes logged once per
 * name per minute, last scrapes per target, and stream ends in words.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { createActivity, keptTargetsPerClient, type ScrapeEvent } from "../src/server/activity.ts";
import { endReason } from "../src/server/end-reason.ts";
import { createErrorGroups, keptErrorGroups } from "../src/server/status/error-groups.ts";
import { createRefusals, refusalsPerKind } from "../src/server/status/refusals.ts";
import type { StatusJson } from "../src/server/status/status-json.ts";
import { createStatusPages } from "../src/server/status/status-pages.ts";
import type { Logger } from "../src/shared/logger.ts";
import { silentLogger } from "../src/server/index.ts";

function capture(): Logger & { lines: { level: string; message: string; fields?: Record<string, unknown> }[] } {
  const lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => void lines.push({ level, message, fields });
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

const minimal = (now: number): StatusJson =>
  ({ now: new Date(now).toISOString(), replicaId: "r", version: "v", phase: "serving", ready: true, startedAt: new Date(0).toISOString(), scrapesInFlight: 0,
    limits: { maxClients: 1, maxScrapesInFlight: 1, maxScrapesWaiting: 1, maxResponseBytes: 1, maxChunkBytes: 1, creditBytes: 1, defaultScrapeTimeoutMs: 1, maxScrapeTimeoutMs: 1, heartbeatIntervalMs: 1, vanishedRetentionMs: 1 },
    clients: [], clientsTotal: 0, vanished: [], vanishedTotal: 0, recentErrors: [], refused: [], refusedTotal: 0, refusedRoutine: 0 }) as StatusJson;

test("status pages: 10,000 requests over 5 s of clock build the page and the JSON at most once a second", async () => {
  let clock = 0;
  let snapshots = 0;
  let renders = 0;
  const pages = createStatusPages({
    snapshot: () => (snapshots++, minimal(clock)),
    registry: { metrics: async () => (renders++, `m ${clock}\n`) },
    now: () => clock,
  });
  const bodies = new Set<string>();
  for (let i = 0; i < 10_000; i++) {
    clock = i / 2; // 0 .. 5,000 ms
    bodies.add(pages.page().toString());
    assert.equal(JSON.parse(pages.json().toString()).now, new Date(Math.floor(clock / 1000) * 1000).toISOString(), "page and JSON share one snapshot");
    await pages.metrics();
  }
  assert.equal(snapshots, 5, "one snapshot per second of clock");
  assert.equal(pages.builds.snapshots, 5);
  assert.equal(pages.builds.pages, 5);
  assert.equal(pages.builds.jsons, 5);
  assert.equal(bodies.size, 5);
  assert.equal(renders, 5, "/metrics rendered once a second too");
});

test("status pages: concurrent /metrics requests share one render; a failed render is not kept", async () => {
  let calls = 0;
  let fail = true;
  const pages = createStatusPages({
    snapshot: () => minimal(0),
    registry: {
      metrics: () => {
        calls++;
        return new Promise<string>((resolve, reject) => setImmediate(() => (fail ? reject(new Error("collect failed")) : resolve("ok\n"))));
      },
    },
    now: () => 0,
  });
  const failed = await Promise.allSettled(Array.from({ length: 50 }, () => pages.metrics()));
  assert.equal(calls, 1);
  assert.ok(failed.every((r) => r.status === "rejected"));
  fail = false;
  assert.equal((await pages.metrics()).toString(), "ok\n", "the failure was not kept");
  assert.equal(calls, 2);
});

const event = (over: Partial<ScrapeEvent> = {}): ScrapeEvent => ({ name: "fwd", port: 9200, outcome: "target_unreachable", at: new Date(), durationMs: 3, bytes: 0, message: "connect ECONNREFUSED", ...over });

test("error groups: 50 identical failures are one row with a count, first and last time; numbers do not split a group; bounded", () => {
  const g = createErrorGroups();
  const first = new Date(1_000);
  for (let i = 0; i < 50; i++) g.add(event({ at: new Date(1_000 + i), message: `client "fwd" disconnected ${i}s ago: the connection was reset` }));
  g.add(event({ port: 9100, outcome: "timeout", message: "timed out" }));
  const list = g.list();
  assert.equal(list.length, 2);
  assert.equal(list[0]?.port, 9100, "the most recent first");
  assert.equal(list[1]?.count, 50);
  assert.deepEqual(list[1]?.firstAt, first);
  assert.deepEqual(list[1]?.at, new Date(1_049));
  assert.match(list[1]?.message ?? "", /disconnected 49s ago/, "the last message is shown");
  for (let i = 0; i < 1_000; i++) g.add(event({ name: `unknown-${i}`, outcome: "unknown_client" }));
  assert.equal(g.list().length, keptErrorGroups, "a flood of distinct failures is bounded");
});

test("activity: the last scrape per target, so a good and a dead target of one forwarder do not hide each other", () => {
  const errors = createErrorGroups();
  const a = createActivity(silentLogger, 10, errors);
  a.emit("scrapeFinished", event({ port: 9100, outcome: "success", message: undefined }));
  a.emit("scrapeFinished", event({ port: 9200 }));
  a.emit("scrapeFinished", event({ port: 9100, outcome: "success", message: undefined }));
  assert.deepEqual(a.targetScrapes("fwd").map((e) => [e.port, e.outcome]), [[9100, "success"], [9200, "target_unreachable"]]);
  assert.equal(a.lastScrape("fwd")?.port, 9100);
  for (let p = 1; p < 1_000; p++) a.emit("scrapeFinished", event({ port: p, outcome: "not_found" }));
  assert.equal(a.targetScrapes("fwd").length, 2, "ports the client does not serve are not targets");
  for (let p = 1; p < 100; p++) a.emit("scrapeFinished", event({ port: p, outcome: "success" }));
  assert.equal(a.targetScrapes("fwd").length, keptTargetsPerClient);
  assert.equal(errors.list()[0]?.count, 1);
});

test("activity: a name or port scraped again right after itself keeps its place as the most recent; the least recent is forgotten", () => {
  const a = createActivity(silentLogger, 2);
  const ok = (name: string, port = 9100) => a.emit("scrapeFinished", event({ name, port, outcome: "success", message: undefined }));
  ok("a");
  ok("a");
  ok("b");
  ok("a"); // "a" is the most recent again: "b" goes first
  ok("c");
  assert.deepEqual(["a", "b", "c"].map((n) => a.lastScrape(n) !== undefined), [true, false, true]);
  ok("c");
  ok("d"); // "a" is now the least recent
  assert.deepEqual(["a", "c", "d"].map((n) => a.lastScrape(n) !== undefined), [false, true, true]);
  for (let p = 1; p <= keptTargetsPerClient; p++) ok("d", p);
  ok("d", keptTargetsPerClient);
  ok("d", keptTargetsPerClient);
  ok("d", 1); // port 1 is the most recent again: port 2 goes first
  ok("d", 100);
  const ports = a.targetScrapes("d").map((e) => e.port);
  assert.equal(ports.length, keptTargetsPerClient);
  assert.ok(ports.includes(1) && ports.includes(100) && !ports.includes(2), `kept ${ports.join(",")}`);
  const none = createActivity(silentLogger, 0);
  none.emit("scrapeFinished", event({ outcome: "success" }));
  none.emit("scrapeFinished", event({ outcome: "success" }));
  assert.equal(none.lastScrape("fwd"), undefined, "maxNames 0 remembers nothing");
});

test("refusals: grouped with a count per name, identity and address; a flood of one kind never pushes out another", () => {
  const holders = new Map<string, { address?: string; identity?: string }>([["app-1", { address: "10.0.0.1", identity: "apps" }]]);
  const log = capture();
  const r = createRefusals({ logger: log, holder: (n) => holders.get(n) });
  r.record({ code: "AlreadyExists", reason: "held", name: "app-1", identity: "apps", peer: "10.0.0.2" });
  for (let i = 0; i < 5; i++) r.record({ code: "PermissionDenied", reason: `identity "apps" may not use the name "db-1"`, name: "db-1", identity: "apps", peer: "10.0.0.3" });
  for (let i = 0; i < 1_000; i++) r.record({ code: "Unauthenticated", reason: "wrong token", peer: `10.1.${i >> 8}.${i & 255}` });
  const list = r.list();
  assert.equal(list.filter((e) => e.code === "Unauthenticated").length, refusalsPerKind);
  const denied = list.find((e) => e.code === "PermissionDenied");
  assert.equal(denied?.count, 5);
  assert.equal(denied?.why, "its identity may not use this name");
  const clash = list.find((e) => e.code === "AlreadyExists");
  assert.deepEqual([clash?.name, clash?.identity, clash?.address, clash?.count], ["app-1", "apps", "10.0.0.2", 1]);
  assert.equal(list.length, refusalsPerKind + 2);
  // The holder itself, searching for other replicas: routine, only counted.
  r.record({ code: "AlreadyExists", reason: "held", name: "app-1", identity: "apps", peer: "10.0.0.1" });
  assert.equal(r.routine, 1);
  assert.equal(r.list().find((e) => e.code === "AlreadyExists")?.count, 1);
  r.close();
  // A server with a replica count of 1: clients never search it, so the same clash is a real one.
  const single = createRefusals({ logger: log, holder: (n) => holders.get(n), searched: false });
  single.record({ code: "AlreadyExists", reason: "held", name: "app-1", identity: "apps", peer: "10.0.0.1" });
  assert.equal(single.routine, 0);
  assert.equal(single.list().length, 1);
  single.close();
});

test("refusals: a name clash is logged at warn once per name per minute, not per retry; many names stay bounded", () => {
  const log = capture();
  const r = createRefusals({ logger: log, holder: () => ({ address: "10.0.0.1" }) });
  for (let i = 0; i < 200; i++) r.record({ code: "AlreadyExists", reason: "held", name: "app-1", peer: "10.0.0.2" });
  const warns = () => log.lines.filter((l) => l.level === "warn");
  assert.equal(warns().length, 1);
  assert.match(warns()[0]?.message ?? "", /the name "app-1" is held by another connected client/);
  assert.equal(warns()[0]?.fields?.["holderAddress"], "10.0.0.1");
  for (let i = 0; i < 500; i++) r.record({ code: "AlreadyExists", reason: "held", name: `n-${i}`, peer: "10.0.0.2" });
  // 20 lines a minute, then the sparse refusal log: one example at once, the rest summed up once a minute.
  assert.equal(warns().length, 21, `clash lines in a minute: ${warns().length}`);
  r.close();
  assert.equal(warns().length, 22);
  assert.match(warns().at(-1)?.message ?? "", /more refused in the last 60s/);
});

test("stream ends in words, not Node's", () => {
  const premature = Object.assign(new Error("Premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
  const cancel = new ConnectError("http/2 stream closed with error code CANCEL (0x8)", Code.Canceled);
  const internal = new ConnectError("http/2 stream closed with error code INTERNAL_ERROR (0x2)", Code.Internal);
  assert.equal(endReason(premature, cancel), "the client closed its connection (or cancelled its stream) without a goodbye");
  assert.equal(endReason(premature, internal), "the connection was reset");
  assert.equal(endReason(premature), "the client closed its connection (or cancelled its stream) without a goodbye");
  assert.equal(endReason(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" })), "the connection was reset");
  assert.equal(endReason(new ConnectError("the first frame must be a hello", Code.FailedPrecondition)), "the first frame must be a hello", "ours pass unchanged");
  assert.equal(endReason(new Error("a\nb")), "a b");
});
