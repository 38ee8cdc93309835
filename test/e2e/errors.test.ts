/**
 * Every row of DESIGN.md's error table, end to end, with its status and body;
 * every server limit at and over the limit. Misbehaving or slow clients are
 * played by the raw protocol client.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { proxyGet, startClient, startServer, testRegistry, waitFor, type ProxyResponse, type TestServer } from "../helpers.ts";
import type { ServerOptions } from "../../src/server/index.ts";
import { connectRaw, openGet, rawHttp, ScrapeErrorReason, timed, type RawClient, type SeenResponse } from "./raw-client.ts";

/** Asserts an error answer: status, one line starting with `prefix`, plain text, no relayed encoding. */
function assertError(r: ProxyResponse | SeenResponse, status: number, prefix: string) {
  const body = r.body.toString();
  assert.equal(r.status, status, `status of ${JSON.stringify(body)}`);
  assert.ok(body.startsWith(prefix), `body ${JSON.stringify(body)} should start with ${JSON.stringify(prefix)}`);
  assert.ok(body.endsWith("\n") && body.indexOf("\n") === body.length - 1, `one line: ${JSON.stringify(body)}`);
  assert.match(String(r.headers["content-type"]), /^text\/plain/);
  assert.equal(r.headers["content-encoding"], undefined, "an error body is never declared compressed");
}

/** A server plus a raw client named `name`; both closed by `stop`. */
async function rawSetup(name: string, options: ServerOptions = {}): Promise<{ s: TestServer; raw: RawClient; stop(): Promise<void> }> {
  const s = await startServer(options);
  const raw = await connectRaw(s.url, { name });
  return {
    s,
    raw,
    async stop() {
      raw.abort();
      await raw.ended;
      await s.close();
    },
  };
}

const textHeaders = { "content-type": "text/plain; version=0.0.4; charset=utf-8" };

