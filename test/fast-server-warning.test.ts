import assert from "node:assert/strict";
import { test } from "node:test";
import { sayFastServer } from "../src/client/fast-server-warning.ts";

test("a server sending frames too fast is said at most once a minute per client, over all of its streams", () => {
  const [a, b] = [{}, {}];
  const said: string[] = [];
  // 64 streams of client a, and one of client b, all held back at once.
  for (let stream = 0; stream < 64; stream++) sayFastServer(a, () => void said.push("a"), 60_000, 1_000);
  sayFastServer(b, () => void said.push("b"), 60_000, 1_000);
  assert.deepEqual(said, ["a", "b"]);
  sayFastServer(a, () => void said.push("a"), 60_000, 60_999); // 59.999 s later: not yet
  sayFastServer(a, () => void said.push("a"), 60_000, 61_000); // a minute later: again
  assert.deepEqual(said, ["a", "b", "a"]);
});
