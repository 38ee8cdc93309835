/**
 * A stranger flooding hellos for a name another client holds. Each hello makes the server check that the holder is
 * still alive before refusing it (AlreadyExists). Those checks share one ping, and an answer stands for a second:
 * the holder's stream is never buried under pings (a client reads at its own pace: it used to fall behind, be
 * closed as "not reading its stream", and lose its name to the flood), never closed, its name never taken.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { after, test } from "node:test";
import { frame, hello, raw } from "./fixtures/raw-h2.ts";
import { startServer, waitFor } from "../helpers.ts";

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Sends hellos for `name` on one connection, one after another, until `until`; the grpc-status of each. */
async function helloLoop(port: number, name: string, until: number): Promise<string[]> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  const codes: string[] = [];
  while (Date.now() < until && !session.destroyed) {
    const st = session.request({ ":method": "POST", ":path": "/promproxy.v1.ScrapeService/Scrape", "content-type": "application/grpc", te: "trailers" });
    st.on("error", () => {});
    st.write(frame(hello(name)));
    codes.push(
      await new Promise<string>((resolve) => {
        st.once("response", (h) => h["grpc-status"] !== undefined && resolve(String(h["grpc-status"])));
        st.once("trailers", (t) => resolve(String(t["grpc-status"])));
        st.once("close", () => resolve("closed"));
      }),
    );
    st.close();
  }
  session.close();
  return codes;
}

test("a flood of hellos for a held name costs its holder a ping a second at most: it keeps its stream and its name", async (t) => {
  const s = await startServer();
  cleanups.push(() => s.close());
  // The holder answers each ping 50 ms late, as a client reading at its own pace would.
  const holder = raw(s.port);
  cleanups.push(() => holder.session.destroy());
  holder.stream.write(frame(hello("victim")));
  await waitFor("the holder's welcome", () => holder.frames.some((f) => f.frame.case === "welcome"));
  const sessionId = s.server.clients().find((c) => c.name === "victim")?.sessionId;
  assert.ok(sessionId);
  let seen = 0;
  let pings = 0;
  const answering = setInterval(() => {
    for (; seen < holder.frames.length; seen++) {
      const f = holder.frames[seen]!.frame;
      if (f.case !== "ping") continue;
      pings++;
      setTimeout(() => holder.stream.writable && holder.stream.write(frame({ frame: { case: "pong", value: { nonce: f.value.nonce } } })), 50);
    }
  }, 10);
  cleanups.push(() => clearInterval(answering));

  const started = performance.now();
  const codes = (await Promise.all(Array.from({ length: 20 }, () => helloLoop(s.port, "victim", Date.now() + 3_000)))).flat();
  const elapsedMs = performance.now() - started;
  await new Promise((r) => setTimeout(r, 100)); // the last pings answered
  const counts: Record<string, number> = {};
  for (const c of codes) counts[c] = (counts[c] ?? 0) + 1;
  // One ping a second for the probes, and the heartbeat's (every 10 s) besides.
  const most = Math.ceil(elapsedMs / 1000) + 2;
  const said = `${codes.length} hellos in ${elapsedMs.toFixed(0)} ms (${JSON.stringify(counts)}); the holder got ${pings} pings (at most ${most})`;
  t.diagnostic(said);
  assert.ok(codes.length >= 100, `the flood was a flood: ${said}`);
  assert.deepEqual(Object.keys(counts), ["6"], `every hello refused AlreadyExists: ${said}`);
  assert.ok(pings <= most, said);
  assert.equal(s.server.clients().find((c) => c.name === "victim")?.sessionId, sessionId, "the holder kept its name and its stream");
  assert.ok(!holder.stream.closed, "the holder's stream is open");
});

test("refused hellos are logged a line a minute per kind of refusal, with a count, not a line each", async (t) => {
  const lines: { level: string; message: string; code?: unknown }[] = [];
  const record = (level: string) => (message: string, fields?: Record<string, unknown>) => void lines.push({ level, message, code: fields?.["code"] });
  const logger = { debug: record("debug"), info: record("info"), warn: record("warn"), error: record("error") };
  const s = await startServer({ logger });
  const bad = (await Promise.all(Array.from({ length: 4 }, () => helloLoop(s.port, "bad name!", Date.now() + 1_000)))).flat();
  const invalid = bad.filter((c) => c === "3").length;
  const refused = () => lines.filter((l) => l.message.startsWith("client refused") && l.code === "InvalidArgument");
  t.diagnostic(`${bad.length} bad hellos, ${invalid} refused InvalidArgument: ${refused().length} lines before the close`);
  assert.ok(invalid >= 50, `a flood: ${JSON.stringify([...new Set(bad)])}`);
  assert.equal(refused().length, 1, "the first is said at once, the rest counted");
  await s.close();
  const said = refused();
  assert.equal(said.length, 2, "and the count is said when the server closes");
  assert.equal(said[1]!.message, `client refused (${invalid - 1} more refused in the last 60s)`);
  assert.deepEqual(new Set(said.map((l) => l.level)), new Set(["info"]));
});
