/**
 * Property-based tests (fast-check) for everything that parses input from
 * strangers: the scrape timeout header, client names and labels, the hello,
 * the session's frame handling, and the front's reading of proxy URIs.
 *
 * Each property states what must hold for every input, not just the examples
 * in the unit tests. Runs are seeded by fast-check and reported on failure
 * with the seed and the shrunk counterexample.
 */
import assert from "node:assert/strict";
import * as net from "node:net";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { ClientFrameSchema, HelloSchema, TargetSchema, type ClientFrame } from "../gen/promproxy/v1/scrape_pb.ts";
import type { PromproxyClient } from "../src/client/index.ts";
import { scrapeTimeoutMs } from "../src/server/proxy-request.ts";
import { groupsOf } from "../src/server/discovery.ts";
import { checkHello, targetsOf } from "../src/server/hello.ts";
import type { ScrapeHandle } from "../src/server/scrape-types.ts";
import { createSession } from "../src/server/session.ts";
import { checkLabels, checkName, reservedLabelNames } from "../src/shared/names.ts";
import { startClient, startServer, type TestServer } from "./helpers.ts";

const timeouts = { defaultScrapeTimeoutMs: 15_000, maxScrapeTimeoutMs: 300_000 };
const badTimeout = /^bad X-Prometheus-Scrape-Timeout-Seconds /;

describe("scrapeTimeoutMs (X-Prometheus-Scrape-Timeout-Seconds)", () => {
  test("any header value: a timeout in (0, max] or a one-line error; never a throw", () => {
    const header = fc.oneof(fc.string({ unit: "binary", maxLength: 64 }), fc.array(fc.string({ maxLength: 16 }), { maxLength: 3 }));
    fc.assert(
      fc.property(header, (h) => {
        const r = scrapeTimeoutMs(h, timeouts);
        if (typeof r === "number") {
          assert.ok(r > 0 && r <= timeouts.maxScrapeTimeoutMs && Number.isFinite(r), `timeout ${r}`);
        } else {
          assert.match(r, badTimeout);
          assert.ok(r.length < 200 && !/[\r\n]/.test(r), "one short line");
        }
      }),
      { numRuns: 2_000 },
    );
  });

  test("every positive number of seconds, written as JavaScript or Go would, is accepted and clamped", () => {
    const seconds = fc.double({ min: Number.MIN_VALUE, max: Number.MAX_VALUE, noNaN: true, noDefaultInfinity: true });
    fc.assert(
      fc.property(seconds, fc.constantFrom("", " ", "\t"), (s, pad) => {
        for (const text of [String(s), s.toExponential(), s.toFixed(3).replace(/^0\.000$/, "")].filter((t) => t !== "" && Number(t) > 0)) {
          const r = scrapeTimeoutMs(pad + text + pad, timeouts);
          assert.equal(r, Math.min(Number(text) * 1000, timeouts.maxScrapeTimeoutMs), JSON.stringify(text));
        }
      }),
      { numRuns: 2_000 },
    );
  });

  test("zero, negative, non-finite and non-decimal numbers are refused", () => {
    const notPositive = fc.oneof(
      fc.double({ max: 0, noNaN: true }).map(String),
      fc.constantFrom("NaN", "Infinity", "-Infinity", "+Infinity", "0", "-0", "0.0", "0e5", "", " ", "abc", "1e", "e1", ".", "1..2", "0x10", "0b1", "0o7", "1_000", "١٠", "10s", "1,5", "--1", "+-1"),
      fc.integer({ min: 1 }).map((n) => `0x${n.toString(16)}`),
    );
    fc.assert(
      fc.property(notPositive, (t) => {
        const r = scrapeTimeoutMs(t, timeouts);
        assert.equal(typeof r, "string", `${JSON.stringify(t)} gave ${String(r)}`);
        assert.match(r as string, badTimeout);
      }),
      { numRuns: 1_000 },
    );
  });

  test("monotonic: a longer requested timeout never yields a shorter one", () => {
    fc.assert(
      fc.property(fc.double({ min: 1e-6, max: 1e9, noNaN: true }), fc.double({ min: 1e-6, max: 1e9, noNaN: true }), (a, b) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        assert.ok((scrapeTimeoutMs(String(lo), timeouts) as number) <= (scrapeTimeoutMs(String(hi), timeouts) as number));
      }),
    );
  });

  test("no header: the default", () => {
    assert.equal(scrapeTimeoutMs(undefined, timeouts), timeouts.defaultScrapeTimeoutMs);
  });
});

