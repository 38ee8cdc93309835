/**
 * Response integrity: nothing a client sends reaches Prometheus unchecked, and
 * no byte of one client's result can reach another request. The attacker is
 * the raw protocol client; Prometheus is played by raw keep-alive sockets and,
 * where the harm was in its storage, by a real Prometheus.
 */
import assert from "node:assert/strict";
import * as net from "node:net";
import { describe, test } from "node:test";
import type { PromproxyClient } from "../../src/client/index.ts";
import { startClient, startServer, waitFor, type TestServer } from "../helpers.ts";
import { startPrometheus, type RunningPrometheus } from "./prometheus.ts";
import { connectRaw, openGet, type RawClient } from "./raw-client.ts";

const text = { "content-type": "text/plain; version=0.0.4; charset=utf-8" };
/** A complete HTTP response, as an attacker would smuggle it into a keep-alive connection. */
const forged = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: 19\r\n\r\nforged_metric 666\n\n";

/** Sends raw requests on one keep-alive connection and returns all it answered until it closed (or `ms` passed). */
function exchange(port: number, requests: string, ms = 15_000): Promise<{ answer: string; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let closedByServer = true;
    const timer = setTimeout(() => {
      closedByServer = false;
      socket.destroy();
    }, ms);
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ answer: Buffer.concat(chunks).toString("latin1"), closedByServer });
    });
    socket.write(requests);
  });
}

interface Parsed {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Reads HTTP/1.1 responses one after another, framed as a client would (Content-Length or chunked). */
function parseResponses(answer: string): { responses: Parsed[]; rest: string } {
  const responses: Parsed[] = [];
  let at = 0;
  for (;;) {
    const end = answer.indexOf("\r\n\r\n", at);
    if (end < 0) break;
    const [statusLine = "", ...lines] = answer.slice(at, end).split("\r\n");
    const headers: Record<string, string> = {};
    for (const l of lines) headers[l.slice(0, l.indexOf(":")).toLowerCase()] = l.slice(l.indexOf(":") + 1).trim();
    let body = "";
    let p = end + 4;
    if (headers["transfer-encoding"] === "chunked") {
      for (;;) {
        const nl = answer.indexOf("\r\n", p);
        if (nl < 0) return { responses, rest: answer.slice(at) };
        const n = parseInt(answer.slice(p, nl), 16);
        p = nl + 2;
        if (n === 0) {
          p += 2;
          break;
        }
        body += answer.slice(p, p + n);
        p += n + 2;
      }
    } else {
      const n = Number(headers["content-length"] ?? 0);
      body = answer.slice(p, p + n);
      p += n;
    }
    if (p > answer.length) return { responses, rest: answer.slice(at) };
    responses.push({ status: Number(statusLine.split(" ")[1]), headers, body });
    at = p;
  }
  return { responses, rest: answer.slice(at) };
}

const get = (host: string, last = false) =>
  `GET http://${host}/metrics HTTP/1.1\r\nHost: ${host}\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n${last ? "Connection: close\r\n" : ""}\r\n`;

interface Setup {
  s: TestServer;
  evil: RawClient;
  app: PromproxyClient;
  stop(): Promise<void>;
}

async function setup(): Promise<Setup> {
  const s = await startServer();
  const evil = await connectRaw(s.url, { name: "evil" });
  const app = await startClient(s.url, "app-1");
  return {
    s,
    evil,
    app,
    async stop() {
      evil.abort();
      await evil.ended;
      await app.stop();
      await s.close();
    },
  };
}

/** The evil client answers its next order with `act`; resolves once it has. */
async function answerNext(evil: RawClient, act: (id: bigint) => void | Promise<void>) {
  const order = await evil.next("order");
  await act(order.scrapeId);
}

/** After an attack, the evil client's stream is still up and serves a clean scrape. */
async function stillServes(port: number, evil: RawClient) {
  const req = openGet(port, "http://evil/metrics");
  await answerNext(evil, (id) => {
    evil.head(id, 200, text);
    evil.chunk(id, "honest 1\n");
    evil.end(id);
  });
  const r = await req.done;
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), "honest 1\n");
}

