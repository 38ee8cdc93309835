/**
 * Hand-written parsers against the kept libraries that do the same job:
 * `Accept` / `Accept-Encoding` negotiation (src/client/targets/negotiate.ts against
 * npm `negotiator`: kept, see README) and Basic credentials (the parser
 * src/auth/prometheus/prom-credentials.ts had, copied here, against npm `basic-auth`,
 * which parseCredential now uses). Prints, for each, the cases
 * where the answers differ (Prometheus 2.x and 3.x headers among them), then
 * the cost per call (process.hrtime.bigint, median of 7 rounds), next to a
 * small registry's render for scale. Not a test: `node bench/negotiate.ts`.
 */
import { parse as parseBasic } from "basic-auth";
import Negotiator from "negotiator";
import { Counter, Registry } from "prom-client";
import { parseCredential } from "../src/auth/prometheus/prom-credentials.ts";
import { acceptsGzip, prefersOpenMetrics } from "../src/client/targets/negotiate.ts";
import { renderRegistry } from "../src/client/targets/render.ts";

// ---- Accept -----------------------------------------------------------------------------------------------

const prom2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const prom3 =
  "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
const prom3Proto =
  "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
const prom3Legacy =
  "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=underscores;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
const prom3TextOnly = "text/plain;version=0.0.4;q=0.9,*/*;q=0.8";

/** Accept header, whether OpenMetrics should be served (what prom-client can write: OpenMetrics 1.0.0 or text 0.0.4). */
const acceptCases: [string | undefined, boolean][] = [
  [undefined, false],
  ["", false],
  ["*/*", false],
  ["text/plain", false],
  [prom2, true],
  [prom3, true],
  [prom3Proto, true],
  [prom3Legacy, true],
  [prom3TextOnly, false],
  ["application/openmetrics-text;q=0.2,text/plain;q=0.9", false],
  ["application/openmetrics-text;q=0", false],
  ["application/openmetrics-text", true],
  ["application/openmetrics-text; version=1.0.0", true],
  ["Application/OpenMetrics-Text;Version=1.0.0", true],
  ["text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.6", true],
  ["application/json", false],
];

/** negotiator as the documentation uses it: offer the two formats (text first: the default on a tie). */
const offeredPlain = ["text/plain", "application/openmetrics-text"];
/** ... with the versions prom-client writes: a media range's parameters must all match an offer's. */
const offeredVersioned = ["text/plain; version=0.0.4", "application/openmetrics-text; version=1.0.0"];
/** ... and Prometheus 3's escaping parameter, which any value allows for prom-client's (legacy) names. */
const offeredEscaping = [
  ...offeredVersioned,
  ...["allow-utf-8", "underscores", "dots", "values"].flatMap((e) => [`text/plain; version=0.0.4; escaping=${e}`, `application/openmetrics-text; version=1.0.0; escaping=${e}`]),
];

function negotiatorPrefersOm(offered: string[]): (accept: string | undefined) => boolean {
  return (accept) => {
    const headers = accept === undefined ? {} : { accept };
    return new Negotiator({ headers }).mediaType(offered)?.startsWith("application/openmetrics-text") ?? false;
  };
}

const acceptImpls: [string, (accept: string | undefined) => boolean][] = [
  ["ours (negotiate.ts)", prefersOpenMetrics],
  ["negotiator, plain offers", negotiatorPrefersOm(offeredPlain)],
  ["negotiator, versioned offers", negotiatorPrefersOm(offeredVersioned)],
  ["negotiator, versioned + escaping offers (10)", negotiatorPrefersOm(offeredEscaping)],
];

// ---- Accept-Encoding --------------------------------------------------------------------------------------

const encodingCases: [string | undefined, boolean][] = [
  [undefined, false],
  ["gzip", true],
  ["identity", false],
  ["gzip;q=0", false],
  ["*", true],
  ["br, gzip;q=0.5", true],
  ["gzip, deflate, br", true],
  ["x-gzip", true],
  ["gzip;q=0, *", false],
  ["GZIP", true],
];

const encodingImpls: [string, (ae: string | undefined) => boolean][] = [
  ["ours (negotiate.ts)", acceptsGzip],
  ["negotiator", (ae) => new Negotiator({ headers: ae === undefined ? {} : { "accept-encoding": ae } }).encoding(["gzip"]) === "gzip"],
];

// ---- Basic credentials ------------------------------------------------------------------------------------

const b64 = (s: string) => Buffer.from(s).toString("base64");
/** Authorization header, the credentials it should give (undefined: refused). */
const basicCases: [string, { name: string; pass: string } | undefined][] = [
  [`Basic ${b64("u:p:w")}`, { name: "u", pass: "p:w" }],
  [`basic ${b64(":")}`, { name: "", pass: "" }],
  [`BASIC ${b64("prom:secret")}`, { name: "prom", pass: "secret" }],
  [`Basic  ${b64("prom:secret")}`, { name: "prom", pass: "secret" }],
  [`Basic ${b64("nocolon")}`, undefined],
  ["Basic", undefined],
  ["Basic a b", undefined],
  [`Basic ${b64("prom:secret").replace(/=+$/, "")}`, { name: "prom", pass: "secret" }], // padding left off
  [`Basic ${Buffer.from("prom:s?>>").toString("base64url")}`, undefined], // base64url is not base64 (RFC 7617)
  ["Basic cHJvbTpzZWNyZXQ.", undefined], // "." is not base64
  ["Basic cHJvbTpzZWNyZXQx1", undefined], // a length no base64 has (4n+1)
  ["Basic cHJvbTpzZWNyZXQ==", undefined], // more padding than the length allows
  [`Basic ${b64("prom:pä$$")}`, { name: "prom", pass: "pä$$" }],
];

