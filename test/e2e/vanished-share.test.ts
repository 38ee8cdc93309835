/**
 * One identity's churn never erases another's vanished clients. Team A's app
 * crashed (its stream broke: listed as disconnected, scrapes answered 503, so
 * `up == 0` fires); a token allowed only `b-*` names connects more names than
 * the server holds, each breaking its stream, twice over. Team A's vanished
 * app-1 stays listed and answered 503, its live app-2 is scraped as usual; B's
 * newcomers make room from B's own vanished records, or are refused.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { bearerToken, type PromproxyClient } from "../../src/client/index.ts";
import { bearerAuth } from "../../src/server/index.ts";
import { proxyGet, startClient, startServer, waitFor, type TestServer } from "../helpers.ts";
import { connectRaw, type RawClient } from "./raw-client.ts";

type Group = { targets: string[]; labels: Record<string, string> };
async function listed(url: string): Promise<Map<string, string>> {
  const groups = (await (await fetch(`${url}/clients`)).json()) as Group[];
  return new Map(groups.map((g) => [g.targets[0]!, g.labels["__meta_promproxy_connected"]!]));
}

const auth = () =>
  bearerAuth({ tokens: { "token-a": { name: "team-a", patterns: "app-*" }, "token-b": { name: "team-b", patterns: "b-*" } } });
const asA = { interceptors: [bearerToken("token-a")] };
const asB = { interceptors: [bearerToken("token-b")] };

/** Connects each name as B, a few at a time, and breaks its stream at once (RST_STREAM, connection dropped: no goodbye). */
async function churn(url: string, names: string[]): Promise<{ welcomed: number; refused: ConnectError[] }> {
  let welcomed = 0;
  const refused: ConnectError[] = [];
  for (let i = 0; i < names.length; i += 10) {
    await Promise.all(
      names.slice(i, i + 10).map(async (name) => {
        try {
          const c = await connectRaw(url, { name }, asB);
          welcomed++;
          c.abort();
          await c.ended;
        } catch (e) {
          refused.push(ConnectError.from(e));
        }
      }),
    );
  }
  return { welcomed, refused };
}

/** Connects each name as B and keeps its stream; returns the streams held and the refusals. */
async function hold(url: string, names: string[]): Promise<{ held: RawClient[]; refused: ConnectError[] }> {
  const held: RawClient[] = [];
  const refused: ConnectError[] = [];
  for (let i = 0; i < names.length; i += 10) {
    await Promise.all(
      names.slice(i, i + 10).map((name) =>
        connectRaw(url, { name }, asB).then(
          (c) => void held.push(c),
          (e: unknown) => void refused.push(ConnectError.from(e)),
        ),
      ),
    );
  }
  return { held, refused };
}

const vanishedOf = async (url: string, prefix: string) => [...(await listed(url))].filter(([n, c]) => n.startsWith(prefix) && c === "false").map(([n]) => n);

async function vanishApp1(url: string) {
  const crashed = await connectRaw(url, { name: "app-1", labels: { team: "a" } }, asA);
  crashed.abort();
  await crashed.ended;
  await waitFor("app-1 listed as vanished", async () => (await listed(url)).get("app-1") === "false");
}

async function teamAIntact(s: TestServer) {
  const l = await listed(s.url);
  assert.equal(l.get("app-1"), "false", "team A's crashed app-1 is still listed, disconnected");
  assert.equal(l.get("app-2"), "true");
  const r = await proxyGet(s.port, "http://app-1/metrics");
  assert.equal(r.status, 503, r.body.toString());
  assert.match(r.body.toString(), /^promproxy: client "app-1" disconnected \d+s ago/);
  assert.equal((await proxyGet(s.port, "http://app-2/metrics")).status, 200);
}

