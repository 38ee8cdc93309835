/**
 * A full server is shared between identities (src/server/fair-share.ts): when no vanished record can make room,
 * a newcomer whose identity holds fewer live clients than another identity less one takes the place of that
 * identity's newest client, whichever limit is full (`maxClients`, or `/clients` at `maxDiscoveryBytes`). One token
 * that connects more names than the server holds no longer locks every other token out; an identity never
 * evicts its own.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { bearerToken } from "../../src/client/index.ts";
import { bearerAuth } from "../../src/server/index.ts";
import { fairShareVictim } from "../../src/server/fair-share.ts";
import type { Session } from "../../src/server/session.ts";
import { startServer, waitFor } from "../helpers.ts";
import { connectRaw, type RawClient } from "./raw-client.ts";

const auth = () => bearerAuth({ tokens: { "token-a": { name: "team-a", patterns: "app-*" }, "token-b": { name: "team-b", patterns: "b-*" } } });
const asA = { interceptors: [bearerToken("token-a")] };
const asB = { interceptors: [bearerToken("token-b")] };
const streams: RawClient[] = [];
after(() => {
  for (const s of streams) s.abort();
});

async function connect(url: string, name: string, as: typeof asA) {
  const c = await connectRaw(url, { name }, as);
  streams.push(c);
  return c;
}

for (const limit of ["maxClients", "maxDiscoveryBytes"] as const) {
  test(`a full server (${limit}): another identity's newcomers take the newest places of the identity holding more, down to equal shares`, { timeout: 60_000 }, async () => {
    // Six clients fill it by count; by bytes, each listed client's group takes ~150-200 bytes of /clients.
    const s = await startServer({ interceptors: [auth()], ...(limit === "maxClients" ? { maxClients: 6 } : { maxDiscoveryBytes: 1_200 }) });
    try {
      // B connects names until the server is full: its next newcomer is refused (an identity never evicts its own).
      const b: RawClient[] = [];
      for (let i = 0; ; i++) {
        try {
          b.push(await connect(s.url, `b-${i}`, asB));
        } catch (e) {
          assert.equal((e as { code?: Code }).code, Code.ResourceExhausted, String(e));
          break;
        }
        assert.ok(i < 20, "the server fills up");
      }
      const heldByB = b.length;
      assert.ok(heldByB >= 4, `B filled the server with ${heldByB}`);
      // A's first client takes the place of B's newest, which is told why.
      await connect(s.url, "app-1", asA);
      const first = await b[heldByB - 1]!.ended;
      assert.equal(first?.code, Code.ResourceExhausted);
      assert.match(first?.rawMessage ?? "", /^the server is full: room made for a client of an identity holding fewer than "team-b" \(\d+ clients\)$/);
      // More of A: B gives up its newest until the shares are equal (or one apart); then A is refused too.
      let a = 1;
      for (; a < 6; a++) {
        try {
          await connect(s.url, `app-${a + 1}`, asA);
        } catch (e) {
          assert.equal((e as { code?: Code }).code, Code.ResourceExhausted);
          break;
        }
      }
      await waitFor("the shares settled", () => {
        const ids = s.server.clients().map((c) => c.identity);
        const nA = ids.filter((x) => x === "team-a").length;
        const nB = ids.filter((x) => x === "team-b").length;
        return Math.abs(nA - nB) <= 1 && nA === a;
      });
      // B's oldest keep their places: the newest went first.
      const live = new Set(s.server.clients().map((c) => c.name));
      for (let i = 0; i < Math.floor(heldByB / 2); i++) assert.ok(live.has(`b-${i}`), `b-${i} kept`);
    } finally {
      await s.close();
    }
  });
}

test("fairShareVictim: none without another identity holding more than one more than the newcomer's; else its newest", () => {
  const at = (ms: number) => new Date(1_000_000 + ms);
  const session = (name: string, identity: string | undefined, ms: number) => ({ info: { name, identity, connectedAt: at(ms) } }) as unknown as Session;
  const all = [session("b1", "b", 1), session("b2", "b", 3), session("b3", "b", 2), session("a1", "a", 4), session("x", undefined, 5)];
  const live = new Map([["b", 3], ["a", 1], ["", 1]]);
  assert.equal(fairShareVictim(all, live, "a")?.info.name, "b2", "a holds 1, b 3: b's newest");
  assert.equal(fairShareVictim(all, live, "b"), undefined, "never its own");
  assert.equal(fairShareVictim(all, new Map([["b", 2], ["a", 1]]), "a"), undefined, "2 against 1: one apart, fair");
  assert.equal(fairShareVictim(all, live, undefined)?.info.name, "b2", "anonymous newcomers count as one identity");
  assert.equal(fairShareVictim([session("x", undefined, 1)], new Map([["", 5]]), undefined), undefined, "without auth: one identity, never");
});

test("a newcomer takes one place at most, and only when that makes its room: a large hello evicts nobody", { timeout: 60_000 }, async () => {
  const s = await startServer({ interceptors: [auth()], maxDiscoveryBytes: 4_000 });
  try {
    const b: RawClient[] = [];
    for (let i = 0; ; i++) {
      try {
        b.push(await connect(s.url, `b-${i}`, asB));
      } catch {
        break;
      }
      assert.ok(i < 50, "the server fills up");
    }
    const heldByB = b.length;
    // 3 KB of labels: the room of many of B's clients, which one place cannot give. Refused; nobody evicted.
    const big = { name: "app-big", labels: { note: "x".repeat(1_000), more: "y".repeat(1_000), last: "z".repeat(1_000) } };
    await assert.rejects(connectRaw(s.url, big, asA), (e: { code?: Code }) => e.code === Code.ResourceExhausted);
    assert.equal(s.server.clients().length, heldByB, "B keeps every place");
    // A small one: one place of B's, the newest.
    await connect(s.url, "app-small", asA);
    await waitFor("B's newest gone", () => s.server.clients().length === heldByB);
    assert.ok(!s.server.clients().some((c) => c.name === `b-${heldByB - 1}`));
    assert.equal(s.server.clients().filter((c) => c.identity === "team-b").length, heldByB - 1, "one place, not more");
  } finally {
    await s.close();
  }
});