describe("a client's result cannot split Prometheus' connection", { timeout: 60_000 }, () => {
  const variants: [string, (evil: RawClient, id: bigint) => void][] = [
    ["content-length 5, then one chunk holding a second response", (evil, id) => {
      evil.head(id, 200, { ...text, "content-length": "5" });
      evil.chunk(id, "up 1\n" + forged);
      evil.end(id);
    }],
    ["content-length 5, the 5 bytes, then a chunk holding a second response", (evil, id) => {
      evil.head(id, 200, { ...text, "content-length": "5" });
      evil.chunk(id, "up 1\n");
      evil.chunk(id, forged);
      evil.end(id);
    }],
    ["content-length 0 and a body", (evil, id) => {
      evil.head(id, 200, { ...text, "content-length": "0" });
      evil.chunk(id, forged);
      evil.end(id);
    }],
    ["a transfer-encoding header and a chunked-looking body", (evil, id) => {
      evil.head(id, 200, { ...text, "transfer-encoding": "chunked" });
      evil.chunk(id, "5\r\nup 1\n\r\n0\r\n\r\n" + forged);
      evil.end(id);
    }],
  ];
  for (const [what, attack] of variants) {
    test(what, async () => {
      const x = await setup();
      try {
        const answering = answerNext(x.evil, (id) => attack(x.evil, id));
        const { answer } = await exchange(x.s.port, get("evil") + get("app-1", true));
        await answering;
        // Framed as Prometheus reads it: evil's own answer (whatever it holds), then app-1's own, or a cut.
        const { responses, rest } = parseResponses(answer);
        assert.ok(responses.length <= 2, answer);
        assert.equal(rest, "", `nothing but whole responses: ${JSON.stringify(answer)}`);
        if (responses[1]) {
          assert.equal(responses[1].status, 200);
          assert.match(responses[1].body, /test_up_total\{name="app-1"\} 1/);
          assert.doesNotMatch(responses[1].body, /forged/);
        }
        if (responses[0]?.status === 200) assert.doesNotMatch(responses[0].headers["content-type"] ?? "", /forged/);
        await stillServes(x.s.port, x.evil);
      } finally {
        await x.stop();
      }
    });
  }
});

describe("a result head is checked; a bad one fails that scrape only (502 naming the client), the stream stays up", { timeout: 60_000 }, () => {
  const bad: [string, number, Record<string, string>][] = [
    ["status 100", 100, text],
    ["status 101", 101, text],
    ["status 103", 103, text],
    ["status 0", 0, text],
    ["status 600", 600, text],
    ["status 4294967295", 4294967295, text],
    ["a content-type with CR LF", 200, { "content-type": "text/plain\r\nX-Forged: 1" }],
    ["a content-type with NUL", 200, { "content-type": "text/plain\u0000" }],
    ["a content-type with non-ASCII", 200, { "content-type": "text/plain; charset=\u00e9" }],
    ["an empty content-encoding", 200, { ...text, "content-encoding": "" }],
    ["a content-length of -1", 200, { ...text, "content-length": "-1" }],
    ["a content-length of +5", 200, { ...text, "content-length": "+5" }],
    ["a content-length of 0x5", 200, { ...text, "content-length": "0x5" }],
    ["a content-length of 1e3", 200, { ...text, "content-length": "1e3" }],
    ["a content-length of 99999999999999999999", 200, { ...text, "content-length": "99999999999999999999" }],
  ];
  for (const [what, status, headers] of bad) {
    test(what, async () => {
      const x = await setup();
      try {
        const req = openGet(x.s.port, "http://evil/metrics", { "x-prometheus-scrape-timeout-seconds": "30" });
        await answerNext(x.evil, (id) => {
          x.evil.head(id, status, headers);
          x.evil.chunk(id, "up 1\n");
          x.evil.end(id);
        });
        const r = await req.done;
        assert.equal(r.status, 502, r.body.toString());
        assert.match(r.body.toString(), /^promproxy: client "evil" sent .+\n$/);
        assert.equal(r.headers["x-forged"], undefined);
        const cancel = await x.evil.next("cancel");
        assert.match(cancel.reason, /refused/);
        await stillServes(x.s.port, x.evil);
      } finally {
        await x.stop();
      }
    });
  }

  test("a duplicated content-length is refused", async () => {
    const x = await setup();
    try {
      const req = openGet(x.s.port, "http://evil/metrics");
      await answerNext(x.evil, (id) => {
        x.evil.send({ frame: { case: "head", value: { scrapeId: id, status: 200, headers: [{ name: "content-length", value: "5" }, { name: "Content-Length", value: "50" }] } } });
        x.evil.chunk(id, "up 1\n");
        x.evil.end(id);
      });
      const r = await req.done;
      assert.equal(r.status, 502);
      assert.match(r.body.toString(), /content-length twice/);
    } finally {
      await x.stop();
    }
  });

  test("header names are case-insensitive, other headers are dropped, the content-length is relayed and held", async () => {
    const x = await setup();
    try {
      const req = openGet(x.s.port, "http://evil/metrics");
      await answerNext(x.evil, (id) => {
        x.evil.head(id, 200, { "Content-Type": "text/plain; version=0.0.4", "Content-Length": "5", "Set-Cookie": "a=b", Location: "http://x/" });
        x.evil.chunk(id, "up 1\n");
        x.evil.end(id);
      });
      const r = await req.done;
      assert.equal(r.status, 200);
      assert.equal(r.headers["content-type"], "text/plain; version=0.0.4");
      assert.equal(r.headers["content-length"], "5");
      assert.equal(r.headers["set-cookie"], undefined);
      assert.equal(r.headers["location"], undefined);
      assert.equal(r.body.toString(), "up 1\n");
    } finally {
      await x.stop();
    }
  });

  test("a body shorter than its content-length is cut at once, not left to hang until the deadline", async () => {
    const x = await setup();
    try {
      const req = openGet(x.s.port, "http://evil/metrics", { "x-prometheus-scrape-timeout-seconds": "60" });
      const t0 = performance.now();
      await answerNext(x.evil, (id) => {
        x.evil.head(id, 200, { ...text, "content-length": "1000" });
        x.evil.chunk(id, "up 1\n");
        x.evil.end(id);
      });
      const r = await req.done;
      assert.equal(r.complete, false, "the response is cut, so Prometheus sees a failed scrape");
      assert.ok(performance.now() - t0 < 30_000, "answered long before the 60 s deadline");
      await stillServes(x.s.port, x.evil);
    } finally {
      await x.stop();
    }
  });

  test("an empty body with no content-length: 200 with an empty body", async () => {
    const x = await setup();
    try {
      const req = openGet(x.s.port, "http://evil/metrics");
      await answerNext(x.evil, (id) => {
        x.evil.head(id, 200, text);
        x.evil.end(id);
      });
      const r = await req.done;
      assert.equal(r.status, 200);
      assert.equal(r.body.length, 0);
    } finally {
      await x.stop();
    }
  });
});

