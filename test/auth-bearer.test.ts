/**
 * Client-stream auth with bearer tokens: every refusal, identities bound to
 * names, token files that reload, verify functions, and secrets kept out of
 * logs.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe, test } from "node:test";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { bearerToken, createClient } from "../src/client/index.ts";
import { bearerAuth, identityKey, type Logger, type ServerOptions } from "../src/server/index.ts";
import { tempDir } from "./auth-certs.ts";
import { startClient, startServer, testRegistry, type TestServer } from "./helpers.ts";

const tmp = tempDir();
after(() => tmp.remove());

/** A logger that keeps every line (message and fields), to check that no secret is ever logged. */
function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const rec = (level: string) => (message: string, fields?: Record<string, unknown>) => void lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
  return { lines, debug: rec("debug"), info: rec("info"), warn: rec("warn"), error: rec("error") };
}

const secrets = ["s3cret-app-1-token", "s3cret-app-star-token", "wrong-token-0000", "fleet-token-1", "fleet-token-2", "jwt-ish.payload.sig", "revoked-token", "expired-token"];
const serverLog = recordingLogger();
const clientLog = recordingLogger();
after(() => {
  for (const line of [...serverLog.lines, ...clientLog.lines]) {
    for (const s of secrets) assert.ok(!line.includes(s), `a token was logged: ${line}`);
  }
});

async function server(options: ServerOptions): Promise<TestServer> {
  return startServer({ logger: serverLog, ...options });
}

/** The ConnectError a client's start() rejects with. */
async function refused(url: string, name: string, interceptors: Interceptor[]): Promise<ConnectError> {
  try {
    const c = await startClient(url, name, { interceptors, logger: clientLog });
    await c.stop();
  } catch (e) {
    assert.ok(e instanceof ConnectError, String(e));
    return e;
  }
  return assert.fail(`client "${name}" was let in`);
}

const tokens = { "s3cret-app-1-token": ["app-1"], "s3cret-app-star-token": { name: "team-a", patterns: ["app-*"] } };

describe("bearerAuth with static tokens", () => {
  test("the right token for the right name is let in, with its identity", async () => {
    const s = await server({ interceptors: [bearerAuth({ tokens })] });
    const c1 = await startClient(s.url, "app-1", { interceptors: [bearerToken("s3cret-app-1-token")], logger: clientLog });
    const c2 = await startClient(s.url, "APP-2", { interceptors: [bearerToken(async () => "s3cret-app-star-token")], logger: clientLog });
    try {
      const byName = Object.fromEntries(s.server.clients().map((c) => [c.name, c.identity]));
      assert.deepEqual(byName, { "app-1": "token#1", "app-2": "team-a" });
    } finally {
      await c1.stop();
      await c2.stop();
      await s.close();
    }
  });

  test("no token: Unauthenticated", async () => {
    const s = await server({ interceptors: [bearerAuth({ tokens })] });
    try {
      const e = await refused(s.url, "app-1", []);
      assert.equal(e.code, Code.Unauthenticated);
      assert.match(e.rawMessage, /missing credentials/);
      assert.ok(serverLog.lines.some((l) => l.includes("client refused") && l.includes("Unauthenticated")), "the refusal was not logged");
    } finally {
      await s.close();
    }
  });

  test("a wrong token: Unauthenticated; a malformed header: Unauthenticated", async () => {
    const s = await server({ interceptors: [bearerAuth({ tokens })] });
    try {
      const e = await refused(s.url, "app-1", [bearerToken("wrong-token-0000")]);
      assert.equal(e.code, Code.Unauthenticated);
      assert.match(e.rawMessage, /invalid bearer token/);
      const basic: Interceptor = (next) => (req) => {
        req.header.set("authorization", "Basic dXNlcjpwYXNz");
        return next(req);
      };
      const m = await refused(s.url, "app-1", [basic]);
      assert.equal(m.code, Code.Unauthenticated);
      assert.match(m.rawMessage, /malformed authorization header/);
    } finally {
      await s.close();
    }
  });

  test("a valid token for another name: PermissionDenied", async () => {
    const s = await server({ interceptors: [bearerAuth({ tokens })] });
    try {
      const e = await refused(s.url, "app-2", [bearerToken("s3cret-app-1-token")]);
      assert.equal(e.code, Code.PermissionDenied);
      assert.equal(e.rawMessage, 'identity "token#1" may not use the name "app-2"');
    } finally {
      await s.close();
    }
  });

  test("a hello for a name outside the token's patterns: PermissionDenied", async () => {
    const s = await server({ interceptors: [bearerAuth({ tokens })] });
    try {
      for (const name of ["web-1", "app-1.eu", "xapp-1"]) {
        const e = await refused(s.url, name, [bearerToken("s3cret-app-star-token")]);
        assert.equal(e.code, Code.PermissionDenied, name);
      }
      assert.equal(s.server.clients().length, 0);
    } finally {
      await s.close();
    }
  });

  test("refusals are counted in promproxy_client_streams_total", async () => {
    const s = await server({ interceptors: [bearerAuth({ tokens })] });
    try {
      await refused(s.url, "app-1", []);
      await refused(s.url, "web-1", [bearerToken("s3cret-app-star-token")]);
      const body = await (await fetch(`${s.url}/metrics`)).text();
      assert.match(body, /^promproxy_client_streams_total\{result="Unauthenticated"\} 1$/m);
      assert.match(body, /^promproxy_client_streams_total\{result="PermissionDenied"\} 1$/m);
    } finally {
      await s.close();
    }
  });

  test("the identity is in the call's context values for later interceptors and the handler", async () => {
    const seen: (string | undefined)[] = [];
    const spy: Interceptor = (next) => (req) => {
      seen.push(req.contextValues.get(identityKey)?.name);
      return next(req);
    };
    const s = await server({ interceptors: [bearerAuth({ tokens }), spy] });
    const c = await startClient(s.url, "app-9", { interceptors: [bearerToken("s3cret-app-star-token")], logger: clientLog });
    try {
      assert.deepEqual(seen, ["team-a"]);
    } finally {
      await c.stop();
      await s.close();
    }
  });
});

