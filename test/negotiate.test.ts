import assert from "node:assert/strict";
import { test } from "node:test";
import { gunzipSync } from "node:zlib";
import { Counter, Registry } from "prom-client";
import { acceptsGzip, prefersOpenMetrics } from "../src/client/targets/negotiate.ts";
import { renderRegistry } from "../src/client/targets/render.ts";

const prom2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const prom3 =
  "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

// Prometheus 3 with protobuf in scrape_protocols, and with legacy name validation (escaping=underscores).
const prom3Proto =
  "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
const prom3Legacy =
  "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=underscores;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

test("Accept negotiation prefers OpenMetrics only when asked to", () => {
  assert.equal(prefersOpenMetrics(undefined), false);
  assert.equal(prefersOpenMetrics("*/*"), false);
  assert.equal(prefersOpenMetrics("text/plain"), false);
  assert.equal(prefersOpenMetrics(prom2), true);
  assert.equal(prefersOpenMetrics(prom3), true);
  assert.equal(prefersOpenMetrics("application/openmetrics-text;q=0.2,text/plain;q=0.9"), false);
  assert.equal(prefersOpenMetrics("application/openmetrics-text;q=0"), false);
});

// Why negotiate.ts is not npm negotiator (bench/negotiate.ts): negotiator matches a media range only when all of
// its parameters equal an offer's, so Prometheus 3's `escaping=...` (any value) and the versions must all be
// offered, and then it costs 10-20x more per scrape. These headers pin what it would get wrong.
test("Accept negotiation: Prometheus 3 headers with escaping and protobuf; parameters, case and order", () => {
  assert.equal(prefersOpenMetrics(prom3Proto), true);
  assert.equal(prefersOpenMetrics(prom3Legacy), true);
  assert.equal(prefersOpenMetrics("text/plain;version=0.0.4;q=0.9,*/*;q=0.8"), false);
  assert.equal(prefersOpenMetrics("application/openmetrics-text"), true);
  assert.equal(prefersOpenMetrics("application/openmetrics-text; version=1.0.0"), true);
  assert.equal(prefersOpenMetrics("Application/OpenMetrics-Text;Version=1.0.0"), true);
  assert.equal(prefersOpenMetrics("text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.6"), true);
  assert.equal(prefersOpenMetrics("application/json"), false);
  assert.equal(prefersOpenMetrics(""), false);
});

test("Accept-Encoding negotiation", () => {
  assert.equal(acceptsGzip(undefined), false);
  assert.equal(acceptsGzip("gzip"), true);
  assert.equal(acceptsGzip("identity"), false);
  assert.equal(acceptsGzip("gzip;q=0"), false);
  assert.equal(acceptsGzip("*"), true);
  assert.equal(acceptsGzip("br, gzip;q=0.5"), true);
  assert.equal(acceptsGzip("x-gzip"), true);
  assert.equal(acceptsGzip("GZIP"), true);
  assert.equal(acceptsGzip("gzip;q=0, *"), false);
});

test("rendering does not rename counters for later scrapes in the other format", async () => {
  const registry = new Registry();
  const c = new Counter({ name: "jobs_total", help: "Jobs.", registers: [registry] });
  c.inc(2);
  const om = await renderRegistry(registry, prom2, undefined, 1);
  assert.match(om.contentType, /openmetrics/);
  assert.match(om.body.toString(), /^# TYPE jobs counter$/m);
  assert.match(om.body.toString(), /^jobs_total 2$/m);
  assert.match(om.body.toString(), /# EOF\n$/);
  const text = await renderRegistry(registry, "text/plain", undefined, 1);
  assert.match(text.contentType, /version=0\.0\.4/);
  assert.match(text.body.toString(), /^# TYPE jobs_total counter$/m);
  assert.match(text.body.toString(), /^jobs_total 2$/m);
  assert.equal(await registry.metrics(), text.body.toString());
});

test("rendering gzips when accepted and the body is worth it", async () => {
  const registry = new Registry();
  const c = new Counter({ name: "x_total", help: "x", labelNames: ["i"], registers: [registry] });
  for (let i = 0; i < 200; i++) c.inc({ i: String(i) });
  const r = await renderRegistry(registry, undefined, "gzip", 1);
  assert.equal(r.contentEncoding, "gzip");
  assert.equal(gunzipSync(r.body).toString(), await registry.metrics());
  const off = await renderRegistry(registry, undefined, "gzip", 0);
  assert.equal(off.contentEncoding, undefined);
  const small = new Registry();
  new Counter({ name: "y_total", help: "y", registers: [small] });
  assert.equal((await renderRegistry(small, undefined, "gzip", 1)).contentEncoding, undefined);
});
