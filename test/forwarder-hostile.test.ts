/**
 * The forwarder target's exporter requests against exporters that misbehave:
 * a kept-alive connection closed under a request (one fresh try), a header
 * flood, a never-ending header, a status line that is not HTTP, a body longer
 * than declared, a slow drip. Each ends in a clear TargetError, bounded by the
 * target's own budget; nothing is read without limit.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import { test } from "node:test";
import { createHttpTargets, type HttpTarget, type TargetOutcome } from "../src/client/targets/http-target.ts";
import { ScrapeErrorReason, TargetError } from "../src/client/targets/target.ts";
import { rawExporter } from "./fixtures/raw-exporter.ts";
import { waitFor } from "./helpers.ts";

const ok = (body: string, extra = "") => `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

/** Serves one scrape of `/metrics` on a fresh target for `port`; returns what reached the writer, or the error. */
async function scrape(port: number, more: { timeoutMs?: number } = {}, given?: HttpTarget) {
  const target = given ?? createHttpTargets([{ url: `http://127.0.0.1:${port}`, port: 9100, ...more }])[0]!;
  const got = { status: 0, headers: {} as Record<string, string>, body: Buffer.alloc(0), error: undefined as TargetError | undefined };
  const chunks: Buffer[] = [];
  try {
    await target.serve(
      { port: 9100, path: "/metrics", scheme: "http", headers: {}, timeoutMs: 10_000, signal: new AbortController().signal },
      {
        head(status, headers) {
          got.status = status;
          got.headers = headers;
        },
        write: async (c) => void chunks.push(Buffer.from(c)),
      },
    );
  } catch (e) {
    assert.ok(e instanceof TargetError, String(e));
    got.error = e;
  } finally {
    if (!given) target.close();
  }
  got.body = Buffer.concat(chunks);
  return got;
}

test("hostile exporter: a kept-alive connection closed under a request gets one fresh try; a fresh connection closed fails at once", async () => {
  // Answers the first request on each connection; the second on a connection is met by a close (an idle close racing the request).
  const flaky = await rawExporter((socket, n) => (n === 1 ? socket.write(ok("up 1\n")) : socket.destroy()));
  const closing = await rawExporter((socket) => socket.destroy());
  const outcomes: TargetOutcome[] = [];
  const [target] = createHttpTargets([`9100=http://127.0.0.1:${flaky.port}`], { onResult: (r) => outcomes.push(r) });
  try {
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20)); // the pool has the kept connection free again
      const r = await scrape(flaky.port, {}, target);
      assert.equal(r.error, undefined, r.error?.message);
      assert.equal(r.body.toString(), "up 1\n");
    }
    assert.deepEqual(outcomes.map((o) => o.outcome), ["success", "success", "success"]);
    assert.equal(flaky.requests.length, 5, "scrapes 2 and 3 each went out twice: on the kept connection, then on a fresh one");
    assert.equal(flaky.accepted, 3);

    const r = await scrape(closing.port);
    assert.equal(r.error?.reason, ScrapeErrorReason.UNREACHABLE);
    assert.match(r.error?.message ?? "", new RegExp(`^target http://127\\.0\\.0\\.1:${closing.port}/metrics: connection reset by the exporter \\(`));
    assert.equal(closing.requests.length, 1, "a fresh connection is not tried again");
  } finally {
    target!.close();
    await flaky.close();
    await closing.close();
  }
});

test("hostile exporter: a connection closed after the head is not tried again: the answer was cut off", async () => {
  const a = await rawExporter((socket) => socket.end("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial"));
  try {
    const r = await scrape(a.port);
    assert.equal(r.status, 200);
    assert.equal(r.error?.reason, ScrapeErrorReason.UNREACHABLE);
    assert.equal(r.error?.message, `target http://127.0.0.1:${a.port}/metrics closed the connection before the end of its answer`);
    assert.equal(a.requests.length, 1);
  } finally {
    await a.close();
  }
});

test("hostile exporter: a response head over Node's header limit (a flood of headers, one endless header) fails clearly; just under it passes", async () => {
  const limit = http.maxHeaderSize;
  const line = (i: number) => `x-flood-${String(i).padStart(5, "0")}: ${"a".repeat(100)}\r\n`;
  const flood = await rawExporter((socket) => {
    socket.write("HTTP/1.1 200 OK\r\n");
    // A megabyte of headers, never ended: the forwarder stops reading long before.
    for (let i = 0; i < 8000; i++) socket.write(line(i));
  });
  const endless = await rawExporter((socket) => {
    socket.write("HTTP/1.1 200 OK\r\nx-endless: ");
    for (let i = 0; i < 1000; i++) socket.write("b".repeat(1024));
  });
  const under = await rawExporter((socket) => {
    let headers = "";
    for (let i = 0; (headers + line(i)).length < limit - 1000; i++) headers += line(i);
    socket.write(ok("fine\n", headers));
  });
  try {
    for (const e of [flood, endless]) {
      const r = await scrape(e.port);
      assert.equal(r.status, 0, "no head relayed");
      assert.equal(r.error?.reason, ScrapeErrorReason.UNREACHABLE);
      assert.equal(r.error?.message, `target http://127.0.0.1:${e.port}/metrics: answered with a response head larger than ${limit} bytes (UND_ERR_HEADERS_OVERFLOW)`);
      assert.equal(e.requests.length, 1, "not tried again");
      await waitFor("the exporter's connection to be closed", () => e.open === 0);
    }
    const r = await scrape(under.port);
    assert.equal(r.error, undefined, r.error?.message);
    assert.equal(r.body.toString(), "fine\n");
  } finally {
    await flood.close();
    await endless.close();
    await under.close();
  }
});