describe("bearerAuth with a token file", () => {
  test("reads TOKEN PATTERNS [IDENTITY] lines and picks up changes without a restart; a broken change keeps the old tokens", async () => {
    const file = path.join(tmp.dir, "tokens");
    fs.writeFileSync(file, "# fleet tokens\nfleet-token-1  app-1,app-2  fleet-a\n");
    const s = await server({ interceptors: [bearerAuth({ tokenFile: file, logger: serverLog })] });
    const clients = [];
    try {
      clients.push(await startClient(s.url, "app-2", { interceptors: [bearerToken("fleet-token-1")], logger: clientLog }));
      assert.equal(s.server.clients()[0]?.identity, "fleet-a");
      assert.equal((await refused(s.url, "app-3", [bearerToken("fleet-token-2")])).code, Code.Unauthenticated);

      fs.writeFileSync(file, "fleet-token-2 app-3,app-4\n"); // token 1 revoked, token 2 added
      clients.push(await startClient(s.url, "app-3", { interceptors: [bearerToken("fleet-token-2")], logger: clientLog }));
      assert.equal(s.server.clients().find((c) => c.name === "app-3")?.identity, "tokens:1");
      assert.equal((await refused(s.url, "app-1", [bearerToken("fleet-token-1")])).code, Code.Unauthenticated);

      fs.writeFileSync(file, "fleet-token-1 bad_pattern!\n");
      assert.equal((await refused(s.url, "app-1", [bearerToken("fleet-token-1")])).code, Code.Unauthenticated);
      clients.push(await startClient(s.url, "app-4", { interceptors: [bearerToken("fleet-token-2")], logger: clientLog }));
      assert.ok(serverLog.lines.some((l) => l.startsWith("error token file not reloaded")), "the broken file was not reported");
    } finally {
      for (const c of clients) await c.stop();
      await s.close();
    }
  });

  test("a bad token file fails at construction, naming the line but not the token", () => {
    const file = path.join(tmp.dir, "bad-tokens");
    fs.writeFileSync(file, "fleet-token-1 app-1\nfleet-token-2\n");
    assert.throws(() => bearerAuth({ tokenFile: file }), (e: Error) => /bad-tokens line 2/.test(e.message) && !e.message.includes("fleet-token-2"));
    fs.writeFileSync(file, "fleet-token-1 app-1\nfleet-token-1 app-2\n");
    assert.throws(() => bearerAuth({ tokenFile: file }), /appears twice/);
    assert.throws(() => bearerAuth({ tokenFile: path.join(tmp.dir, "missing") }), /ENOENT/);
  });
});

