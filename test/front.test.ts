/**
 * The HTTP front alone (src/server/front.ts): its handler on a real node:http
 * server on port 0, over a real coordinator with one in-memory client session
 * (no Connect stream): path routing, methods, bad proxy requests, unknown
 * clients, a relayed scrape, and what draining changes.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { ClientFrameSchema, HelloSchema } from "../gen/promproxy/v1/scrape_pb.ts";
import { createActivity } from "../src/server/activity.ts";
import { createCoordinator } from "../src/server/coordinator.ts";
import { createFront } from "../src/server/front.ts";
import { createServerMetrics } from "../src/server/metrics.ts";
import { resolveServerOptions } from "../src/server/options.ts";
import type { Session } from "../src/server/session.ts";
import { silentLogger } from "../src/shared/logger.ts";
import { proxyGet, testRegistry } from "./helpers.ts";

const options = resolveServerOptions({ logger: silentLogger, registry: testRegistry("front") });
const metrics = createServerMetrics(options.registry);
const activity = createActivity(silentLogger, 100);
const coordinator = createCoordinator(options, metrics, activity);
const front = createFront({ options, coordinator, metrics, activity });
let server: http.Server;
let port: number;
let session: Session;
let answering: Promise<void>;

/** The client's side of the session: answers every order with a small result. */
async function answer(s: Session) {
  const frame = (f: unknown) => create(ClientFrameSchema, { frame: f } as never);
  try {
    for await (const f of s.outbound) {
      if (f.frame?.case !== "order") continue;
      const scrapeId = f.frame.value.scrapeId as bigint;
      s.receive(frame({ case: "head", value: { scrapeId, status: 200, headers: [{ name: "content-type", value: "text/plain; version=0.0.4" }] } }));
      s.receive(frame({ case: "chunk", value: { scrapeId, data: Buffer.from(`up{path="${f.frame.value.path}"} 1\n`) } }));
      s.receive(frame({ case: "end", value: { scrapeId } }));
    }
  } catch {
    // the stream was told to go
  }
}