describe("requests the front cannot route", { timeout: 60_000 }, () => {
  test("an unknown client gets 404 at once, whatever the timeout", async () => {
    const s = await startServer();
    const c = await startClient(s.url, "app-1");
    try {
      for (const uri of ["http://nobody:80/metrics", "http://nobody/metrics", "http://app-2:9090/metrics?x=1", "http://nobody./metrics"]) {
        const { value: r, ms } = await timed(proxyGet(s.port, uri, { "x-prometheus-scrape-timeout-seconds": "30" }));
        const name = new URL(uri).hostname.replace(/\.$/, "");
        assertError(r, 404, `promproxy: no client "${name}"`);
        assert.ok(ms < 3000, `answered in ${ms} ms, not after a timeout`);
      }
      // The same without any timeout header (curl), and by HEAD.
      assertError(await proxyGet(s.port, "http://nobody/metrics"), 404, 'promproxy: no client "nobody"');
      const head = await proxyGet(s.port, "http://nobody/metrics", {}, "HEAD");
      assert.equal(head.status, 404);
      // Names are DNS names: case-insensitive, a trailing dot is the same name.
      for (const host of ["APP-1", "App-1", "app-1."]) {
        const r = await proxyGet(s.port, `http://${host}/metrics`);
        assert.equal(r.status, 200, host);
        assert.match(r.body.toString(), /^test_up_total\{name="app-1"\} 1$/m);
      }
    } finally {
      await c.stop();
      await s.close();
    }
  });

  test("a path that is not absolute, an unknown local path, a bad URI or scheme: 400 / 404 with a promproxy body", async () => {
    const s = await startServer();
    const c = await startClient(s.url, "app-1");
    try {
      assertError(await proxyGet(s.port, "/nothing-here"), 404, "promproxy: no route");
      assertError(await proxyGet(s.port, "/app-1/metrics"), 404, "promproxy: no route");
      assertError(await proxyGet(s.port, "ftp://app-1/metrics"), 400, "promproxy: unsupported scheme");
      // Request lines node's client would not send as such.
      for (const target of ["*", "http://[app-1/metrics", "app-1:80"]) {
        const answer = await rawHttp(s.port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
        const [statusLine = ""] = answer.split("\r\n");
        assert.match(statusLine, /^HTTP\/1\.1 400 /, `${target}: ${answer}`);
        assert.match(answer.split("\r\n\r\n")[1] ?? "", /^promproxy: /, target);
      }
      // A client serves only what it announced: an embedded client serves /metrics exactly.
      assertError(await proxyGet(s.port, "http://app-1/other"), 404, 'promproxy: client "app-1" serves nothing');
      assertError(await proxyGet(s.port, "http://app-1/metrics/x"), 404, 'promproxy: client "app-1" serves nothing');
      // CONNECT (an HTTPS proxy tunnel) is refused.
      const connect = await rawHttp(s.port, "CONNECT app-1:443 HTTP/1.1\r\nHost: app-1:443\r\n\r\n");
      assert.match(connect, /^HTTP\/1\.1 405 /);
      assert.match(connect.split("\r\n\r\n")[1] ?? "", /^promproxy: /);
    } finally {
      await c.stop();
      await s.close();
    }
  });

  test("_scheme: http and https pass, anything else is 400", async () => {
    const s = await startServer();
    const c = await startClient(s.url, "app-1");
    try {
      for (const q of ["_scheme=http", "_scheme=https", "_scheme=https&x=1"]) {
        const r = await proxyGet(s.port, `http://app-1/metrics?${q}`);
        assert.equal(r.status, 200, q);
      }
      for (const q of ["_scheme=ftp", "_scheme=", "_scheme=HTTP", "_scheme=http&_scheme=https"]) {
        assertError(await proxyGet(s.port, `http://app-1/metrics?${q}`), 400, "promproxy: bad _scheme");
      }
    } finally {
      await c.stop();
      await s.close();
    }
  });

  test("methods other than GET and HEAD get 405 with Allow; HEAD gets headers only", async () => {
    const s = await startServer();
    const c = await startClient(s.url, "app-1");
    try {
      for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
        const r = await proxyGet(s.port, "http://app-1/metrics", {}, method);
        assertError(r, 405, `promproxy: method ${method} not allowed`);
        assert.equal(r.headers["allow"], "GET, HEAD");
      }
      const local = await proxyGet(s.port, "/clients", {}, "POST");
      assertError(local, 405, "promproxy: method POST not allowed");
      const head = await proxyGet(s.port, "http://app-1/metrics", {}, "HEAD");
      assert.equal(head.status, 200);
      assert.equal(head.body.length, 0);
      assert.match(String(head.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
    } finally {
      await c.stop();
      await s.close();
    }
  });

  test("a bad X-Prometheus-Scrape-Timeout-Seconds is 400 even for a connected client; a huge one is clamped", async () => {
    const s = await startServer();
    const c = await startClient(s.url, "app-1");
    try {
      for (const v of ["abc", "-1", "0", "NaN", "0.0", "-0", "Infinity", "1s", "", "1,2", "0x10"]) {
        const r = await proxyGet(s.port, "http://app-1/metrics", { "x-prometheus-scrape-timeout-seconds": v });
        assertError(r, 400, "promproxy: bad X-Prometheus-Scrape-Timeout-Seconds");
      }
      for (const v of ["1e300", "1e400", "86400", "0.5", "10", " 10 ", "9.5", ".5"]) {
        const r = await proxyGet(s.port, "http://app-1/metrics", { "x-prometheus-scrape-timeout-seconds": v });
        assert.equal(r.status, 200, `${JSON.stringify(v)}: ${r.body.toString()}`);
        assert.match(r.body.toString(), /^test_up_total\{name="app-1"\} 1$/m);
      }
    } finally {
      await c.stop();
      await s.close();
    }
  });
});

describe("deadlines", { timeout: 60_000 }, () => {
  test("a client that never answers: 504 after the header's timeout, and the client gets a cancel", async () => {
    const { s, raw, stop } = await rawSetup("slow");
    try {
      const req = openGet(s.port, "http://slow/metrics", { "x-prometheus-scrape-timeout-seconds": "1" });
      const order = await raw.next("order");
      // The client is asked to finish a little before the server gives up.
      const orderMs = Number(order.timeout?.seconds ?? 0n) * 1000 + (order.timeout?.nanos ?? 0) / 1e6;
      assert.ok(orderMs > 0 && orderMs < 1000, `order timeout ${orderMs} ms`);
      assert.equal(order.path, "/metrics");
      // The header the client passes on to its exporter says the time it really has, not Prometheus' own.
      assert.deepEqual(
        order.headers.filter((h) => h.name === "x-prometheus-scrape-timeout-seconds").map((h) => h.value),
        [String(orderMs / 1000)],
      );
      const { value: r, ms } = await timed(req.done);
      assertError(r, 504, 'promproxy: scrape of "slow" timed out after 1s');
      assert.ok(ms > 500 && ms < 10_000, `timed out after ${ms} ms`);
      const cancel = await raw.next("cancel", (c) => c.scrapeId === order.scrapeId);
      assert.match(cancel.reason, /deadline/);
      // Late frames for the cancelled scrape are harmless; the stream lives on.
      raw.head(order.scrapeId, 200, textHeaders);
      raw.chunk(order.scrapeId, "late 1\n");
      raw.end(order.scrapeId);
      const next = openGet(s.port, "http://slow/metrics", { "x-prometheus-scrape-timeout-seconds": "5" });
      const o2 = await raw.next("order");
      raw.head(o2.scrapeId, 200, textHeaders);
      raw.chunk(o2.scrapeId, "ok 1\n");
      raw.end(o2.scrapeId);
      const r2 = await next.done;
      assert.equal(r2.status, 200);
      assert.equal(r2.body.toString(), "ok 1\n");
    } finally {
      await stop();
    }
  });

  test("without a header the default timeout applies", async () => {
    const { s, raw, stop } = await rawSetup("slow", { defaultScrapeTimeoutMs: 300 });
    try {
      const req = openGet(s.port, "http://slow/metrics");
      const order = await raw.next("order");
      const orderMs = Number(order.timeout?.seconds ?? 0n) * 1000 + (order.timeout?.nanos ?? 0) / 1e6;
      assert.ok(orderMs > 0 && orderMs <= 300, `order timeout ${orderMs} ms`);
      const { value: r, ms } = await timed(req.done);
      assertError(r, 504, 'promproxy: scrape of "slow" timed out after 0.3s');
      assert.ok(ms < 5000, `${ms} ms`);
      await raw.next("cancel", (c) => c.scrapeId === order.scrapeId);
    } finally {
      await stop();
    }
  });

  test("a timeout above maxScrapeTimeoutMs is clamped to it; at the maximum it is kept", async () => {
    const { s, raw, stop } = await rawSetup("slow", { defaultScrapeTimeoutMs: 200, maxScrapeTimeoutMs: 400 });
    try {
      for (const [header, expected] of [["0.4", "0.4s"], ["0.3", "0.3s"], ["10", "0.4s"], ["1e300", "0.4s"]] as const) {
        const req = openGet(s.port, "http://slow/metrics", { "x-prometheus-scrape-timeout-seconds": header });
        const order = await raw.next("order");
        const orderMs = Number(order.timeout?.seconds ?? 0n) * 1000 + (order.timeout?.nanos ?? 0) / 1e6;
        assert.ok(orderMs > 0 && orderMs <= 400, `${header}: order timeout ${orderMs} ms`);
        const { value: r, ms } = await timed(req.done);
        assertError(r, 504, `promproxy: scrape of "slow" timed out after ${expected}`);
        assert.ok(ms < 5000, `${header}: ${ms} ms`);
        await raw.next("cancel", (c) => c.scrapeId === order.scrapeId);
      }
    } finally {
      await stop();
    }
  });

  test("a head without body, then the deadline: 504, without the head's headers", async () => {
    const { s, raw, stop } = await rawSetup("slow");
    try {
      const req = openGet(s.port, "http://slow/metrics", { "x-prometheus-scrape-timeout-seconds": "0.5" });
      const order = await raw.next("order");
      raw.head(order.scrapeId, 200, { "content-type": "text/plain; version=0.0.4", "content-encoding": "gzip", "content-length": "1000" });
      const r = await req.done;
      assertError(r, 504, 'promproxy: scrape of "slow" timed out after 0.5s');
      assert.equal(Number(r.headers["content-length"]), r.body.length);
    } finally {
      await stop();
    }
  });

  test("Prometheus hanging up mid-scrape cancels the scrape on the client", async () => {
    const { s, raw, stop } = await rawSetup("slow");
    try {
      // Before any answer.
      const a = openGet(s.port, "http://slow/metrics", { "x-prometheus-scrape-timeout-seconds": "30" });
      const o1 = await raw.next("order");
      a.destroy();
      const c1 = await raw.next("cancel", (c) => c.scrapeId === o1.scrapeId);
      assert.match(c1.reason, /prometheus/i);
      // In the middle of the body.
      const b = openGet(s.port, "http://slow/metrics", { "x-prometheus-scrape-timeout-seconds": "30" });
      const o2 = await raw.next("order");
      raw.head(o2.scrapeId, 200, textHeaders);
      raw.chunk(o2.scrapeId, "a 1\n");
      await b.received(4);
      b.destroy();
      const c2 = await raw.next("cancel", (c) => c.scrapeId === o2.scrapeId);
      assert.match(c2.reason, /prometheus/i);
      // The client's late chunks within its credit are accepted; the stream lives on.
      raw.chunk(o2.scrapeId, "b 2\n");
      raw.end(o2.scrapeId);
      const after = openGet(s.port, "http://slow/metrics");
      const o3 = await raw.next("order");
      raw.head(o3.scrapeId, 200, textHeaders);
      raw.chunk(o3.scrapeId, "c 3\n");
      raw.end(o3.scrapeId);
      const r3 = await after.done;
      assert.equal(r3.status, 200);
      assert.equal(r3.body.toString(), "c 3\n");
      assert.equal(s.server.clients()[0]?.scrapesInFlight, 0);
    } finally {
      await stop();
    }
  });

  test("an embedded client honours cancels and deadlines; its one scrape slot is free again once the abandoned collection ends", async () => {
    const s = await startServer();
    // A registry whose collection hangs, on the calls a test chooses, until released.
    const registry = testRegistry("hang");
    let hangNext = true;
    const releases: (() => void)[] = [];
    const slow = {
      contentType: registry.contentType,
      async metrics() {
        if (hangNext) await new Promise<void>((r) => releases.push(r));
        return registry.metrics();
      },
    };
    const releaseAll = () => releases.splice(0).forEach((r) => r());
    // One scrape at a time: the place is the host's work, held until the collection ends, whatever the scrape became.
    const c = await startClient(s.url, "hang", { registry: slow, maxScrapesInFlight: 1 });
    try {
      // Prometheus hangs up while the collection hangs: the server cancels, the client drops the scrape.
      const gone = openGet(s.port, "http://hang/metrics", { "x-prometheus-scrape-timeout-seconds": "30" });
      await waitFor("the collection to start", () => releases.length === 1);
      gone.destroy();
      await waitFor("the server to forget the scrape", () => s.server.clients()[0]?.scrapesInFlight === 0);
      hangNext = false;
      // The abandoned collection still runs: the client is busy, not rendering twice.
      const busy = await proxyGet(s.port, "http://hang/metrics");
      assertError(busy, 503, 'promproxy: client "hang" has 1 scrapes in flight, its maximum'); // named once
      releaseAll();
      const ok = await waitFor("a scrape served once the first collection ended", async () => {
        const r = await proxyGet(s.port, "http://hang/metrics");
        return r.status === 200 ? r : undefined;
      }, 5_000);
      assert.match(ok!.body.toString(), /^test_up_total\{name="hang"\} 1$/m);

      // The deadline passes while the collection hangs: the deadline row, whoever notices first.
      hangNext = true;
      const late = await proxyGet(s.port, "http://hang/metrics", { "x-prometheus-scrape-timeout-seconds": "0.5" });
      assertError(late, 504, 'promproxy: scrape of "hang" timed out after 0.5s');
      hangNext = false;
      assert.equal((await proxyGet(s.port, "http://hang/metrics")).status, 503, "busy while the late collection runs");
      // Results of abandoned collections never turn up anywhere.
      releaseAll();
      const again = await waitFor("a scrape served once the late collection ended", async () => {
        const r = await proxyGet(s.port, "http://hang/metrics");
        return r.status === 200 ? r : undefined;
      }, 5_000);
      assert.equal(again!.body.toString(), await registry.metrics());
    } finally {
      releaseAll();
      await c.stop();
      await s.close();
    }
  });
});

describe("clients that go away", { timeout: 60_000 }, () => {
  test("disconnected before the head: 502 naming the client", async () => {
    const { s, raw, stop } = await rawSetup("flaky");
    try {
      const req = openGet(s.port, "http://flaky/metrics", { "x-prometheus-scrape-timeout-seconds": "30" });
      await raw.next("order");
      const { value: r, ms } = await timed((async () => {
        raw.abort();
        return req.done;
      })());
      assertError(r, 502, 'promproxy: client "flaky" disconnected');
      // Why, in words (the same as the vanished answer's), not Node's error text.
      const why = r.body.toString().slice('promproxy: client "flaky" disconnected: '.length).trim();
      assert.ok(why.length > 0 && !/ERR_|NGHTTP2|Premature/.test(why), `said why, in words: ${r.body.toString()}`);
      assert.ok(ms < 5000, `${ms} ms`);
      // It vanished: 503 at once (so that up == 0 fires), and the name is free to take again.
      assertError(await proxyGet(s.port, "http://flaky/metrics"), 503, 'promproxy: client "flaky" disconnected 0s ago');
      const back = await connectRaw(s.url, { name: "flaky" });
      back.abort();
      await back.ended;
    } finally {
      await stop();
    }
  });

  test("disconnected after a head but before any body: still 502, without the head's headers", async () => {
    const { s, raw, stop } = await rawSetup("flaky");
    try {
      const req = openGet(s.port, "http://flaky/metrics", { "x-prometheus-scrape-timeout-seconds": "30" });
      const order = await raw.next("order");
      raw.head(order.scrapeId, 200, { "content-type": "text/plain; version=0.0.4", "content-encoding": "gzip" });
      // Give the head time to arrive before the stream dies (either way the answer is the same).
      await new Promise((r) => setTimeout(r, 100));
      raw.abort();
      assertError(await req.done, 502, 'promproxy: client "flaky" disconnected');
    } finally {
      await stop();
    }
  });

  test("disconnected mid-body: the HTTP response is cut before its end", async () => {
    const { s, raw, stop } = await rawSetup("flaky");
    try {
      const req = openGet(s.port, "http://flaky/metrics", { "x-prometheus-scrape-timeout-seconds": "30" });
      const order = await raw.next("order");
      raw.head(order.scrapeId, 200, textHeaders);
      raw.chunk(order.scrapeId, "partial_metric 1\n");
      await req.received(17);
      raw.abort();
      const r = await req.done;
      assert.equal(r.status, 200);
      assert.equal(r.complete, false, "the response must not look complete");
      assert.equal(r.body.toString(), "partial_metric 1\n");
    } finally {
      await stop();
    }
  });

  test("disconnected mid-body with a Content-Length: cut short as well", async () => {
    const { s, raw, stop } = await rawSetup("flaky");
    try {
      const req = openGet(s.port, "http://flaky/metrics");
      const order = await raw.next("order");
      raw.head(order.scrapeId, 200, { ...textHeaders, "content-length": "100" });
      raw.chunk(order.scrapeId, "partial_metric 1\n");
      await req.received(17);
      raw.close().catch(() => {}); // a clean end of the stream is a disconnect too
      const r = await req.done;
      assert.equal(r.complete, false);
      assert.equal(r.body.length, 17);
    } finally {
      await stop();
    }
  });
});

describe("limits", { timeout: 60_000 }, () => {
  test("maxScrapesInFlight with maxScrapesWaiting 0: at the limit all are served, over it 503 at once", async () => {
    const { s, raw, stop } = await rawSetup("busy", { maxScrapesInFlight: 2, maxScrapesWaiting: 0 });
    try {
      assert.equal(raw.welcome.limits?.maxInFlight, 2);
      const a = openGet(s.port, "http://busy/metrics", { "x-prometheus-scrape-timeout-seconds": "30" });
      const b = openGet(s.port, "http://busy/metrics", { "x-prometheus-scrape-timeout-seconds": "30" });
      const oa = await raw.next("order");
      const ob = await raw.next("order");
      const { value: third, ms } = await timed(proxyGet(s.port, "http://busy/metrics", { "x-prometheus-scrape-timeout-seconds": "30" }));
      assertError(third, 503, 'promproxy: client "busy" has 2 scrapes in flight');
      assert.ok(ms < 3000, `${ms} ms`);
      // Both in flight are answered, each with its own body.
      for (const [o, text] of [[ob, "b 2\n"], [oa, "a 1\n"]] as const) {
        raw.head(o.scrapeId, 200, textHeaders);
        raw.chunk(o.scrapeId, text);
        raw.end(o.scrapeId);
      }
      assert.equal((await a.done).body.toString(), "a 1\n");
      assert.equal((await b.done).body.toString(), "b 2\n");
      // Finished scrapes free their slots.
      await waitFor("free slots", () => s.server.clients()[0]?.scrapesInFlight === 0);
      const c = openGet(s.port, "http://busy/metrics");
      const oc = await raw.next("order");
      raw.head(oc.scrapeId, 200, textHeaders);
      raw.chunk(oc.scrapeId, "c 3\n");
      raw.end(oc.scrapeId);
      assert.equal((await c.done).status, 200);
      // Only the two first orders and the last one ever reached the client.
      assert.equal(raw.received.filter((f) => f.frame.case === "order").length, 3);
    } finally {
      await stop();
    }
  });

  test("maxScrapesWaiting: over the in-flight limit a scrape waits and gets the next place, first come first served; over both 503 at once", async () => {
    const { s, raw, stop } = await rawSetup("busy", { maxScrapesInFlight: 1, maxScrapesWaiting: 2 });
    try {
      const h = { "x-prometheus-scrape-timeout-seconds": "30" };
      const a = openGet(s.port, "http://busy/metrics", h);
      const oa = await raw.next("order");
      const b = openGet(s.port, "http://busy/metrics", h);
      await waitFor("b waiting", async () => (await (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text()).includes("promproxy_scrapes_waiting 1"));
      const c = openGet(s.port, "http://busy/metrics", h);
      await waitFor("c waiting", async () => (await (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text()).includes("promproxy_scrapes_waiting 2"));
      const { value: d, ms } = await timed(proxyGet(s.port, "http://busy/metrics", h));
      assertError(d, 503, 'promproxy: client "busy" has 1 scrapes in flight, the maximum, and 2 more wait for a place');
      assert.ok(ms < 3000, `${ms} ms`);
      for (const [o, text] of [[oa, "a\n"], [null, "b\n"], [null, "c\n"]] as const) {
        const order = o ?? (await raw.next("order"));
        raw.head(order.scrapeId, 200, textHeaders);
        raw.chunk(order.scrapeId, text);
        raw.end(order.scrapeId);
      }
      assert.deepEqual(await Promise.all([a, b, c].map(async (x) => (await x.done).body.toString())), ["a\n", "b\n", "c\n"]);
      assert.equal(raw.received.filter((f) => f.frame.case === "order").length, 3, "one order per scrape served, none for the refused one");
    } finally {
      await stop();
    }
  });

  test("maxResponseBytes: a body of exactly the maximum passes, one byte more is 502", async () => {
    const max = 1000;
    const { s, raw, stop } = await rawSetup("big", { maxResponseBytes: max });
    try {
      assert.equal(raw.welcome.limits?.maxResponseBytes, BigInt(max));
      const body = Buffer.alloc(max, "x");
      const at = openGet(s.port, "http://big/metrics");
      const o1 = await raw.next("order");
      raw.head(o1.scrapeId, 200, textHeaders);
      raw.chunk(o1.scrapeId, body.subarray(0, 600));
      raw.chunk(o1.scrapeId, body.subarray(600));
      raw.end(o1.scrapeId);
      const r1 = await at.done;
      assert.equal(r1.status, 200);
      assert.ok(r1.body.equals(body));

      // Over, before anything was relayed: a clean 502 (and never the head's encoding).
      const over = openGet(s.port, "http://big/metrics");
      const o2 = await raw.next("order");
      raw.head(o2.scrapeId, 200, { ...textHeaders, "content-encoding": "gzip" });
      raw.chunk(o2.scrapeId, Buffer.alloc(max + 1, "y"));
      assertError(await over.done, 502, 'promproxy: scrape of "big" exceeds the maximum response size');
      const c2 = await raw.next("cancel", (c) => c.scrapeId === o2.scrapeId);
      assert.match(c2.reason, /too large/);

      // Over, after part of the body was relayed: the response is cut.
      const late = openGet(s.port, "http://big/metrics");
      const o3 = await raw.next("order");
      raw.head(o3.scrapeId, 200, textHeaders);
      raw.chunk(o3.scrapeId, Buffer.alloc(600, "z"));
      await late.received(600);
      raw.chunk(o3.scrapeId, Buffer.alloc(401, "z"));
      const r3 = await late.done;
      assert.equal(r3.complete, false);
      assert.equal(r3.body.length, 600);
      await raw.next("cancel", (c) => c.scrapeId === o3.scrapeId);
      raw.end(o3.scrapeId);
    } finally {
      await stop();
    }
  });

  test("maxResponseBytes against an embedded client's registry", async () => {
    const s = await startServer({ maxResponseBytes: 40 });
    const c = await startClient(s.url, "reg"); // its exposition is about 90 bytes
    try {
      assertError(await proxyGet(s.port, "http://reg/metrics"), 502, 'promproxy: scrape of "reg" exceeds the maximum response size');
    } finally {
      await c.stop();
      await s.close();
    }
  });

  test("maxChunkBytes: a chunk of the maximum passes, a larger one ends the stream with ResourceExhausted", async () => {
    const max = 16 * 1024;
    const { s, raw, stop } = await rawSetup("chunky", { maxChunkBytes: max, creditBytes: 4 * max });
    try {
      assert.equal(raw.welcome.limits?.maxChunkBytes, max);
      const at = openGet(s.port, "http://chunky/metrics");
      const o1 = await raw.next("order");
      assert.equal(raw.granted(o1.scrapeId), 4 * max);
      raw.head(o1.scrapeId, 200, textHeaders);
      raw.chunk(o1.scrapeId, Buffer.alloc(max, "a"));
      raw.end(o1.scrapeId);
      const r1 = await at.done;
      assert.equal(r1.status, 200);
      assert.equal(r1.body.length, max);

      const over = openGet(s.port, "http://chunky/metrics");
      const o2 = await raw.next("order");
      raw.head(o2.scrapeId, 200, textHeaders);
      raw.chunk(o2.scrapeId, Buffer.alloc(max + 1, "b"));
      const err = await raw.ended;
      assert.ok(err instanceof ConnectError);
      assert.equal(err.code, Code.ResourceExhausted, err.message);
      assert.match(err.message, /exceeds the maximum/);
      assertError(await over.done, 502, 'promproxy: client "chunky" disconnected');
    } finally {
      await stop();
    }
  });

  test("creditBytes: a client may send exactly its credit before a grant, and no byte more", async () => {
    const credit = 64 * 1024;
    const { s, raw, stop } = await rawSetup("greedy", { maxChunkBytes: credit, creditBytes: credit });
    try {
      // A body several credits long flows as the server grants more.
      const body = Buffer.alloc(5 * credit + 123, "c");
      const get = openGet(s.port, "http://greedy/metrics");
      const o1 = await raw.next("order");
      assert.equal(raw.granted(o1.scrapeId), credit);
      raw.head(o1.scrapeId, 200, textHeaders);
      await raw.body(o1.scrapeId, body, 16 * 1024);
      raw.end(o1.scrapeId);
      const r1 = await get.done;
      assert.equal(r1.status, 200);
      assert.ok(r1.body.equals(body));
      assert.ok(raw.granted(o1.scrapeId) >= body.length);

      // HEAD requests make the server's grants predictable: it grants once it has
      // passed on a chunk's worth (here the whole credit), never earlier.
      const at = openGet(s.port, "http://greedy/metrics", {}, "HEAD");
      const o2 = await raw.next("order");
      raw.head(o2.scrapeId, 200, textHeaders);
      raw.chunk(o2.scrapeId, Buffer.alloc(credit - 1, "d"));
      raw.chunk(o2.scrapeId, Buffer.alloc(1, "d")); // exactly the credit: within the rules
      await raw.next("credit", (c) => c.scrapeId === o2.scrapeId);
      raw.end(o2.scrapeId);
      const r2 = await at.done;
      assert.equal(r2.status, 200);
      assert.equal(r2.body.length, 0);

      // One byte beyond the credit: the stream ends with ResourceExhausted.
      const over = openGet(s.port, "http://greedy/metrics", {}, "HEAD");
      const o3 = await raw.next("order");
      raw.head(o3.scrapeId, 200, textHeaders);
      raw.chunk(o3.scrapeId, Buffer.alloc(credit - 1, "e"));
      raw.chunk(o3.scrapeId, Buffer.alloc(2, "e"));
      const err = await raw.ended;
      assert.ok(err instanceof ConnectError);
      assert.equal(err.code, Code.ResourceExhausted, err.message);
      assert.match(err.message, /credit/);
      assert.equal((await over.done).status, 502);
    } finally {
      await stop();
    }
  });

  test("maxClients: at the limit clients connect, over it ResourceExhausted", async () => {
    const s = await startServer({ maxClients: 2 });
    const raws: RawClient[] = [];
    try {
      raws.push(await connectRaw(s.url, { name: "one" }));
      raws.push(await connectRaw(s.url, { name: "two" }));
      await assert.rejects(connectRaw(s.url, { name: "three" }), (e: unknown) => {
        assert.ok(e instanceof ConnectError);
        assert.equal(e.code, Code.ResourceExhausted);
        return true;
      });
      assertError(await proxyGet(s.port, "http://three/metrics"), 404, 'promproxy: no client "three"');
    } finally {
      for (const r of raws) r.abort();
      await Promise.all(raws.map((r) => r.ended));
      await s.close();
    }
  });
});

describe("failures the client reports", { timeout: 60_000 }, () => {
  const cases = [
    [ScrapeErrorReason.UNREACHABLE, 502, "connection refused"],
    [ScrapeErrorReason.TIMEOUT, 504, "the target did not answer in 9s"],
    [ScrapeErrorReason.NOT_FOUND, 404, "no such path"],
    [ScrapeErrorReason.BUSY, 503, "too busy"],
    [ScrapeErrorReason.TOO_LARGE, 502, "too large"],
    [ScrapeErrorReason.INTERNAL, 502, "collect failed"],
    [ScrapeErrorReason.UNSPECIFIED, 502, "something"],
  ] as const;

  test("an error end before the head maps to its status with a body naming the client and the cause", async () => {
    const { s, raw, stop } = await rawSetup("fwd");
    try {
      for (const [reason, status, message] of cases) {
        const req = openGet(s.port, "http://fwd/metrics", { "x-prometheus-scrape-timeout-seconds": "10" });
        const o = await raw.next("order");
        raw.end(o.scrapeId, { reason, message: `${message}\nsecond line` });
        const r = await req.done;
        // A timeout the client reports long before the deadline is its target's own: said in the client's words,
        // not as "timed out after 10s".
        assertError(r, status, `promproxy: client "fwd": ${message} second line`);
      }
      // An error end with an empty message still says something.
      const req = openGet(s.port, "http://fwd/metrics");
      const o = await raw.next("order");
      raw.end(o.scrapeId, { reason: ScrapeErrorReason.UNREACHABLE, message: "" });
      assertError(await req.done, 502, 'promproxy: client "fwd": ');
    } finally {
      await stop();
    }
  });

  test("an error end after the body started cuts the response", async () => {
    const { s, raw, stop } = await rawSetup("fwd");
    try {
      const req = openGet(s.port, "http://fwd/metrics");
      const o = await raw.next("order");
      raw.head(o.scrapeId, 200, textHeaders);
      raw.chunk(o.scrapeId, "x 1\n");
      await req.received(4);
      raw.end(o.scrapeId, { reason: ScrapeErrorReason.TIMEOUT, message: "target went silent" });
      const r = await req.done;
      assert.equal(r.status, 200);
      assert.equal(r.complete, false);
    } finally {
      await stop();
    }
  });

  test("a target's own non-2xx status is relayed", async () => {
    const { s, raw, stop } = await rawSetup("fwd");
    try {
      const req = openGet(s.port, "http://fwd/metrics");
      const o = await raw.next("order");
      raw.head(o.scrapeId, 503, { "content-type": "text/plain" });
      raw.chunk(o.scrapeId, "exporter warming up\n");
      raw.end(o.scrapeId);
      const r = await req.done;
      assert.equal(r.status, 503);
      assert.equal(r.body.toString(), "exporter warming up\n");
    } finally {
      await stop();
    }
  });
});

describe("several scrapes of one client at once (an HA pair)", { timeout: 60_000 }, () => {
  test("an embedded client serves concurrent scrapes, all complete and correct", async () => {
    const s = await startServer();
    const c = await startClient(s.url, "ha");
    try {
      const expected = await testRegistry("ha").metrics();
      const rs = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          proxyGet(s.port, "http://ha/metrics", { "x-prometheus-scrape-timeout-seconds": "10", "user-agent": `Prometheus/${i}` }),
        ),
      );
      for (const r of rs) {
        assert.equal(r.status, 200);
        assert.equal(r.body.toString(), expected);
      }
    } finally {
      await c.stop();
      await s.close();
    }
  });

  test("interleaved results reach the right requests", async () => {
    const { s, raw, stop } = await rawSetup("ha");
    try {
      const reqs = [0, 1, 2].map((i) => openGet(s.port, `http://ha/metrics?replica=${i}`));
      const orders = [];
      for (let i = 0; i < 3; i++) orders.push(await raw.next("order"));
      const byReplica = new Map(orders.map((o) => [new URL(`http://x${o.path}`).searchParams.get("replica"), o.scrapeId]));
      assert.equal(byReplica.size, 3);
      const ids = [0, 1, 2].map((i) => byReplica.get(String(i)) as bigint);
      for (const i of [2, 0, 1]) raw.head(ids[i] as bigint, 200, textHeaders);
      for (let part = 0; part < 3; part++) {
        for (const i of [1, 2, 0]) raw.chunk(ids[i] as bigint, `replica_${i}_part_${part} 1\n`);
      }
      for (const i of [0, 2, 1]) raw.end(ids[i] as bigint);
      const rs = await Promise.all(reqs.map((r) => r.done));
      rs.forEach((r, i) => {
        assert.equal(r.status, 200);
        assert.equal(r.body.toString(), [0, 1, 2].map((p) => `replica_${i}_part_${p} 1\n`).join(""));
      });
    } finally {
      await stop();
    }
  });
});

test("a target announced on port 80 is reached by http://NAME:80/ (as Prometheus 2 writes targets), and by no other port", { timeout: 30_000 }, async () => {
  const s = await startServer();
  const raw = await connectRaw(s.url, { name: "fw", targets: [{ port: 80, path: "/metrics" }] });
  try {
    const res = proxyGet(s.port, "http://fw:80/metrics");
    const order = await raw.next("order");
    assert.equal(order.port, 80);
    raw.head(order.scrapeId, 200, textHeaders);
    raw.chunk(order.scrapeId, "fw_up 1\n");
    raw.end(order.scrapeId);
    assert.equal((await res).status, 200);
    assertError(await proxyGet(s.port, "http://fw:8080/metrics"), 404, 'promproxy: client "fw" serves nothing at port 8080');
  } finally {
    raw.abort();
    await raw.ended;
    await s.close();
  }
});
