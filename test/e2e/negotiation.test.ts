/**
 * Content negotiation through the server with a real embedded client: the
 * exposition format per `Accept` (text 0.0.4 or OpenMetrics, with the headers
 * real Prometheus versions send) and gzip per `Accept-Encoding`.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { Counter, Gauge, Histogram, Registry, type RegistryContentType } from "prom-client";
import type { PromproxyClient } from "../../src/client/index.ts";
import { curl, proxyGet, startClient, startServer, type TestServer } from "../helpers.ts";

const TEXT = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/** The same metrics, with the same values, in a fresh registry of the given format. */
function makeRegistry(openMetrics = false): Registry {
  const registry = new Registry();
  if (openMetrics) (registry as Registry<RegistryContentType>).setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  const requests = new Counter({
    name: "app_requests_total",
    help: "Requests served.",
    labelNames: ["route", "code"],
    registers: [registry],
  });
  const jobs = new Counter({ name: "app_jobs", help: "Jobs done (no _total in the given name).", registers: [registry] });
  const temp = new Gauge({ name: "app_temperature_celsius", help: "A gauge.", labelNames: ["room"], registers: [registry] });
  const latency = new Histogram({
    name: "app_latency_seconds",
    help: "A histogram.",
    labelNames: ["route"],
    buckets: [0.01, 0.1, 1, 10],
    registers: [registry],
  });
  for (let i = 0; i < 40; i++) {
    requests.inc({ route: `/api/v1/items/${i}`, code: i % 7 === 0 ? "500" : "200" }, i + 1);
    temp.set({ room: `room-${i}` }, 20 + i / 10);
    latency.observe({ route: `/api/v1/items/${i % 5}` }, (i % 11) / 3);
  }
  jobs.inc(3);
  return registry;
}

const expectedText = await makeRegistry().metrics();
const expectedOpenMetrics = await makeRegistry(true).metrics();

