/**
 * The relay alone (src/server/relay.ts): a real node:http server on port 0
 * relays scrapes from a scripted coordinator, so that every status of the
 * table, the head, the body, credit and Prometheus going away are checked on
 * a real HTTP response without a client stream.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { Registry } from "prom-client";
import { createActivity, type ScrapeEvent } from "../src/server/activity.ts";
import type { Coordinator, ScrapeRequest } from "../src/server/coordinator.ts";
import { createServerMetrics } from "../src/server/metrics.ts";
import { relayScrape, httpStatusOf, type RelayDeps } from "../src/server/relay.ts";
import type { ScrapeFailure, ScrapeHandle, ScrapeOutcome, ScrapeSink } from "../src/server/scrape-types.ts";
import { silentLogger } from "../src/shared/logger.ts";
import { proxyGet } from "./helpers.ts";

/** What the scripted coordinator does with the next scrape. */
type Script = (sink: ScrapeSink, handle: FakeHandle) => ScrapeHandle | ScrapeFailure;

interface FakeHandle extends ScrapeHandle {
  granted: number[];
  cancelled: string[];
}

const request: ScrapeRequest = { name: "app", method: "GET", port: 9100, path: "/metrics", scheme: "http", headers: [], timeoutMs: 10_000 };

let server: http.Server;
let port: number;
let script: Script;
let handles: FakeHandle[] = [];
const events: ScrapeEvent[] = [];
const registry = new Registry();
const metrics = createServerMetrics(registry);
const activity = createActivity(silentLogger, 100);
activity.events.on("scrapeFinished", (e) => void events.push(e));

const coordinator = {
  scrape(_r: ScrapeRequest, sink: ScrapeSink) {
    const handle: FakeHandle = {
      id: BigInt(handles.length + 1),
      granted: [],
      cancelled: [],
      grant: (n) => void handle.granted.push(n),
      cancel: (reason) => void handle.cancelled.push(reason),
    };
    handles.push(handle);
    return script(sink, handle);
  },
} as Partial<Coordinator> as Coordinator;

/** What the relay logged as cut answers: client name and message. */
const cuts: string[] = [];
const deps: RelayDeps = { coordinator, metrics, activity, grantAt: 8, cutLog: { refused: (name, message) => void cuts.push(`${name}: ${message}`), close() {} } };