/** The hand-written Basic parser parseCredential had before it used basic-auth. */
function handWrittenBasic(header: string): { name: string; pass: string } | undefined {
  const m = /^(\S+) +(\S+) *$/.exec(header);
  if (!m || (m[1] as string).toLowerCase() !== "basic") return undefined;
  const value = m[2] as string;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return undefined;
  const decoded = Buffer.from(value, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : { name: decoded.slice(0, colon), pass: decoded.slice(colon + 1) };
}

const basicImpls: [string, (h: string) => { name: string; pass: string } | undefined][] = [
  ["hand-written (before)", handWrittenBasic],
  ["basic-auth", (h) => parseBasic(h)],
  [
    "parseCredential (now)",
    (h) => {
      const c = parseCredential(h);
      return typeof c === "object" && c.scheme === "basic" ? { name: c.username, pass: c.password } : undefined;
    },
  ],
];

// ---- running ----------------------------------------------------------------------------------------------

function check<I, O>(title: string, cases: [I, O][], impls: [string, (i: I) => O][]): void {
  console.log(`\n${title}`);
  for (const [name, fn] of impls) {
    const wrong = cases.filter(([input, want]) => JSON.stringify(fn(input)) !== JSON.stringify(want));
    console.log(`  ${name.padEnd(46)} ${cases.length - wrong.length}/${cases.length} right`);
    for (const [input, want] of wrong) console.log(`      wrong: ${JSON.stringify(input)?.slice(0, 110)} -> ${JSON.stringify(fn(input))}, want ${JSON.stringify(want)}`);
  }
}

let sink = 0;
/** Nanoseconds per call of `fn(input)`: median of 7 rounds of `n` calls, after a warm-up round. */
function nsPerCall<I>(fn: (i: I) => unknown, input: I, n: number): number {
  const rounds: number[] = [];
  for (let r = 0; r < 8; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) if (fn(input)) sink++;
    const ns = Number(process.hrtime.bigint() - t0) / n;
    if (r > 0) rounds.push(ns);
  }
  rounds.sort((a, b) => a - b);
  return rounds[3] as number;
}

function time<I>(title: string, inputs: [string, I][], impls: [string, (i: I) => unknown][], n: number): void {
  console.log(`\n${title} (ns per call, median of 7 rounds of ${n})`);
  console.log(`  ${"".padEnd(24)}${impls.map(([name]) => name.slice(0, 30).padStart(32)).join("")}`);
  for (const [label, input] of inputs) {
    console.log(`  ${label.padEnd(24)}${impls.map(([, fn]) => nsPerCall(fn, input, n).toFixed(0).padStart(32)).join("")}`);
  }
}

check("Accept: serve OpenMetrics?", acceptCases, acceptImpls);
check("Accept-Encoding: gzip?", encodingCases, encodingImpls);
check("Authorization: Basic", basicCases, basicImpls);

const n = Number(process.argv.find((a) => a.startsWith("--n="))?.slice(4) ?? 100_000);
time(
  "Accept",
  [
    ["Prometheus 2.x", prom2],
    ["Prometheus 3.x", prom3],
    ["Prometheus 3.x + proto", prom3Proto],
    ["*/*", "*/*"],
    ["none", undefined],
  ],
  acceptImpls,
  n,
);
time(
  "Accept-Encoding",
  [
    ["gzip (Prometheus)", "gzip"],
    ["gzip, deflate, br", "gzip, deflate, br"],
  ],
  encodingImpls,
  n,
);
time("Authorization: Basic", [["Basic (prom:secret)", `Basic ${b64("prom:secret")}`]], basicImpls, n);

// For scale: what one scrape of a small registry costs anyway (render, no gzip).
const registry = new Registry();
const c = new Counter({ name: "bench_requests_total", help: "Requests.", labelNames: ["route", "code"], registers: [registry] });
for (let i = 0; i < 20; i++) for (const code of ["200", "404", "500"]) c.inc({ route: `/api/${i}`, code }, i);
const renders: number[] = [];
for (let r = 0; r < 200; r++) {
  const t0 = process.hrtime.bigint();
  await renderRegistry(registry, prom3, "gzip", 0);
  if (r >= 20) renders.push(Number(process.hrtime.bigint() - t0));
}
renders.sort((a, b) => a - b);
console.log(`\nfor scale: one render of a 60-series registry (OpenMetrics, no gzip): ${(renders[renders.length >> 1]! / 1000).toFixed(1)} µs median`);
if (sink < 0) console.log(sink);