/** DNS-ish strings: mostly from the right alphabet, so that valid and nearly valid names are both common. */
const dnsish = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: fc.constantFrom(..."abcxyzABCXYZ0189-."), maxLength: 80 }) },
  { weight: 2, arbitrary: fc.domain() },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 70 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(..."a0-.\u212A\u0130\u017F_ :/%"), maxLength: 20 }) },
);

describe("client names (DNS host names)", () => {
  test("any string: a canonical name or an error; never a throw", () => {
    fc.assert(
      fc.property(dnsish, (s) => {
        const r = checkName(s);
        if ("error" in r) {
          assert.ok(r.error.length > 0 && r.error.length < 300, "a short reason");
          return;
        }
        assert.ok(r.name.length >= 1 && r.name.length <= 253, `length ${r.name.length}`);
        assert.equal(r.name, r.name.toLowerCase());
        for (const label of r.name.split(".")) assert.match(label, /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/);
        assert.deepEqual(checkName(r.name), r, "canonical names are accepted as they are");
      }),
      { numRuns: 5_000 },
    );
  });

  test("only ASCII letters, digits, hyphens and dots are accepted (no Unicode that lower-cases into ASCII)", () => {
    fc.assert(
      fc.property(dnsish, (s) => {
        if (!("error" in checkName(s))) assert.match(s, /^[A-Za-z0-9.-]+$/, JSON.stringify(s));
      }),
      { numRuns: 5_000 },
    );
  });

  test("case does not make a different name", () => {
    fc.assert(
      fc.property(fc.domain(), (d) => {
        assert.deepEqual(checkName(d.toUpperCase()), checkName(d.toLowerCase()));
      }),
    );
  });

  test("every accepted name is reachable: the front reads http://NAME/ back to the same name", () => {
    fc.assert(
      fc.property(dnsish, fc.option(fc.integer({ min: 1, max: 65535 })), (s, port) => {
        const r = checkName(s);
        if ("error" in r) return;
        // What the front does with Prometheus' request URI (src/server/front.ts).
        const url = new URL(`http://${s}${port ? `:${port}` : ""}/metrics`);
        assert.equal(url.hostname, r.name, `a client named ${JSON.stringify(s)} would be scraped as ${JSON.stringify(url.hostname)}`);
      }),
      { numRuns: 5_000 },
    );
  });
});

describe("labels", () => {
  const limits = { maxLabels: 4, maxLabelValueLength: 16 };
  const labelMap = fc.dictionary(
    fc.oneof(
      fc.string({ unit: fc.constantFrom(..."ab_Z09-_."), maxLength: 8 }),
      fc.string({ unit: "binary", maxLength: 8 }),
      fc.constantFrom("__proto__", "job", "instance", "le", "quantile", "__address__", "__param_x", "_job", "Job"),
    ),
    fc.oneof(fc.string({ unit: "binary", maxLength: 24 }), fc.string({ unit: "grapheme", maxLength: 8 }), fc.string({ unit: fc.constantFrom("a", "\ud800", "\udc00", "é", "😀"), maxLength: 8 })),
    { maxKeys: 6 },
  );
  test("any labels: accepted only within the rules and limits; otherwise a short reason; never a throw", () => {
    fc.assert(
      fc.property(labelMap, (labels) => {
        const e = checkLabels(labels, limits);
        if (e !== undefined) {
          assert.ok(e.length < 300, "a short reason");
          return;
        }
        const names = Object.keys(labels);
        assert.ok(names.length <= limits.maxLabels);
        for (const n of names) {
          assert.match(n, /^[a-zA-Z_][a-zA-Z0-9_]*$/);
          assert.ok(!n.startsWith("__"));
          assert.ok(!reservedLabelNames.has(n), `${n} is reserved`);
          const v = labels[n] ?? "";
          assert.ok(Buffer.byteLength(v) <= limits.maxLabelValueLength, "the value's UTF-8 bytes are within the limit");
          assert.equal(Buffer.from(v).toString(), v, "the value survives UTF-8 (no lone surrogate)");
        }
      }),
      { numRuns: 3_000 },
    );
  });
});