describe("vanished clients are kept per identity", { timeout: 120_000 }, () => {
  test("B churns more names than the server holds, twice over: A's vanished app-1 stays, B's newcomers take B's own places", async (t) => {
    const maxClients = 100;
    const s = await startServer({ maxClients, vanishedRetentionMs: 60_000, interceptors: [auth()] });
    let app2: PromproxyClient | undefined;
    try {
      await vanishApp1(s.url);
      app2 = await startClient(s.url, "app-2", asA);
      for (const round of [1, 2]) {
        const names = Array.from({ length: maxClients + 16 }, (_, i) => `b-${round}-${i}`);
        const { welcomed, refused } = await churn(s.url, names);
        assert.equal(welcomed, names.length, `round ${round}: every newcomer found room among B's own vanished clients`);
        assert.deepEqual(refused, []);
        const b: string[] = await waitFor(`round ${round}: B's last name vanished`, async () => {
          const v = await vanishedOf(s.url, "b-");
          return v.includes(`b-${round}-${names.length - 1}`) ? v : undefined;
        }).then((v) => v ?? []);
        // Live and vanished together hold maxClients places: app-1 and app-2 keep theirs, B has the rest.
        assert.equal(b.length, maxClients - 2, `round ${round}: B keeps ${b.length} vanished clients`);
        assert.ok(b.every((n) => n.startsWith(`b-${round}-`)), "B's newest, this round's");
        await teamAIntact(s);
        t.diagnostic(`round ${round}: B connected and broke ${welcomed} names; B keeps ${b.length} vanished; app-1 still listed and answered 503`);
      }
    } finally {
      await app2?.stop();
      await s.close();
    }
  });

  test("B holding every free place with live clients is refused more; A's vanished app-1 is not taken", async () => {
    const maxClients = 50;
    const s = await startServer({ maxClients, vanishedRetentionMs: 60_000, interceptors: [auth()] });
    let app2: PromproxyClient | undefined;
    let held: RawClient[] = [];
    try {
      await vanishApp1(s.url);
      app2 = await startClient(s.url, "app-2", asA);
      const names = Array.from({ length: maxClients }, (_, i) => `b-live-${i}`);
      const r = await hold(s.url, names);
      held = r.held;
      assert.equal(held.length, maxClients - 2, "at the limit: every free place taken");
      assert.equal(r.refused.length, 2, "over it: refused");
      for (const e of r.refused) {
        assert.equal(e.code, Code.ResourceExhausted);
        assert.equal(e.rawMessage, `the server has its maximum of ${maxClients} clients (1 of them vanished clients of identities that hold no more clients than this one's)`);
      }
      await teamAIntact(s);
    } finally {
      await Promise.all(held.map((c) => c.close()));
      await app2?.stop();
      await s.close();
    }
  });

  test("a client coming back to a full server takes its own vanished place, not a sibling's", async () => {
    const s = await startServer({ maxClients: 3, vanishedRetentionMs: 60_000 });
    try {
      for (const name of ["v-1", "v-2", "v-3"]) {
        const c = await connectRaw(s.url, { name });
        c.abort();
        await c.ended;
      }
      await waitFor("three vanished", async () => (await vanishedOf(s.url, "v-")).length === 3);
      const back = await connectRaw(s.url, { name: "v-2" });
      const l = await listed(s.url);
      assert.deepEqual([...l].sort(), [["v-1", "false"], ["v-2", "true"], ["v-3", "false"]]);
      await back.close();
    } finally {
      await s.close();
    }
  });

  describe("maxVanishedPerIdentity", () => {
    let s: TestServer;
    before(async () => {
      s = await startServer({ maxClients: 100, maxVanishedPerIdentity: 20, vanishedRetentionMs: 60_000, interceptors: [auth()] });
      await vanishApp1(s.url);
    });
    after(() => s.close());

    test("at the limit: every vanished client of the identity is kept", async () => {
      const names = Array.from({ length: 20 }, (_, i) => `b-at-${i}`);
      assert.equal((await churn(s.url, names)).welcomed, 20);
      await waitFor("20 of B vanished", async () => (await vanishedOf(s.url, "b-")).length === 20);
      const l = await listed(s.url);
      for (const n of names) assert.equal(l.get(n), "false", n);
      assert.equal(l.get("app-1"), "false");
    });

    test("over it: the identity's own oldest are forgotten, another identity's never", async () => {
      const names = Array.from({ length: 5 }, (_, i) => `b-over-${i}`);
      assert.equal((await churn(s.url, names)).welcomed, 5);
      await waitFor("B's newest vanished", async () => (await listed(s.url)).get("b-over-4") === "false");
      const l = await listed(s.url);
      const b = [...l.keys()].filter((n) => n.startsWith("b-"));
      assert.equal(b.length, 20, "B keeps 20");
      for (let i = 0; i < 5; i++) assert.equal(l.has(`b-at-${i}`), false, `B's oldest b-at-${i} forgotten`);
      for (const n of names) assert.equal(l.get(n), "false");
      assert.equal(l.get("app-1"), "false", "A's app-1 untouched");
      assert.equal((await proxyGet(s.port, "http://app-1/metrics")).status, 503);
      assert.equal((await proxyGet(s.port, "http://b-at-0/metrics")).status, 404, "a forgotten record answers 404");
    });
  });
});
