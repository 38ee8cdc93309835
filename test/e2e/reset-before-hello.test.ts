/**
 * Scrape streams reset by their client before the server read their hello
 * (outside review 18a, H1): a stranger opened a stream, sent a hello and reset
 * it in the same packet, in a loop. A reset that arrived while the server ran
 * the interceptor chain closed the stream before the fast path listened for
 * its close, and the stream kept its `maxPendingHellos` place until the hello
 * timeout (10 s): 4 such loops refused 7 of 12 honest clients with
 * ResourceExhausted. Each reset stream now gives its place back at once, on
 * every path (fast, an interceptor that wraps messages, Connect), and is not
 * logged a line each.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { test } from "node:test";
import { Code, type Interceptor } from "@connectrpc/connect";
import type { ServerOptions } from "../../src/server/options.ts";
import { startClient, startServer } from "../helpers.ts";
import { frame, hello } from "./fixtures/raw-h2.ts";
import { silentStream } from "./silent-stream.ts";

const places = 20;
const resets = 200;
const perSession = 20;
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Streams opened, sent a hello and reset (CANCEL) in the same tick, `perSession` per connection. */
async function resetStreams(port: number, contentType: string): Promise<void> {
  for (let done = 0; done < resets; done += perSession) {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    await new Promise<void>((resolve, reject) => session.once("connect", () => resolve()).once("error", reject));
    const closed: Promise<void>[] = [];
    for (let i = 0; i < perSession; i++) {
      const s = session.request({ ":method": "POST", ":path": "/promproxy.v1.ScrapeService/Scrape", "content-type": contentType, te: "trailers" });
      s.on("error", () => {});
      closed.push(new Promise((r) => s.once("close", () => r())));
      s.write(frame(hello(`reset-${done + i}`)));
      s.close(http2.constants.NGHTTP2_CANCEL);
    }
    await Promise.all(closed);
    session.destroy();
  }
}

/** An interceptor that looks only at headers, after an await (an auth lookup): a reset arrives while it runs. */
const slowAuth: Interceptor = (next) => async (req) => {
  await delay(20);
  return next(req);
};
/** The same, passing the request messages through a generator of its own: the call leaves the fast path. */
const slowWrap: Interceptor = (next) => async (req) => {
  await delay(20);
  if (!req.stream) return next(req);
  const inner = req.message;
  return next({ ...req, message: (async function* () { yield* inner; })() } as typeof req);
};

const cases: { name: string; options: ServerOptions; contentType: string }[] = [
  { name: "fast path, no interceptor", options: {}, contentType: "application/grpc" },
  { name: "fast path, an interceptor that awaits", options: { interceptors: [slowAuth] }, contentType: "application/grpc" },
  { name: "an interceptor that wraps the messages", options: { interceptors: [slowWrap] }, contentType: "application/grpc" },
  { name: "Connect protocol", options: {}, contentType: "application/connect+proto" },
  { name: "fastPath: false", options: { fastPath: false, interceptors: [slowAuth] }, contentType: "application/grpc" },
];

for (const c of cases) {
  test(`${c.name}: ${resets} streams reset with their hello give their maxPendingHellos places back at once, one log line`, { timeout: 60_000 }, async () => {
    const refusals: string[] = [];
    const logger = { debug() {}, info: (m: string) => void (m.startsWith("client refused") && refusals.push(m)), warn() {}, error() {} };
    // The hello timeout far longer than the test: only the reset itself can free the places.
    const s = await startServer({ maxPendingHellos: places, helloTimeoutMs: 120_000, logger, ...c.options });
    const silent: ReturnType<typeof silentStream>[] = [];
    try {
      await resetStreams(s.port, c.contentType);
      await delay(500); // the server hears the last resets (an interceptor's await is 20 ms)
      // An honest client is welcomed (startClient waits for the welcome; refused, it would retry until its 10 s wait ends).
      const app = await startClient(s.url, "app-1");
      await app.stop();
      // Every place is free: `places` silent streams hold one each, the next is refused at once.
      for (let i = 0; i < places; i++) silent.push(silentStream(s.url));
      await delay(1_000);
      const over = await silentStream(s.url).ended;
      assert.equal(over?.code, Code.ResourceExhausted, String(over));
      const early = await Promise.race([Promise.any(silent.map((x) => x.ended)), delay(100).then(() => "waiting")]);
      assert.equal(early, "waiting", `every silent stream still holds its place: ${String(early)}`);
      // Refusals are said once per code and address a minute, not a line per reset stream.
      assert.ok(refusals.length <= 4, refusals.join("\n"));
    } finally {
      for (const x of silent) x.close();
      await Promise.all(silent.map((x) => x.ended));
      await s.close();
    }
  });
}
