/**
 * 204 and 304 answers carry no body (RFC 9110 §6.4.1): Prometheus never gets
 * a Content-Length on them, and a client that sends body bytes with one gets
 * its result refused with a clear 502, before anything was relayed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startServer } from "../helpers.ts";
import { connectRaw, rawHttp } from "./raw-client.ts";

const request = (name: string) => `GET http://${name}/metrics HTTP/1.1\r\nHost: ${name}\r\nConnection: close\r\n\r\n`;

test("a 204 or 304 head: no content-length reaches Prometheus; a body with it is refused with a 502", { timeout: 30_000 }, async () => {
  const s = await startServer();
  try {
    const raw = await connectRaw(s.url, { name: "nobody", features: ["single-result"] });
    for (const status of [204, 304]) {
      const answer = rawHttp(s.port, request("nobody"));
      const order = await raw.next("order");
      raw.head(order.scrapeId, status, { "content-type": "text/plain", "content-length": "4" });
      raw.end(order.scrapeId);
      const a = await answer;
      assert.match(a, new RegExp(`^HTTP/1.1 ${status} `));
      assert.doesNotMatch(a, /content-length/i, a);
    }
    // A small chunk, and one large enough to be passed on piece by piece were it allowed (grpc-fast/chunk-pass.ts).
    for (const [status, body] of [[204, "x 1\n"], [304, "x 1\n"], [204, "x".repeat(100_000)]] as const) {
      const answer = rawHttp(s.port, request("nobody"));
      const order = await raw.next("order");
      raw.head(order.scrapeId, status, { "content-type": "text/plain", "content-length": "4" });
      raw.chunk(order.scrapeId, body);
      raw.end(order.scrapeId);
      const a = await answer;
      assert.match(a, /^HTTP\/1.1 502 /);
      assert.match(a, new RegExp(`promproxy: client "nobody" sent a body with status ${status}, which has none`));
      await raw.next("cancel", (c) => c.scrapeId === order.scrapeId);
    }
    const answer = rawHttp(s.port, request("nobody"));
    const order = await raw.next("order");
    raw.send({ frame: { case: "result", value: { scrapeId: order.scrapeId, status: 204, headers: [], data: Buffer.from("x") } } });
    assert.match(await answer, /^HTTP\/1.1 502 [^]*sent a body with status 204, which has none/);
    raw.abort();
    await raw.ended;
  } finally {
    await s.close();
  }
});