before(async () => {
  session = await coordinator.join(create(HelloSchema, { name: "app", version: "test" }), undefined);
  answering = answer(session);
  server = http.createServer((req, res) => front.handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});
after(async () => {
  await coordinator.shutdown({ drainDelayMs: 0, graceMs: 0 });
  await answering;
  server.closeAllConnections();
  server.close();
});

const get = (uri: string, method = "GET", headers: Record<string, string> = {}) => proxyGet(port, uri, headers, method);
const refusedCount = async (outcome: string) =>
  (await metrics.scrapes.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;

describe("front: local paths", () => {
  test("each known path answers 200 with its type, also with a query string", async () => {
    const expect: [string, RegExp][] = [
      ["/healthz", /^text\/plain/],
      ["/healthz?probe=1", /^text\/plain/],
      ["/readyz", /^text\/plain/],
      ["/clients", /^application\/json/],
      ["/metrics", /^text\/plain/],
      ["/", /^text\/html/],
      ["/status.json", /^application\/json/],
    ];
    for (const [path, type] of expect) {
      const r = await get(path);
      assert.equal(r.status, 200, path);
      assert.match(String(r.headers["content-type"]), type, path);
      assert.equal(r.headers["cache-control"], "no-store", path);
    }
    assert.equal((await get("/healthz")).body.toString(), "ok\n");
    assert.equal((await get("/readyz")).body.toString(), "ready\n");
    const groups = JSON.parse((await get("/clients")).body.toString()) as { targets: string[] }[];
    assert.deepEqual(groups.map((g) => g.targets), [["app"]]);
    assert.match((await get("/metrics")).body.toString(), /promproxy_scrapes_total/);
    assert.equal((await get("/status.json")).headers["x-content-type-options"], "nosniff");
  });

  test("HEAD answers the head without a body", async () => {
    const r = await get("/healthz", "HEAD");
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-length"], "3");
    assert.equal(r.body.length, 0);
  });

  test("another method on a local path: 405 with Allow", async () => {
    for (const method of ["POST", "PUT", "DELETE"]) {
      const r = await get("/clients", method);
      assert.equal(r.status, 405);
      assert.equal(r.headers.allow, "GET, HEAD");
      assert.equal(r.body.toString(), `promproxy: method ${method} not allowed on /clients\n`);
    }
  });

  test("an unknown path: 404 naming the paths served and how to scrape", async () => {
    const r = await get("/nope");
    assert.equal(r.status, 404);
    assert.equal(
      r.body.toString(),
      'promproxy: no route "/nope": scrape clients through this server as an HTTP proxy (proxy_url); it serves / (status page), /status.json, /clients, /metrics, /healthz and /readyz\n',
    );
    assert.equal((await get("/clientsx")).status, 404, "a prefix of a known path is no match");
  });
});

describe("front: proxied scrapes", () => {
  test("a connected client's scrape is relayed: 200 with its head and body", async () => {
    const r = await get("http://app/metrics");
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-type"], "text/plain; version=0.0.4");
    assert.equal(r.body.toString(), 'up{path="/metrics"} 1\n');
  });

  test("an unknown client: 404; a path the client does not serve: 404", async () => {
    const unknown = await get("http://nobody:9100/metrics");
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.toString(), 'promproxy: no client "nobody" connected\n');
    const longest = `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(61)}`; // 253 characters: a name a client may have
    assert.equal((await get(`http://${longest}/metrics`)).status, 404);
    const path = await get("http://app/other");
    assert.equal(path.status, 404);
    assert.equal(path.body.toString(), 'promproxy: client "app" serves nothing at port (none) path "/other"\n');
  });

  test("bad proxy requests: 400 or 405, each with a specific answer, counted as bad_request", async () => {
    const before = await refusedCount("bad_request");
    const cases: [uri: string, method: string, headers: Record<string, string>, status: number, body: RegExp][] = [
      ["ftp://app/metrics", "GET", {}, 400, /^promproxy: unsupported scheme "ftp:": proxy requests must be http:\/\/ URIs\n$/],
      ["http://[bad/metrics", "GET", {}, 400, /^promproxy: not a valid absolute URI: "http:\/\/\[bad\/metrics"\n$/],
      ["http://app/a/../metrics", "GET", {}, 400, /^promproxy: /],
      ["http://app/metrics?_scheme=gopher", "GET", {}, 400, /^promproxy: bad _scheme "gopher": use http or https\n$/],
      ["http://app/metrics", "GET", { "x-prometheus-scrape-timeout-seconds": "soon" }, 400, /^promproxy: bad X-Prometheus-Scrape-Timeout-Seconds "soon": want a positive number of seconds\n$/],
      ["http://app/metrics", "POST", {}, 405, /^promproxy: method POST not allowed: only GET and HEAD are proxied\n$/],
      // Names no client can ever have (src/shared/names.ts): 400 naming the rule, not 404 "no client".
      [`http://${"a".repeat(300)}/metrics`, "GET", {}, 400, /^promproxy: no client can have this name: name is 300 characters long, the maximum is 253\n$/],
      [`http://${"a".repeat(64)}.example/metrics`, "GET", {}, 400, /^promproxy: no client can have this name: name "a{64}" is not a DNS host name \(letters, digits and hyphens, dot-separated labels of 1-63 characters\)\n$/],
      ["http://-app/metrics", "GET", {}, 400, /^promproxy: no client can have this name: name "-app" is not a DNS host name /],
      ["http://app_1/metrics", "GET", {}, 400, /^promproxy: no client can have this name: name "app_1" is not a DNS host name /],
    ];
    for (const [uri, method, headers, status, body] of cases) {
      const r = await get(uri, method, headers);
      assert.equal(r.status, status, `${method} ${uri}`);
      assert.match(r.body.toString(), body, `${method} ${uri}`);
      if (status === 405) assert.equal(r.headers.allow, "GET, HEAD");
    }
    assert.equal(await refusedCount("bad_request"), before + cases.length);
  });
});

describe("front: draining", () => {
  test("readyz says 503, answers carry Connection: close, scrapes are still served, then refused with 503", async () => {
    const drained = coordinator.shutdown({ drainDelayMs: 1_500, graceMs: 0 });
    const ready = await get("/readyz");
    assert.equal(ready.status, 503);
    assert.equal(ready.body.toString(), "promproxy: not ready: the server is shutting down\n");
    assert.equal(ready.headers.connection, "close");
    assert.equal((await get("/healthz")).status, 200, "still alive");
    // Within the drain delay (1.5 s): checked first, so that a machine too loaded to get here in time does not fail the test.
    if (coordinator.phase === "draining") assert.equal((await get("http://app/metrics")).status, 200);
    await drained;
    const refused = await get("http://app/metrics");
    assert.equal(refused.status, 503);
    assert.equal(refused.body.toString(), "promproxy: server is shutting down\n");
    assert.equal((await get("/readyz")).body.toString(), "promproxy: not ready: the server is closed\n");
  });
});