before(async () => {
  server = http.createServer((req, res) => relayScrape(deps, request, res, req.method === "HEAD"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

/** Runs one scrape with the script; returns Prometheus' response and the recorded outcome. */
async function scrape(s: Script, method = "GET") {
  script = s;
  handles = [];
  events.length = 0;
  const res = await proxyGet(port, "http://app:9100/metrics", {}, method);
  await waitUntil(() => events.length > 0);
  return { ...res, text: res.body.toString(), event: events[0]!, handle: handles[0]! };
}

async function waitUntil(check: () => boolean) {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), "the relay should have recorded its outcome");
}

const counted = async (outcome: string) =>
  (await metrics.scrapes.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;

describe("relay: the HTTP status of every failure", () => {
  const table: [ScrapeOutcome, number][] = [
    ["unknown_client", 404], ["warming_up", 503], ["vanished", 503], ["not_found", 404], ["bad_request", 400], ["busy", 503],
    ["shutting_down", 503], ["timeout", 504], ["disconnected", 502], ["too_large", 502], ["bad_result", 502],
    ["target_unreachable", 502], ["client_error", 502], ["cancelled", 502], ["prometheus_gone", 499],
  ];

  test("the table names every outcome once, with the status documented", () => {
    assert.deepEqual(Object.entries(httpStatusOf).sort(), table.map(([o, s]) => [o, s]).sort());
  });

  for (const [outcome, status] of table.filter(([o]) => o !== "prometheus_gone")) {
    test(`${outcome}: ${status} with a one-line promproxy body, refused at once and after the head`, async () => {
      const before = await counted(outcome);
      const atOnce = await scrape(() => ({ outcome, message: `why ${outcome}` }));
      assert.equal(atOnce.status, status);
      assert.equal(atOnce.text, `promproxy: why ${outcome}\n`);
      assert.equal(atOnce.headers["content-type"], "text/plain; charset=utf-8");
      assert.equal(atOnce.headers["cache-control"], "no-store");
      assert.equal(atOnce.event.outcome, outcome);
      assert.equal(atOnce.event.message, `why ${outcome}`);

      // A head that set the result's headers, not sent yet: the failure's answer replaces them.
      const late = await scrape((sink, h) => {
        setImmediate(() => {
          sink.onHead({ status: 200, headers: [["content-type", "text/plain; version=0.0.4"], ["content-encoding", "gzip"], ["content-length", "99"]], contentLength: 99 });
          sink.onEnd({ outcome, message: `late ${outcome}` });
        });
        return h;
      });
      assert.equal(late.status, status);
      assert.equal(late.text, `promproxy: late ${outcome}\n`);
      assert.equal(late.headers["content-type"], "text/plain; charset=utf-8");
      assert.equal(late.headers["content-encoding"], undefined);
      assert.equal(await counted(outcome), before + 2);
    });
  }
});

describe("relay: results", () => {
  test("a success relays the head's status and headers and the body; credit is granted back in batches of grantAt", async () => {
    const before = await counted("success");
    const r = await scrape((sink, h) => {
      setImmediate(() => {
        sink.onHead({ status: 203, headers: [["content-type", "text/plain; version=0.0.4"]] });
        sink.onChunk(Buffer.from("up 1\n"));
        // The first turn's bytes are held until it ends (and written then); the rest come in a later turn.
        setImmediate(() => {
          for (const part of ["a 2\n", "b 3\n"]) sink.onChunk(Buffer.from(part));
          sink.onEnd();
        });
      });
      return h;
    });
    assert.equal(r.status, 203);
    assert.equal(r.headers["content-type"], "text/plain; version=0.0.4");
    assert.equal(r.text, "up 1\na 2\nb 3\n");
    assert.equal(r.event.outcome, "success");
    assert.equal(r.event.bytes, 13);
    // 5 bytes wait, 5 + 4 reach grantAt (8): one grant of 9; the last 4 are below grantAt and need no grant.
    assert.deepEqual(r.handle.granted, [9]);
    assert.deepEqual(r.handle.cancelled, []);
    assert.equal(await counted("success"), before + 1);
  });

  test("HEAD: the head goes out, the body is counted and not written", async () => {
    const r = await scrape((sink, h) => {
      setImmediate(() => {
        sink.onHead({ status: 200, headers: [["content-type", "text/plain"]] });
        sink.onChunk(Buffer.from("up 1\n"));
        sink.onEnd();
      });
      return h;
    }, "HEAD");
    assert.equal(r.status, 200);
    assert.equal(r.text, "");
    assert.equal(r.event.bytes, 5);
  });

  test("a failure once the body has started cuts the response: no error status can follow a sent head", async () => {
    script = (sink, h) => {
      setImmediate(() => {
        sink.onHead({ status: 200, headers: [] });
        sink.onChunk(Buffer.from("up 1\n"));
        setImmediate(() => sink.onEnd({ outcome: "disconnected", message: 'client "app" disconnected' }));
      });
      return h;
    };
    events.length = 0;
    const got = await new Promise<{ status: number; error?: string }>((resolve) => {
      const req = http.get({ host: "127.0.0.1", port, path: "http://app:9100/metrics", agent: false }, (res) => {
        res.on("data", () => {});
        res.on("error", (e) => resolve({ status: res.statusCode ?? 0, error: e.message }));
        res.on("end", () => resolve({ status: res.statusCode ?? 0 }));
      });
      req.on("error", (e) => resolve({ status: 0, error: e.message }));
    });
    assert.equal(got.status, 200);
    assert.match(got.error ?? "", /aborted/, "Prometheus sees a broken body, never a complete one");
    await waitUntil(() => events.length > 0);
    assert.equal(events[0]?.outcome, "disconnected");
    assert.deepEqual(cuts.splice(0), ['app: answer to Prometheus cut after its head had gone: client "app" disconnected']);
  });

  test("a failure in the turn of the first body bytes (held, not yet written): the clear status, nothing cut", async () => {
    const r = await scrape((sink, h) => {
      setImmediate(() => {
        sink.onHead({ status: 200, headers: [["content-length", "100"]], contentLength: 100 });
        sink.onChunk(Buffer.from("up 1\n"));
        sink.onChunk(Buffer.from("a 2\n"));
        sink.onEnd({ outcome: "bad_result", message: 'client "app" sent 9 body bytes, but its content-length said 100' });
      });
      return h;
    });
    assert.equal(r.status, 502);
    assert.equal(r.text, 'promproxy: client "app" sent 9 body bytes, but its content-length said 100\n');
    assert.equal(r.event.outcome, "bad_result");
    assert.deepEqual(cuts, []);
  });

  test("Prometheus going away cancels the scrape once, records prometheus_gone, and a late end is ignored", async () => {
    let sink: ScrapeSink | undefined;
    script = (s, h) => ((sink = s), h);
    handles = [];
    events.length = 0;
    const req = http.get({ host: "127.0.0.1", port, path: "http://app:9100/metrics", agent: false });
    req.on("error", () => {});
    await waitUntil(() => handles.length > 0);
    req.destroy();
    await waitUntil(() => events.length > 0);
    assert.deepEqual(handles[0]?.cancelled, ["prometheus went away"]);
    assert.equal(events[0]?.outcome, "prometheus_gone");
    sink?.onEnd({ outcome: "cancelled", message: "too late" });
    assert.equal(events.length, 1, "one outcome per scrape");
  });
});

describe("relay: one write per turn of the loop", () => {
  /** Counts the write calls the server makes on each accepted socket (each `_write`/`_writev` is one syscall or more). */
  function countWrites(): { calls: () => number; stop: () => void } {
    let calls = 0;
    const onConnection = (s: import("node:net").Socket) => {
      const raw = s as unknown as { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
      const write = raw._write.bind(s);
      const writev = raw._writev.bind(s);
      raw._write = (...a) => ((calls++), write(...a));
      raw._writev = (...a) => ((calls++), writev(...a));
    };
    server.on("connection", onConnection);
    return { calls: () => calls, stop: () => void server.off("connection", onConnection) };
  }

  /** 64 chunks of 1 KiB, each in a callback of its own within one turn (as each HTTP/2 DATA frame of a read comes). */
  const manyChunks: Script = (sink, h) => {
    setImmediate(() => {
      sink.onHead({ status: 200, headers: [["content-type", "text/plain"]] });
      let i = 0;
      const next = () => {
        sink.onChunk(Buffer.alloc(1024, 0x61 + (i % 26)));
        if (++i < 64) process.nextTick(next);
        else setImmediate(() => sink.onEnd());
      };
      next();
    });
    return h;
  };

  test("64 chunks that come in one turn leave in a few writes, not one each; the kept-alive socket serves the next request", async () => {
    const writes = countWrites();
    script = manyChunks;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const get = () =>
        new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
          http
            .get({ host: "127.0.0.1", port, path: "http://app:9100/metrics", agent }, (res) => {
              const parts: Buffer[] = [];
              res.on("data", (d: Buffer) => parts.push(d));
              res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
            })
            .on("error", reject);
        });
      const first = await get();
      assert.equal(first.status, 200);
      assert.equal(first.body.length, 64 * 1024);
      assert.equal(first.body[1024 * 25], 0x61 + 25);
      // Without the cork each chunk is a write of its own (64 or more).
      assert.ok(writes.calls() <= 4, `the body left in ${writes.calls()} writes`);
      // The same connection (the socket was uncorked after the turn): the next answer comes whole.
      const second = await get();
      assert.equal(second.status, 200);
      assert.equal(second.body.length, 64 * 1024);
      assert.ok(writes.calls() <= 8, `two bodies left in ${writes.calls()} writes`);
    } finally {
      writes.stop();
      agent.destroy();
    }
  });
});
