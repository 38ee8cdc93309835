/**
 * Scenarios about ending scrapes early: a Cancel in the middle of a body, a
 * Cancel for a scrape that has ended, Credit and Cancel for ids the client does
 * not know, and an order that times out while the server grants no credit.
 *
 * @internal
 */
import { ScrapeErrorReason } from "../../../gen/promproxy/v1/scrape_pb.ts";
import { assertHealthy, connectClient, scrapeOk } from "../harness.ts";
import { formatBytes } from "../result-check.ts";
import { check, notApplicable, pass, sleep, waitUntil, type Scenario } from "../scenario.ts";
import { reasonName, type ScrapeRecord } from "../scrape-ledger.ts";

const MiB = 1 << 20;
/** A record's end, read afresh (past checks narrowed the field in the compiler's eyes). */
const endOf = (r: ScrapeRecord): ScrapeRecord["end"] => r.end;
const ample = { creditBytes: 64 * MiB, grantBytes: 64 * MiB };

export const cancelMidBody: Scenario = {
  id: "cancel-mid-body",
  title: "Cancel mid-body: nothing more for it, the stream stays up",
  timeoutMs: 40_000,
  async run(ctx) {
    const { server, session } = await connectClient(ctx, { welcome: { maxChunkBytes: 1024 } });
    const size = (await scrapeOk(session, ample)).bodyBytes;
    if (size < 2) return notApplicable(`the body (${size} B) is too small to cancel in its middle`);
    // Half the body at most: the client sends that much and then waits for credit that never comes.
    const credit = Math.max(1, Math.min(4096, Math.floor(size / 2)));
    const t = session.order({ creditBytes: credit });
    await waitUntil(`the client to use its ${credit} bytes of credit`, () => t.record.bodyBytes >= credit || t.record.end, 10_000);
    assertHealthy(server, session);
    check(!t.record.end, () => `the scrape ended before the cancel (${t.record.bodyBytes} of ${credit} bytes of credit used)`);
    t.cancel("conformance: cancel mid-body");
    // Credit after the Cancel: a client that still serves the scrape would use it.
    await sleep(200);
    session.send({ frame: { case: "credit", value: { scrapeId: t.record.id, bytes: BigInt(MiB) } } });
    await sleep(1_000);
    const after = t.record.afterCancel;
    check(after.heads + after.chunks === 0, `sent ${after.chunks} chunks (${after.bytes} B) after the Cancel`);
    assertHealthy(server, session);
    const next = await scrapeOk(session, ample);
    assertHealthy(server, session);
    const end = endOf(t.record); // set since the check above, when the client sent one after the Cancel
    const trailer = end ? `; then an End${end.error ? ` ${reasonName(end.error.reason)}` : ""} (tolerated)` : "";
    return pass(`cancelled after ${t.record.bodyBytes} of ${formatBytes(size)}; no chunk after it${trailer}; next scrape ok (${formatBytes(next.bodyBytes)})`);
  },
};

export const cancelAfterEnd: Scenario = {
  id: "cancel-after-end",
  title: "Cancel for a finished scrape: ignored, the stream stays up",
  timeoutMs: 30_000,
  async run(ctx) {
    const { server, session } = await connectClient(ctx);
    const done = await scrapeOk(session, ample);
    session.send({ frame: { case: "cancel", value: { scrapeId: done.id, reason: "conformance: cancel after end" } } });
    await session.ping(7n, 5_000);
    await sleep(300);
    assertHealthy(server, session);
    await scrapeOk(session, ample);
    assertHealthy(server, session);
    return pass("nothing sent for the finished scrape; pong and the next scrape ok");
  },
};

export const unknownIds: Scenario = {
  id: "unknown-ids",
  title: "Credit and Cancel for unknown ids: ignored",
  timeoutMs: 30_000,
  async run(ctx) {
    const { server, session } = await connectClient(ctx, { welcome: { maxChunkBytes: 1024 } });
    for (const scrapeId of [987_654_321n, 2n ** 64n - 1n]) {
      session.send({ frame: { case: "credit", value: { scrapeId, bytes: BigInt(MiB) } } });
      session.send({ frame: { case: "cancel", value: { scrapeId, reason: "conformance: unknown id" } } });
    }
    // For the id the next order will carry: a client must not keep credit (or a cancel) for an id it does not know.
    const nextId = BigInt(session.scrapes.length + 1);
    session.send({ frame: { case: "cancel", value: { scrapeId: nextId, reason: "conformance: not ordered yet" } } });
    session.send({ frame: { case: "credit", value: { scrapeId: nextId, bytes: BigInt(MiB) } } });
    await session.ping(8n, 5_000);
    const r = await scrapeOk(session, { creditBytes: 4096, grantBytes: 4096 });
    check(r.id === nextId, `the scrape got id ${r.id}, expected ${nextId}`);
    assertHealthy(server, session);
    return pass(`ignored; scrape ${nextId} then served within its own credit (${formatBytes(r.bodyBytes)}, ${r.grants} grants)`);
  },
};

export const orderTimeout: Scenario = {
  id: "timeout",
  title: "order timeout with no credit: End TIMEOUT (or stop) in time, the stream stays up",
  timeoutMs: 30_000,
  async run(ctx) {
    const { server, session } = await connectClient(ctx, { welcome: { maxChunkBytes: 1024 } });
    const timeoutMs = 1_500;
    const graceMs = 1_000;
    const t = session.order({ creditBytes: 0, timeoutMs });
    await waitUntil("the end or the deadline", () => t.record.end !== undefined || Date.now() > t.record.orderedAt + timeoutMs + graceMs, timeoutMs + graceMs + 500);
    assertHealthy(server, session);
    const end = t.record.end;
    let detail: string;
    if (end) {
      const took = end.at - t.record.orderedAt;
      check(end.error, "the scrape ended successfully without any credit");
      check(end.error.reason === ScrapeErrorReason.TIMEOUT, `ended with ${reasonName(end.error.reason)}, want TIMEOUT`);
      check(took >= timeoutMs - 100, `ended with TIMEOUT after ${took} ms, before the order's ${timeoutMs} ms`);
      detail = `End TIMEOUT after ${(took / 1000).toFixed(2)} s (order timeout ${timeoutMs / 1000} s)`;
    } else {
      detail = `no End within ${(timeoutMs + graceMs) / 1000} s: stopped silently`;
    }
    // Credit after the timeout: a client that is still at it would send its body now.
    session.send({ frame: { case: "credit", value: { scrapeId: t.record.id, bytes: BigInt(MiB) } } });
    await sleep(700);
    check(t.record.chunks === 0, `sent ${t.record.chunks} chunks after its timeout, once credit came`);
    check(end || !endOf(t.record), "sent an End only after the timeout had passed");
    assertHealthy(server, session);
    await scrapeOk(session, ample);
    assertHealthy(server, session);
    return pass(`${detail}; nothing sent for it after; next scrape ok`);
  },
};