test("hostile exporter: a status line that is not HTTP, or a malformed status, fails clearly", async () => {
  const ssh = await rawExporter((socket) => socket.write("SSH-2.0-OpenSSH_9.6\r\n"));
  const badStatus = await rawExporter((socket) => socket.write("HTTP/1.1 2x0 OK\r\ncontent-length: 0\r\n\r\n"));
  try {
    const r1 = await scrape(ssh.port);
    assert.equal(r1.error?.reason, ScrapeErrorReason.UNREACHABLE);
    assert.equal(r1.error?.message, `target http://127.0.0.1:${ssh.port}/metrics: answered something that is not HTTP (HPE_INVALID_CONSTANT); is it an https:// exporter?`);
    const r2 = await scrape(badStatus.port);
    assert.equal(r2.error?.reason, ScrapeErrorReason.UNREACHABLE);
    assert.match(r2.error?.message ?? "", new RegExp(`^target http://127\\.0\\.0\\.1:${badStatus.port}/metrics: answered malformed HTTP: \\S.*$`));
    assert.equal(ssh.requests.length + badStatus.requests.length, 2, "neither is tried again");
  } finally {
    await ssh.close();
    await badStatus.close();
  }
});

test("hostile exporter: a body longer than its Content-Length: the declared bytes are relayed, the rest never is", async () => {
  const a = await rawExporter((socket) => socket.write(ok("up 1\n") + "EXTRA ".repeat(10_000)));
  const [target] = createHttpTargets([`9100=http://127.0.0.1:${a.port}`]);
  try {
    for (let i = 0; i < 2; i++) {
      const r = await scrape(a.port, {}, target);
      assert.equal(r.error, undefined, r.error?.message);
      assert.equal(r.status, 200);
      assert.equal(r.headers["content-length"], "5");
      assert.equal(r.body.toString(), "up 1\n");
    }
  } finally {
    target!.close();
    await a.close();
  }
});

test("hostile exporter: a slow drip (head or body) ends at the target's budget with the timeout naming it", async () => {
  const drip = (first: string) =>
    rawExporter((socket) => {
      socket.write(first);
      const t = setInterval(() => socket.write("a"), 40);
      socket.on("close", () => clearInterval(t));
    });
  const slowHead = await drip("HTTP/1.1 200 OK\r\nx-slow: ");
  const slowBody = await drip("HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n");
  try {
    const h = await scrape(slowHead.port, { timeoutMs: 400 });
    assert.equal(h.status, 0);
    assert.equal(h.error?.reason, ScrapeErrorReason.TIMEOUT);
    assert.equal(h.error?.message, `target http://127.0.0.1:${slowHead.port}/metrics did not answer within 0.4s`);
    const b = await scrape(slowBody.port, { timeoutMs: 400 });
    assert.equal(b.status, 200, "the head was relayed");
    assert.ok(b.body.length > 0 && b.body.length < 100_000);
    assert.equal(b.error?.reason, ScrapeErrorReason.TIMEOUT);
    assert.equal(b.error?.message, `target http://127.0.0.1:${slowBody.port}/metrics answered, but its answer did not end within 0.4s`);
    await waitFor("the exporters' connections to be closed", () => slowHead.open + slowBody.open === 0);
  } finally {
    await slowHead.close();
    await slowBody.close();
  }
});

test("forwarder target: close() closes the kept-alive connections; a later scrape opens a fresh one", async () => {
  const a = await rawExporter((socket) => socket.write(ok("up 1\n")));
  const [target] = createHttpTargets([`9100=http://127.0.0.1:${a.port}`]);
  try {
    assert.equal((await scrape(a.port, {}, target)).body.toString(), "up 1\n");
    assert.equal(a.open, 1, "kept alive");
    target!.close();
    await waitFor("the kept connection to be closed", () => a.open === 0);
    assert.equal((await scrape(a.port, {}, target)).body.toString(), "up 1\n");
    assert.equal(a.accepted, 2);
  } finally {
    target!.close();
    await a.close();
  }
});

test("hostile exporter: closing the connection at the end of its answer (HTTP/1.0, Connection: close) while the forwarder waits for credit: the whole body, in order", async () => {
  const body = "a".repeat(200_000) + "z";
  const styles = [
    `HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\n${body}`,
    `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${body}`,
    `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
  ];
  for (const answer of styles) {
    const a = await rawExporter((socket) => socket.end(answer));
    const [target] = createHttpTargets([`9100=http://127.0.0.1:${a.port}`]);
    try {
      const chunks: Buffer[] = [];
      let pending = 0;
      await target!.serve(
        { port: 9100, path: "/metrics", scheme: "http", headers: {}, timeoutMs: 10_000, signal: new AbortController().signal },
        {
          head: () => {},
          // Every write waits, as for a server's credit: the exporter's FIN arrives while the forwarder is paused.
          write: (c) => {
            pending++;
            return new Promise((resolve) => setTimeout(() => {
              chunks.push(Buffer.from(c));
              pending--;
              resolve();
            }, 20));
          },
        },
      );
      assert.equal(pending, 0, "the scrape ends after its last write");
      assert.equal(Buffer.concat(chunks).toString(), body);
    } finally {
      target!.close();
      await a.close();
    }
  }
});
