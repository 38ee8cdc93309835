/**
 * A result that fails after its answer's head went out (shorter than its own Content-Length, an error end, a protocol
 * violation) can only be cut: Prometheus sees a short or empty reply. That was said nowhere (outside review 18a, L2:
 * `curl: (52) Empty reply from server` and no log line); now the cut is logged (warn, once a minute per client). A
 * hostile registered client played by hand-written frames.
 *
 * (A failure before the head went out gets its one-line 502: test/e2e/errors.test.ts and test/relay.test.ts.)
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { startServer, waitFor, type TestServer } from "../helpers.ts";
import { warningLogger } from "./fixtures/stalled-answers.ts";
import { frame, hello, raw, type ClientFrameInit, type Raw } from "./fixtures/raw-h2.ts";
import { openGet, ScrapeErrorReason } from "./raw-client.ts";

const text = { name: "content-type", value: "text/plain; version=0.0.4" };
const head = (id: bigint, contentLength?: number): ClientFrameInit => ({
  frame: { case: "head", value: { scrapeId: id, status: 200, headers: contentLength === undefined ? [text] : [text, { name: "content-length", value: String(contentLength) }] } },
});
const chunk = (id: bigint, bytes: number, fill = "a"): ClientFrameInit => ({ frame: { case: "chunk", value: { scrapeId: id, data: Buffer.alloc(bytes, fill) } } });
const end = (id: bigint, error?: { reason: ScrapeErrorReason; message: string }): ClientFrameInit => ({ frame: { case: "end", value: { scrapeId: id, ...(error ? { error } : {}) } } });

/** A server that keeps its warnings, and the hostile client "evil" on a raw stream. */
async function setup() {
  const { logger, warnings } = warningLogger();
  const s = await startServer({ logger });
  const evil = raw(s.port);
  evil.stream.write(frame(hello("evil", { features: ["single-result"] })));
  await waitFor("the welcome", () => evil.frames.some((f) => f.frame.case === "welcome"));
  let seen = 0;
  /** The next order the client got. */
  const nextOrder = async (): Promise<bigint> => {
    const orders = () => evil.frames.filter((f) => f.frame.case === "order");
    await waitFor("an order", () => orders().length > seen, 10_000, 5);
    const f = orders()[seen++]!.frame;
    return f.case === "order" ? f.value.scrapeId : 0n;
  };
  /** Answers the next order with `frames(id)`, all in one write. */
  const answer = async (frames: (id: bigint) => ClientFrameInit[]) => {
    const id = await nextOrder();
    evil.stream.write(Buffer.concat(frames(id).map((f) => frame(f))));
  };
  return { s, evil, warnings, nextOrder, answer };
}

async function teardown(s: TestServer, evil: Raw) {
  evil.session.destroy();
  await s.close();
}

describe("a result that fails after its head went out", { timeout: 60_000 }, () => {
  test("after bytes left: the answer is cut, and the cut is logged once a minute per client", async () => {
    const { s, evil, warnings, nextOrder } = await setup();
    try {
      for (let i = 0; i < 2; i++) {
        const req = openGet(s.port, "http://evil/metrics");
        const id = await nextOrder();
        evil.stream.write(Buffer.concat([frame(head(id, 100)), frame(chunk(id, 17))]));
        await req.received(17);
        evil.stream.write(frame(end(id)));
        const r = await req.done;
        assert.equal(r.status, 200);
        assert.equal(r.complete, false, "the answer must not look complete");
        assert.equal(r.body.length, 17);
      }
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(warnings[0]!, /^answer to Prometheus cut after its head had gone: client "evil" sent 17 body bytes, but its content-length said 100$/);
    } finally {
      await teardown(s, evil);
    }
  });
});