describe("hellos", () => {
  const limits = { maxLabels: 3, maxLabelValueLength: 16, maxTargets: 3, maxHelloBytes: 200, maxClientDiscoveryBytes: 900 };
  const labels = fc.dictionary(
    fc.oneof(fc.string({ unit: fc.constantFrom(..."ab_1-"), maxLength: 4 }), fc.constantFrom("job", "instance", "__x")),
    fc.oneof(fc.string({ maxLength: 20 }), fc.string({ unit: fc.constantFrom("\u0001", "é", "😀", "a"), maxLength: 12 })),
    { maxKeys: 4 },
  );
  const target = fc.record({
    port: fc.oneof(fc.integer({ min: 0, max: 70_000 }), fc.constant(0)),
    path: fc.oneof(fc.constantFrom("", "/", "/metrics", "/probe", "metrics", "/a b", "/m?x", "/m#f"), fc.string({ maxLength: 12 })),
    labels,
  });
  const hello = fc.record({ name: dnsish, labels, targets: fc.array(target, { maxLength: 4 }), version: fc.string({ unit: "binary", maxLength: 200 }) });

  test("any hello: the canonical name, or InvalidArgument with a reason; never anything else", () => {
    fc.assert(
      fc.property(hello, (h) => {
        const msg = create(HelloSchema, { ...h, targets: h.targets.map((t) => create(TargetSchema, t)) });
        let checked: ReturnType<typeof checkHello>;
        try {
          checked = checkHello(msg, limits);
        } catch (e) {
          assert.ok(e instanceof ConnectError, `threw ${String(e)}`);
          assert.equal(e.code, Code.InvalidArgument);
          assert.match(e.rawMessage, /^bad hello: /);
          return;
        }
        assert.deepEqual(checkName(h.name), { name: checked.name });
        assert.deepEqual(checked.labels, { ...h.labels });
        assert.deepEqual(checked.targets, targetsOf(msg.targets));
        assert.ok(h.targets.length <= limits.maxTargets);
        let bytes = Buffer.byteLength(checked.name);
        for (const set of [h.labels, ...h.targets.map((t) => t.labels)]) {
          for (const [k, v] of Object.entries(set)) bytes += Buffer.byteLength(k) + Buffer.byteLength(v);
        }
        for (const t of h.targets) bytes += Buffer.byteLength(t.path);
        assert.ok(bytes <= limits.maxHelloBytes, `${bytes} bytes announced`);
        const listed = Buffer.byteLength(JSON.stringify(groupsOf({ ...checked, sessionId: "00000000-0000-0000-0000-000000000000" })).slice(1, -1));
        assert.ok(listed <= limits.maxClientDiscoveryBytes, `${listed} bytes in /clients`);
        assert.equal(checkLabels(h.labels, limits), undefined);
        const keys = new Set<string>();
        for (const t of h.targets) {
          assert.ok(t.port <= 65535);
          assert.ok(t.path === "" || (t.path.startsWith("/") && !/[?#\s]/.test(t.path)));
          assert.equal(checkLabels(t.labels, limits), undefined);
          const k = `${t.port} ${t.path}`;
          assert.ok(!keys.has(k), "no target twice");
          keys.add(k);
        }
      }),
      { numRuns: 3_000 },
    );
  });
});

describe("the session's frame handling", () => {
  const limits = { maxScrapesInFlight: 3, maxChunkBytes: 8, creditBytes: 16, maxResponseBytes: 1 << 20 };
  type Step =
    | { op: "order" }
    | { op: "cancel" | "grant"; which: number; bytes: number }
    | { op: "head" | "end" | "fail"; id: number; status: number }
    | { op: "chunk"; id: number; bytes: number }
    | { op: "pong" | "empty" | "hello" };
  const id = fc.integer({ min: 0, max: 6 });
  const step: fc.Arbitrary<Step> = fc.oneof(
    fc.constant({ op: "order" as const }),
    fc.record({ op: fc.constantFrom("cancel" as const, "grant" as const), which: fc.nat(5), bytes: fc.integer({ min: -4, max: 20 }) }),
    fc.record({ op: fc.constantFrom("head" as const, "end" as const, "fail" as const), id, status: fc.constantFrom(200, 404, 99, 600, 0) }),
    fc.record({ op: fc.constant("chunk" as const), id, bytes: fc.integer({ min: 0, max: 12 }) }),
    fc.record({ op: fc.constantFrom("pong" as const, "empty" as const, "hello" as const) }),
  );

  test("any sequence of frames: violations are ConnectErrors; every scrape ends exactly once; no body byte beyond the credit", () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
        const s = createSession(
          { name: "p", labels: {}, targets: targetsOf([]), sessionId: "s", version: "v", connectedAt: new Date() },
          [],
          limits,
        );
        const scrapes: { handle: ScrapeHandle; ends: number; bytes: number; granted: number; cancelled: boolean }[] = [];
        const frame = (f: unknown) => create(ClientFrameSchema, { frame: f } as never) as ClientFrame;
        let violation: ConnectError | undefined;
        for (const st of steps) {
          try {
            switch (st.op) {
              case "order": {
                const rec = { handle: undefined as unknown as ScrapeHandle, ends: 0, bytes: 0, granted: limits.creditBytes, cancelled: false };
                const h = s.scrape(
                  { method: "GET", port: 0, path: "/metrics", scheme: "http", headers: [], timeoutMs: 1_000 },
                  { onHead() {}, onChunk: (d) => void (rec.bytes += d.byteLength), onEnd: () => void rec.ends++ },
                );
                if (!h) {
                  assert.equal(s.inFlight, limits.maxScrapesInFlight, "refused only at the limit");
                  break;
                }
                rec.handle = h;
                scrapes.push(rec);
                break;
              }
              case "cancel":
              case "grant": {
                const rec = scrapes[st.which];
                if (!rec) break;
                if (st.op === "cancel") {
                  rec.handle.cancel("test");
                  rec.cancelled = true;
                } else if (rec.ends === 0 && !rec.cancelled && st.bytes > 0) {
                  rec.handle.grant(st.bytes);
                  rec.granted += st.bytes;
                }
                break;
              }
              case "head":
                s.receive(frame({ case: "head", value: { scrapeId: BigInt(st.id), status: st.status, headers: [] } }));
                break;
              case "end":
                s.receive(frame({ case: "end", value: { scrapeId: BigInt(st.id) } }));
                break;
              case "fail":
                s.receive(frame({ case: "end", value: { scrapeId: BigInt(st.id), error: { reason: 1, message: "x" } } }));
                break;
              case "chunk":
                s.receive(frame({ case: "chunk", value: { scrapeId: BigInt(st.id), data: new Uint8Array(st.bytes) } }));
                break;
              case "pong":
                s.receive(frame({ case: "pong", value: { nonce: 1n } }));
                break;
              case "hello":
                s.receive(frame({ case: "hello", value: { name: "p" } }));
                break;
              case "empty":
                s.receive(create(ClientFrameSchema));
                break;
            }
          } catch (e) {
            assert.ok(e instanceof ConnectError, `a violation is a ConnectError, got ${String(e)}`);
            assert.ok([Code.InvalidArgument, Code.ResourceExhausted].includes(e.code), Code[e.code]);
            violation = e;
            break; // the server ends the stream at the first violation
          }
          for (const r of scrapes) {
            assert.ok(r.ends <= 1, "ended at most once");
            assert.ok(r.bytes <= r.granted, `received ${r.bytes} body bytes with ${r.granted} granted`);
          }
        }
        s.close(violation);
        for (const r of scrapes) {
          assert.equal(r.ends + (r.cancelled && r.ends === 0 ? 1 : 0), 1, "every scrape ends exactly once (or was cancelled by the front)");
        }
        assert.equal(s.inFlight, 0);
      }),
      { numRuns: 3_000 },
    );
  });
});

