/**
 * A result that fails after its head and first body bytes came (shorter or longer than its own Content-Length, an
 * error end, a protocol violation): while nothing of the answer has left the server (the relay holds its first turn,
 * src/server/relay.ts), Prometheus gets the clear 502 and its keep-alive connection serves the next request; once
 * bytes left, the cut is logged (warn, once a minute per client). A hostile registered client played by hand-written
 * frames, each result in one write, as the round-18a reviewer's client sent them (outside review 18a, L2).
 */
import assert from "node:assert/strict";
import * as http from "node:http";
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

/** One GET through a keep-alive agent of one socket: the status, the body, and whether the socket was reused. */
function get(agent: http.Agent, port: number): Promise<{ status: number; body: string; reused: boolean; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "http://evil/metrics", agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), reused: req.reusedSocket, complete: res.complete }));
    });
    req.on("error", reject);
  });
}

describe("a result that fails after its head and first body bytes", { timeout: 60_000 }, () => {
  const cases: { what: string; frames: (id: bigint) => ClientFrameInit[]; body: string }[] = [
    {
      what: "shorter than its content-length (1 MB declared, 50 KB sent, then its end)",
      frames: (id) => [head(id, 1_000_000), chunk(id, 50_000), end(id)],
      body: 'promproxy: client "evil" sent 50000 body bytes, but its content-length said 1000000\n',
    },
    {
      what: "shorter than its content-length, in two chunks",
      frames: (id) => [head(id, 100), chunk(id, 10), chunk(id, 10), end(id)],
      body: 'promproxy: client "evil" sent 20 body bytes, but its content-length said 100\n',
    },
    {
      what: "longer than its content-length",
      frames: (id) => [head(id, 15), chunk(id, 10), chunk(id, 10), end(id)],
      body: 'promproxy: client "evil" sent more body bytes than its content-length of 15\n',
    },
    {
      what: "an error end after body bytes",
      frames: (id) => [head(id), chunk(id, 10), end(id, { reason: ScrapeErrorReason.UNREACHABLE, message: "target went away" })],
      body: 'promproxy: client "evil": target went away\n',
    },
  ];
  for (const c of cases) {
    test(`${c.what}: a 502 with the one-line message, and the connection serves the next request`, async () => {
      const { s, evil, warnings, answer } = await setup();
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const failed = get(agent, s.port);
        await answer(c.frames);
        const r = await failed;
        assert.equal(r.status, 502, r.body);
        assert.equal(r.body, c.body);
        const next = get(agent, s.port);
        await answer((id) => [head(id), chunk(id, 5, "b"), end(id)]);
        const ok = await next;
        assert.equal(ok.status, 200);
        assert.equal(ok.body, "bbbbb");
        assert.equal(ok.reused, true, "the keep-alive connection of the failed answer serves the next request");
        assert.deepEqual(warnings, [], "nothing was cut");
      } finally {
        agent.destroy();
        await teardown(s, evil);
      }
    });
  }

  test("a protocol violation after body bytes (a second head): a 502 naming the rule, the connection kept", async () => {
    const { s, evil, answer } = await setup();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const failed = get(agent, s.port);
      await answer((id) => [head(id), chunk(id, 10), head(id)]);
      const r = await failed;
      assert.equal(r.status, 502, r.body);
      assert.match(r.body, /^promproxy: client "evil" disconnected: cut off for breaking the protocol: scrape \d+: second head\n$/);
      const next = await get(agent, s.port); // the client is gone: answered at once, on the same connection
      assert.equal(next.reused, true);
      assert.match(next.body, /^promproxy: /);
    } finally {
      agent.destroy();
      await teardown(s, evil);
    }
  });

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
