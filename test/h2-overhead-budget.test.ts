/**
 * The overhead budget of an HTTP/2 session (maxServerOverheadBytesPerSecond): what its socket read less the DATA
 * its streams took, averaged between checks (at least a second apart unless forced); past the limit the session is
 * destroyed with ENHANCE_YOUR_CALM and an error that says what the server did.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { test } from "node:test";
import { guardOverheadBytes } from "../src/client/h2-overhead-budget.ts";
import { budgetCutOf } from "../src/shared/budget-cut.ts";

/** A stand-in session: a socket whose bytesRead the test sets, and destroy(). */
function fakeSession() {
  const s = {
    destroyed: false,
    socket: { bytesRead: 100 },
    destroyedWith: undefined as undefined | { error: Error; code: number },
    destroy(error: Error, code: number) {
      s.destroyed = true;
      s.destroyedWith = { error, code };
    },
  };
  return s;
}

test("at the limit a session is kept, DATA never counts; a byte past a window's worth ends it, saying what the server did", () => {
  let now = 0;
  const s = fakeSession();
  const g = guardOverheadBytes(s as unknown as http2.Http2Session, 1000, () => now);
  for (let i = 0; i < 20; i++) {
    now += 1000;
    s.socket.bytesRead += 1000 + 50_000; // the limit's worth of overhead, and DATA
    g.data(50_000);
  }
  g.check(true);
  assert.equal(s.destroyed, false);
  now += 5_000; // a window of 5 s (a PING tick's): 5 000 bytes allowed
  s.socket.bytesRead += 5_000;
  g.check(true);
  assert.equal(s.destroyed, false);
  now += 5_000;
  s.socket.bytesRead += 5_001;
  g.check(true);
  assert.equal(s.destroyedWith?.code, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  assert.match(s.destroyedWith!.error.message, /the server sent 5001 bytes in 5\.0 s that carry no data \(frame headers, WINDOW_UPDATE, PRIORITY, padding, unknown frames\), more than maxServerOverheadBytesPerSecond \(1000 a second\) allows/);
  assert.equal(budgetCutOf(s.destroyedWith!.error), "maxServerOverheadBytesPerSecond", "marked as that budget's cut");
});

test("checks as DATA arrives come at most once a second; a forced one within the second judges a second's worth", () => {
  let now = 0;
  const s = fakeSession();
  const g = guardOverheadBytes(s as unknown as http2.Http2Session, 1000, () => now);
  s.socket.bytesRead += 5_000;
  now = 500;
  g.data(0); // within the second: not judged
  assert.equal(s.destroyed, false);
  g.check(true); // forced: 5 000 over a second's 1 000
  assert.equal(s.destroyed, true);
  const t = fakeSession();
  const h = guardOverheadBytes(t as unknown as http2.Http2Session, 1000, () => now);
  now += 1000;
  t.socket.bytesRead += 1001;
  h.data(0);
  assert.equal(t.destroyed, true, "judged as DATA arrives once a second has passed");
});