describe("proxy URIs through the real front", () => {
  let s: TestServer;
  let c: PromproxyClient;
  before(async () => {
    s = await startServer();
    c = await startClient(s.url, "app-1");
  });
  after(async () => {
    await c.stop();
    await s.close();
  });

  /** One request on its own connection; the status code, or 0 when the connection closed without an answer. */
  function statusFor(target: string): Promise<number> {
    return new Promise((resolve) => {
      const socket = net.connect(s.port, "127.0.0.1");
      let text = "";
      socket.on("data", (b: Buffer) => (text += b.toString("latin1")));
      socket.on("error", () => {});
      socket.on("close", () => resolve(Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0)));
      socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    });
  }

  // Characters that can appear in a request-target on the wire (no spaces or controls).
  const uriChar = fc.constantFrom(..."abcAPP019-._~:/?#[]@!$&'()*+,;=%");

  test("any host in an absolute URI: 200 only for the connected client's name (any case, trailing dot), else 400 or 404", async () => {
    const host = fc.oneof(
      fc.constantFrom("app-1", "APP-1", "App-1.", "app-1:80", "app-1:9100", "app-1:", "app-1:0", "app-1.:443"),
      fc.string({ unit: uriChar, minLength: 1, maxLength: 30 }),
      fc.domain(),
    );
    await fc.assert(
      fc.asyncProperty(host, async (h) => {
        const status = await statusFor(`http://${h}/metrics`);
        let hostname: string | undefined;
        try {
          hostname = new URL(`http://${h}/metrics`).hostname.replace(/\.$/, "");
        } catch {
          /* not a URL: 400 */
        }
        const served = hostname === "app-1" && new URL(`http://${h}/metrics`).pathname === "/metrics";
        if (served) assert.equal(status, 200, h);
        else assert.ok([400, 404].includes(status), `${JSON.stringify(h)}: ${status}`);
      }),
      { numRuns: 300 },
    );
  });

  test("any path and query for the connected client: 200 for /metrics, 404 for other paths, 400 for a bad _scheme; never 5xx", async () => {
    const rest = fc.string({ unit: uriChar, maxLength: 40 });
    await fc.assert(
      fc.asyncProperty(rest, async (r) => {
        const status = await statusFor(`http://app-1/${r}`);
        assert.ok(status >= 200 && status < 500, `${JSON.stringify(r)}: ${status}`);
        let url: URL | undefined;
        try {
          url = new URL(`http://app-1/${r}`);
        } catch {
          /* 400 */
        }
        if (!url || url.hostname !== "app-1") return;
        const schemes = url.searchParams.getAll("_scheme");
        const badScheme = schemes.length > 1 || (schemes.length === 1 && schemes[0] !== "http" && schemes[0] !== "https");
        if (url.pathname !== "/metrics") assert.ok([400, 404].includes(status), `${JSON.stringify(r)}: ${status}`);
        else if (badScheme) assert.equal(status, 400, r);
        else assert.equal(status, 200, r);
      }),
      { numRuns: 300 },
    );
  });
});
