import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { budgetCutOf, markBudgetCut } from "../src/shared/budget-cut.ts";
import { faultOf } from "../src/client/fault-backoff.ts";

test("a budget cut is told by its marker, through ConnectError.from and any wrapper keeping it as the cause", () => {
  const cut = markBudgetCut(new ConnectError("the server sent 13 HTTP/2 control frames ...", Code.ResourceExhausted), "maxServerControlFramesPerSecond");
  assert.equal(budgetCutOf(cut), "maxServerControlFramesPerSecond");
  assert.equal(budgetCutOf(ConnectError.from(cut)), "maxServerControlFramesPerSecond");
  // A session's plain error, as Node hands it to a stream, and connect-es wrapping it.
  const plain = markBudgetCut(new Error("the peer sent 99 bytes ..."), "maxClientOverheadBytesPerSecond");
  assert.equal(budgetCutOf(ConnectError.from(plain)), "maxClientOverheadBytesPerSecond");
  const explained = new ConnectError("in our words", Code.Unavailable, undefined, undefined, new ConnectError("wrapped", Code.Internal, undefined, undefined, cut));
  assert.equal(budgetCutOf(explained), "maxServerControlFramesPerSecond");
  // The words are the guard's, untouched, and the marker is not among the error's own enumerable keys.
  assert.equal(cut.rawMessage, "the server sent 13 HTTP/2 control frames ...");
  assert.deepEqual(Object.keys(plain), []);
});

test("words are not a marker: an error naming a budget's option is no cut, and a cause loop ends", () => {
  const words = new ConnectError("a server's grpc-message: more than maxServerOverheadBytesPerSecond allows", Code.ResourceExhausted);
  assert.equal(budgetCutOf(words), undefined);
  assert.equal(faultOf(words), undefined, "a server cannot make the client count a fault by its words");
  assert.equal(faultOf(markBudgetCut(new ConnectError("x", Code.ResourceExhausted), "maxServerOverheadBytesPerSecond")), "budget");
  const a = new Error("a") as Error & { cause?: unknown };
  const b = new Error("b", { cause: a });
  a.cause = b;
  assert.equal(budgetCutOf(a), undefined);
  for (const v of [undefined, null, "maxServerOverheadBytesPerSecond", 42]) assert.equal(budgetCutOf(v), undefined);
});

test("the server's session guards hand their cut marked with its budget: the listener tells its two logs apart so", async () => {
  const { createSessionGuards } = await import("../src/server/listen/h2-session-guards.ts");
  const cuts: { budget: string | undefined; message: string; destroyedWith: unknown }[] = [];
  const guards = createSessionGuards({ overheadBytesPerSecond: 1 << 16, maxRefusedStreams: 10, streamsAtOnce: 16, tickMs: 10, onCut: (e) => void cuts.push({ budget: budgetCutOf(e), message: e.message, destroyedWith: undefined }) });
  const fake = (lastProcStreamID: number) => {
    const s = {
      destroyed: false,
      destroyedWith: undefined as unknown,
      socket: { bytesRead: 0, bytesWritten: 0, remoteAddress: "127.0.0.1" },
      state: { lastProcStreamID },
      on() {},
      once() {}, // no SETTINGS ACK: judged from its second check on
      destroy(e: unknown) {
        s.destroyed = true;
        s.destroyedWith = e;
      },
    };
    return s;
  };
  const flooding = fake(0), refusing = fake(41); // 21 streams opened, none seen by a handler
  for (const s of [flooding, refusing]) guards.watch(s as never);
  flooding.socket.bytesRead = 10 << 20;
  refusing.socket.bytesRead = 100;
  for (let i = 0; i < 200 && !(flooding.destroyed && refusing.destroyed); i++) {
    refusing.socket.bytesRead += 100; // still reading: a session that read nothing since the last check is not judged
    await new Promise((r) => setTimeout(r, 10));
  }
  guards.stop();
  assert.deepEqual(cuts.map((c) => c.budget).sort(), ["maxClientOverheadBytesPerSecond", "maxRefusedStreamsPerConnection"]);
  assert.equal(budgetCutOf(flooding.destroyedWith), "maxClientOverheadBytesPerSecond");
  assert.equal(budgetCutOf(refusing.destroyedWith), "maxRefusedStreamsPerConnection");
  assert.match(cuts.find((c) => c.budget === "maxClientOverheadBytesPerSecond")!.message, /^the peer sent \d+ bytes in [\d.]+ s that carry no data .* more than maxClientOverheadBytesPerSecond \(65536 a second\) allows$/);
});