describe("bearerAuth with a verify function", () => {
  const verify = async (token: string) => {
    if (token === "jwt-ish.payload.sig") return { name: "jwt:svc-a", patterns: ["svc-a"] };
    if (token === "revoked-token") throw new ConnectError("token revoked", Code.Unauthenticated);
    return undefined; // expired or unknown
  };

  test("a verified token holds its names", async () => {
    const s = await server({ interceptors: [bearerAuth({ verify })] });
    const c = await startClient(s.url, "svc-a", { interceptors: [bearerToken("jwt-ish.payload.sig")], logger: clientLog });
    try {
      assert.equal(s.server.clients()[0]?.identity, "jwt:svc-a");
      assert.equal((await refused(s.url, "svc-b", [bearerToken("jwt-ish.payload.sig")])).code, Code.PermissionDenied);
    } finally {
      await c.stop();
      await s.close();
    }
  });

  test("an expired token (verify returns undefined): Unauthenticated; a revoked one (verify throws): its own error", async () => {
    const s = await server({ interceptors: [bearerAuth({ verify })] });
    try {
      const expired = await refused(s.url, "svc-a", [bearerToken("expired-token")]);
      assert.equal(expired.code, Code.Unauthenticated);
      const revoked = await refused(s.url, "svc-a", [bearerToken("revoked-token")]);
      assert.equal(revoked.code, Code.Unauthenticated);
      assert.equal(revoked.rawMessage, "token revoked");
    } finally {
      await s.close();
    }
  });

  test("a verify function that fails: Unavailable, and the client keeps retrying", async () => {
    let calls = 0;
    const flaky = async (token: string) => {
      if (++calls < 3) throw new Error("identity provider unreachable");
      return verify(token);
    };
    const s = await server({ interceptors: [bearerAuth({ verify: flaky, logger: serverLog })] });
    const errors: ConnectError[] = [];
    const c = await startClient(s.url, "svc-a", { interceptors: [bearerToken("jwt-ish.payload.sig")], logger: clientLog, onError: (e) => errors.push(e) });
    try {
      assert.deepEqual(errors.map((e) => e.code), [Code.Unavailable, Code.Unavailable]);
      assert.equal(s.server.clients()[0]?.name, "svc-a");
    } finally {
      await c.stop();
      await s.close();
    }
  });
});

describe("bearerToken (client side)", () => {
  test("the token function is called for every connection attempt", async () => {
    const s = await server({ interceptors: [bearerAuth({ tokens })] });
    let calls = 0;
    const c = createClient({
      name: "app-1",
      serverUrl: s.url,
      registry: testRegistry(),
      logger: clientLog,
      backoff: { initialMs: 20, maxMs: 50 },
      interceptors: [
        bearerToken(async () => {
          calls++;
          if (calls === 1) throw new Error("token service not ready"); // this attempt fails and is retried
          return "s3cret-app-1-token";
        }),
      ],
    });
    try {
      await c.start({ timeoutMs: 10_000 });
      assert.equal(calls, 2);
    } finally {
      await c.stop();
      await s.close();
    }
  });

  test("a token with white space or a newline is refused before it is sent", () => {
    assert.throws(() => bearerToken("two words"), TypeError);
    assert.throws(() => bearerToken("abc\r\nx-evil: 1"), TypeError);
    assert.throws(() => bearerToken(""), TypeError);
  });

  test("bearerAuth needs a source of tokens and valid patterns", () => {
    assert.throws(() => bearerAuth({}), /needs tokens, tokenFile or verify/);
    assert.throws(() => bearerAuth({ tokens: { "good-token": ["bad pattern"] } }), /bad name pattern/);
  });
});