/** Accept headers as Prometheus versions send them, and the format each must get. */
const prometheusAccepts: [string, string, "text" | "openmetrics"][] = [
  // Captured from Debian's Prometheus 2.42 (the one the e2e tests run).
  [
    "Prometheus 2.x (before scrape_protocols)",
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "openmetrics",
  ],
  ["Prometheus 2.x, OpenMetrics disabled", "text/plain;version=0.0.4;q=1,*/*;q=0.1", "text"],
  [
    "Prometheus 2.49+ default scrape_protocols",
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    "openmetrics",
  ],
  [
    "Prometheus 3.0 default",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    "openmetrics",
  ],
  [
    "Prometheus 3.x, native histograms (protobuf first)",
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
    "openmetrics",
  ],
  [
    "Prometheus 3.x, scrape_protocols: [PrometheusText0.0.4]",
    "text/plain;version=0.0.4;q=0.6,*/*;q=0.5",
    "text",
  ],
  [
    "Prometheus 3.x, scrape_protocols: [PrometheusText1.0.0, PrometheusText0.0.4]",
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain;version=0.0.4;q=0.5,*/*;q=0.4",
    "text",
  ],
  ["OpenMetrics 1.0.0 only", "application/openmetrics-text;version=1.0.0", "openmetrics"],
  ["OpenMetrics 0.0.1 only", "application/openmetrics-text;version=0.0.1", "openmetrics"],
  ["OpenMetrics, spaced and cased", "Application/OpenMetrics-Text; version=1.0.0; charset=utf-8", "openmetrics"],
  ["OpenMetrics refused with q=0", "application/openmetrics-text;q=0,text/plain;q=0.5", "text"],
  ["text preferred over OpenMetrics", "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5", "text"],
  ["anything", "*/*", "text"],
  ["an unknown type", "application/json", "text"],
];

describe("content negotiation through the server", { timeout: 60_000 }, () => {
  let s: TestServer;
  let c: PromproxyClient;
  before(async () => {
    s = await startServer();
    c = await startClient(s.url, "neg", { registry: makeRegistry() });
  });
  after(async () => {
    await c?.stop();
    await s?.close();
  });

  const scrape = (headers: Record<string, string> = {}) =>
    proxyGet(s.port, "http://neg:80/metrics", { "x-prometheus-scrape-timeout-seconds": "10", ...headers });

  test("no Accept: text format 0.0.4", async () => {
    const r = await scrape();
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-type"], TEXT);
    assert.equal(r.headers["content-encoding"], undefined);
    assert.equal(r.body.toString(), expectedText);
    assert.equal(Number(r.headers["content-length"]), r.body.length);
  });

  test("Accept: application/openmetrics-text;version=1.0.0: OpenMetrics, ending in # EOF", async () => {
    const r = await scrape({ accept: "application/openmetrics-text;version=1.0.0" });
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-type"], OPENMETRICS);
    const body = r.body.toString();
    assert.ok(body.endsWith("# EOF\n"), body.slice(-40));
    assert.equal(body, expectedOpenMetrics);
  });

  for (const [what, accept, format] of prometheusAccepts) {
    test(`${what}: ${format}`, async () => {
      const r = await scrape({ accept, "accept-encoding": "gzip", "user-agent": "Prometheus/test" });
      assert.equal(r.status, 200);
      assert.equal(r.headers["content-type"], format === "text" ? TEXT : OPENMETRICS);
      assert.equal(r.headers["content-encoding"], "gzip");
      assert.equal(gunzipSync(r.body).toString(), format === "text" ? expectedText : expectedOpenMetrics);
    });
  }

  test("Accept-Encoding: gzip gets gzip, with a Content-Length that matches", async () => {
    for (const accept of [undefined, "application/openmetrics-text;version=1.0.0"]) {
      for (const ae of ["gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.8, *;q=0.1", "*", "x-gzip"]) {
        const r = await scrape({ ...(accept ? { accept } : {}), "accept-encoding": ae });
        assert.equal(r.status, 200);
        assert.equal(r.headers["content-encoding"], "gzip", ae);
        assert.equal(Number(r.headers["content-length"]), r.body.length, ae);
        const plain = gunzipSync(r.body).toString();
        assert.equal(plain, accept ? expectedOpenMetrics : expectedText, ae);
        assert.ok(r.body.length < plain.length, "compressed");
      }
    }
  });

  test("no gzip unless Accept-Encoding allows it", async () => {
    for (const ae of [undefined, "identity", "gzip;q=0", "deflate", "br", "*;q=0"]) {
      const r = await scrape(ae === undefined ? {} : { "accept-encoding": ae });
      assert.equal(r.status, 200);
      assert.equal(r.headers["content-encoding"], undefined, String(ae));
      assert.equal(r.body.toString(), expectedText, String(ae));
    }
  });

  test("curl -x --compressed decodes what the server relays", async () => {
    const r = await curl(["--compressed", "-x", s.url, "http://neg/metrics"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, expectedText);
    const om = await curl(["--compressed", "-H", "Accept: application/openmetrics-text;version=1.0.0", "-x", s.url, "http://neg/metrics"]);
    assert.equal(om.code, 0, om.stderr);
    assert.equal(om.stdout, expectedOpenMetrics);
  });

  test("a text scrape after an OpenMetrics scrape still names counters with _total", async () => {
    const text1 = (await scrape()).body.toString();
    assert.match(text1, /^# HELP app_requests_total Requests served\.$/m);
    assert.match(text1, /^# TYPE app_requests_total counter$/m);
    assert.match(text1, /^# TYPE app_jobs counter$/m);
    assert.match(text1, /^app_jobs 3$/m);

    const om = (await scrape({ accept: "application/openmetrics-text;version=1.0.0" })).body.toString();
    // OpenMetrics names the counter family without _total and its sample with it.
    assert.match(om, /^# TYPE app_requests counter$/m);
    assert.match(om, /^app_requests_total\{route="\/api\/v1\/items\/0",code="500"\} 1$/m);
    assert.match(om, /^# TYPE app_jobs counter$/m);
    assert.match(om, /^app_jobs_total 3$/m);

    for (let i = 0; i < 2; i++) {
      const text = (await scrape()).body.toString();
      assert.equal(text, expectedText);
      assert.match(text, /^# HELP app_requests_total Requests served\.$/m);
      assert.match(text, /^# TYPE app_requests_total counter$/m);
      assert.doesNotMatch(text, /^# (HELP|TYPE) app_requests /m);
      const again = (await scrape({ accept: "application/openmetrics-text;version=1.0.0" })).body.toString();
      assert.equal(again, expectedOpenMetrics);
    }
  });

  test("concurrent scrapes in both formats do not disturb each other", async () => {
    const accepts = Array.from({ length: 16 }, (_, i): Record<string, string> =>
      i % 2 === 0 ? {} : { accept: "application/openmetrics-text;version=1.0.0" },
    );
    const rs = await Promise.all(accepts.map((h) => scrape(h)));
    rs.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), i % 2 === 0 ? expectedText : expectedOpenMetrics, `scrape ${i}`);
    });
  });

  test("a HEAD request negotiates the same headers, without a body", async () => {
    const r = await proxyGet(s.port, "http://neg/metrics", { accept: "application/openmetrics-text;version=1.0.0", "accept-encoding": "gzip" }, "HEAD");
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-type"], OPENMETRICS);
    assert.equal(r.headers["content-encoding"], "gzip");
    assert.equal(r.body.length, 0);
  });
});