test("a real Prometheus stores no forged sample while a client tries to split its connection", { timeout: 120_000 }, async () => {
  const x = await setup();
  let prom: RunningPrometheus | undefined;
  let attacking = true;
  const attacks = (async () => {
    let n = 0;
    while (attacking) {
      const order = await x.evil.next("order", undefined, 3_000).catch(() => undefined);
      if (!order) continue;
      const id = order.scrapeId;
      x.evil.head(id, 200, { ...text, "content-length": "10" });
      if (n++ % 2 === 0) {
        x.evil.chunk(id, "evil_up 1\n" + forged.replace("forged_metric 666", `test_up_total{name="app-1"} 666`));
      } else {
        x.evil.chunk(id, "evil_up 1\n");
        x.evil.chunk(id, forged);
      }
      x.evil.end(id);
    }
  })();
  try {
    prom = await startPrometheus({ serverUrl: x.s.url });
    const p = prom;
    await waitFor("app-1 scraped five times", async () => {
      const r = await p.query(`count_over_time(up{instance=~"app-1.*"}[1m])`);
      return (r[0]?.value ?? 0) >= 5;
    }, 60_000, 250);
    await waitFor("evil scraped at least three times", async () => {
      const r = await p.query(`count_over_time(up{instance=~"evil.*"}[1m])`);
      return (r[0]?.value ?? 0) >= 3;
    }, 60_000, 250);
    assert.deepEqual(await p.query("forged_metric"), [], "no forged series");
    const app = await p.query(`max_over_time(test_up_total[1m])`);
    for (const s of app) assert.notEqual(s.value, 666, `forged value under ${JSON.stringify(s.metric)}`);
    const appUp = await p.query(`min_over_time(up{instance=~"app-1.*"}[1m])`);
    assert.equal(appUp[0]?.value, 1, "app-1 was up at every scrape");
  } finally {
    attacking = false;
    await attacks;
    await prom?.stop();
    await x.stop();
  }
});
