/**
 * TLS on the one port: HTTP/1.1 and HTTP/2 by ALPN, clients over https://,
 * mTLS identities from client certificates, and certificate reload.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import * as tls from "node:tls";
import { Code, ConnectError } from "@connectrpc/connect";
import * as http2 from "node:http2";
import { bearerToken, clientTlsFromFiles, createClient } from "../../src/client/index.ts";
import { bearerAuth, createServer, mtlsAuth, silentLogger, type ListenTlsOptions, type PromproxyServer, type ServerOptions } from "../../src/server/index.ts";
import { issue, tempDir, testPki, type Ca, type CertFiles } from "../auth-certs.ts";
import { curl, startClient, testRegistry } from "../helpers.ts";

let tmp: ReturnType<typeof tempDir>;
let ca: Ca;
let rogueCa: Ca;
let serverCert: CertFiles;
let app1: CertFiles;
let rogueApp1: CertFiles;

before(async () => {
  tmp = tempDir();
  ({ ca, rogueCa, server: serverCert } = await testPki(tmp.dir));
  [app1, rogueApp1] = await Promise.all([
    issue(ca, tmp.dir, "app-1", { cn: "app-1", sans: ["DNS:app-1"], usage: "client" }),
    issue(rogueCa, tmp.dir, "rogue-app-1", { cn: "app-1", sans: ["DNS:app-1"], usage: "client" }),
  ]);
});
after(() => tmp.remove());

async function startTlsServer(tlsOptions: Partial<ListenTlsOptions> = {}, options: ServerOptions = {}) {
  const server: PromproxyServer = createServer({ logger: silentLogger, ...options });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0, tls: { cert: serverCert.cert, key: serverCert.key, ...tlsOptions } });
  return { server, port, url: `https://127.0.0.1:${port}`, close: () => server.close({ graceMs: 500 }) };
}

/** The error a client's start() rejects with (a refusal that retrying cannot fix). */
async function refusal(url: string, name: string, options: Parameters<typeof startClient>[2]): Promise<ConnectError> {
  try {
    const c = await startClient(url, name, options);
    await c.stop();
  } catch (e) {
    assert.ok(e instanceof ConnectError, String(e));
    return e;
  }
  return assert.fail(`the client "${name}" was let in`);
}

describe("TLS listener", () => {
  test("serves HTTP/1.1 and HTTP/2 on one port: ALPN picks HTTP/1.1 for clients offering both, h2 for h2-only clients", async () => {
    const s = await startTlsServer();
    try {
      const h1 = await curl(["--cacert", ca.certFile, "-w", "%{http_version}", "-o", "/dev/null", `${s.url}/healthz`]);
      assert.equal(h1.code, 0, h1.stderr);
      assert.equal(h1.stdout, "1.1");
      // curl --http2 offers h2 and http/1.1: gets HTTP/1.1 (what Prometheus needs, see ListenTlsOptions.preferHttp1).
      const both = await curl(["--http2", "--cacert", ca.certFile, "-w", "%{http_version}", "-o", "/dev/null", `${s.url}/healthz`]);
      assert.equal(both.stdout, "1.1", both.stderr);
      // Node's http2 client offers only h2 (as gRPC and Connect clients do): it gets HTTP/2.
      const session = http2.connect(s.url, { ca: ca.cert });
      try {
        const status = await new Promise<unknown>((resolve, reject) => {
          const req = session.request({ ":path": "/healthz" });
          req.once("response", (h) => resolve(h[":status"]));
          req.once("error", reject);
          req.end();
          req.resume();
        });
        assert.equal(status, 200);
        assert.equal(session.alpnProtocol, "h2");
      } finally {
        session.close();
      }
      // Cleartext on a TLS port is refused, never served.
      const plain = await curl(["-m", "5", `http://127.0.0.1:${s.port}/healthz`]);
      assert.notEqual(plain.code, 0);
    } finally {
      await s.close();
    }
  });

  test("preferHttp1: false gives HTTP/2 to clients that offer both", async () => {
    const s = await startTlsServer({ preferHttp1: false });
    try {
      const r = await curl(["--http2", "--cacert", ca.certFile, "-w", "%{http_version}", "-o", "/dev/null", `${s.url}/healthz`]);
      assert.equal(r.stdout, "2", r.stderr);
    } finally {
      await s.close();
    }
  });

  test("a client connects over https:// with the CA, and curl scrapes it through the https proxy", async () => {
    const s = await startTlsServer();
    const c = await startClient(s.url, "app-1", { tls: { ca: ca.cert } });
    try {
      const r = await curl(["-x", s.url, "--proxy-cacert", ca.certFile, "http://app-1/metrics"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^test_up_total\{name="app-1"\} 1$/m);
    } finally {
      await c.stop();
      await s.close();
    }
  });

  test("a client that does not trust the server's certificate does not connect, and says why", async () => {
    const s = await startTlsServer();
    const errors: ConnectError[] = [];
    const c = createClient({ name: "app-1", serverUrl: s.url, registry: testRegistry(), logger: silentLogger, tls: { ca: rogueCa.cert }, onError: (e) => errors.push(e) });
    try {
      await assert.rejects(c.start({ timeoutMs: 1_500 }), (e: unknown) => e instanceof ConnectError && e.code === Code.DeadlineExceeded);
      assert.ok(errors.length > 0);
      assert.match(errors[0]?.message ?? "", /certificate/i);
      assert.equal(s.server.clients().length, 0);
    } finally {
      await c.stop();
      await s.close();
    }
  });

  test("certificate files are reloaded without a restart; a half-written pair keeps the old one", async () => {
    const d = path.join(tmp.dir, "reload");
    fs.mkdirSync(d);
    const certFile = path.join(d, "tls.crt");
    const keyFile = path.join(d, "tls.key");
    fs.copyFileSync(serverCert.certFile, certFile);
    fs.copyFileSync(serverCert.keyFile, keyFile);
    const server = createServer({ logger: silentLogger });
    const { port } = await server.listen({ host: "127.0.0.1", port: 0, tls: { certFile, keyFile } });
    const serialNow = () =>
      new Promise<string>((resolve, reject) => {
        const sock = tls.connect({ host: "127.0.0.1", port, ca: ca.cert, ALPNProtocols: ["http/1.1"] }, () => {
          const serial = sock.getPeerCertificate().serialNumber;
          sock.end();
          resolve(serial);
        });
        sock.once("error", reject);
      });
    const serialOf = (pem: Buffer) => new X509Certificate(pem).serialNumber;
    try {
      assert.equal(await serialNow(), serialOf(serverCert.cert));
      const next = await issue(ca, d, "next", { cn: "127.0.0.1", sans: ["IP:127.0.0.1"], usage: "server" });
      // The certificate first, its key a moment later (as a careless rotation does): the old pair stays.
      fs.writeFileSync(certFile, next.cert);
      assert.equal(await serialNow(), serialOf(serverCert.cert));
      fs.writeFileSync(keyFile, next.key);
      assert.equal(await serialNow(), serialOf(next.cert));
    } finally {
      await server.close({ graceMs: 500 });
    }
  });
});

describe("mTLS", () => {
  test("a client certificate is the identity: CN/SAN app-1 holds app-1, visible in clients()", async () => {
    const s = await startTlsServer({ ca: ca.cert, requestCert: true }, { interceptors: [mtlsAuth()] });
    const c = await startClient(s.url, "app-1", { tls: { ca: ca.cert, cert: app1.cert, key: app1.key } });
    try {
      assert.deepEqual(s.server.clients().map((x) => [x.name, x.identity]), [["app-1", "cert:app-1"]]);
    } finally {
      await c.stop();
      await s.close();
    }
  });

  test("the same certificate may not hold another name: PermissionDenied", async () => {
    const s = await startTlsServer({ ca: ca.cert, requestCert: true }, { interceptors: [mtlsAuth()] });
    try {
      const e = await refusal(s.url, "app-2", { tls: { ca: ca.cert, cert: app1.cert, key: app1.key } });
      assert.equal(e.code, Code.PermissionDenied);
      assert.match(e.rawMessage, /identity "cert:app-1" may not use the name "app-2"/);
    } finally {
      await s.close();
    }
  });

  test("names(cert) maps certificates to patterns", async () => {
    const s = await startTlsServer(
      { ca: ca.cert, requestCert: true },
      { interceptors: [mtlsAuth({ names: (cert) => (cert.subject.CN === "app-1" ? ["app-*"] : []) })] },
    );
    const c = await startClient(s.url, "app-7", { tls: { ca: ca.cert, cert: app1.cert, key: app1.key } });
    try {
      assert.equal(s.server.clients()[0]?.name, "app-7");
    } finally {
      await c.stop();
      await s.close();
    }
  });

  test("no client certificate: Unauthenticated (with rejectUnauthorized: false, so that Prometheus can still connect)", async () => {
    const s = await startTlsServer({ ca: ca.cert, requestCert: true, rejectUnauthorized: false }, { interceptors: [mtlsAuth()] });
    try {
      const e = await refusal(s.url, "app-1", { tls: { ca: ca.cert } });
      assert.equal(e.code, Code.Unauthenticated);
      assert.match(e.rawMessage, /client certificate is required/);
      const h = await curl(["--cacert", ca.certFile, `${s.url}/healthz`]);
      assert.equal(h.stdout, "ok\n", h.stderr);
    } finally {
      await s.close();
    }
  });

  test("a client certificate from an untrusted CA: Unauthenticated from mtlsAuth when the handshake lets it through", async () => {
    const s = await startTlsServer({ ca: ca.cert, requestCert: true, rejectUnauthorized: false }, { interceptors: [mtlsAuth()] });
    try {
      const e = await refusal(s.url, "app-1", { tls: { ca: ca.cert, cert: rogueApp1.cert, key: rogueApp1.key } });
      assert.equal(e.code, Code.Unauthenticated);
      assert.match(e.rawMessage, /client certificate not trusted/);
      assert.equal(s.server.clients().length, 0);
    } finally {
      await s.close();
    }
  });

  test("a client certificate from an untrusted CA: the TLS handshake refuses it (rejectUnauthorized, the default)", async () => {
    const s = await startTlsServer({ ca: ca.cert, requestCert: true }, { interceptors: [mtlsAuth()] });
    const errors: ConnectError[] = [];
    const c = createClient({
      name: "app-1",
      serverUrl: s.url,
      registry: testRegistry(),
      logger: silentLogger,
      tls: { ca: ca.cert, cert: rogueApp1.cert, key: rogueApp1.key },
      onError: (e) => errors.push(e),
    });
    try {
      await assert.rejects(c.start({ timeoutMs: 1_500 }), (e: unknown) => e instanceof ConnectError && e.code === Code.DeadlineExceeded);
      assert.ok(errors.length > 0, "the client reported no error");
      assert.equal(s.server.clients().length, 0);
    } finally {
      await c.stop();
      await s.close();
    }
  });

  test("mTLS and a bearer token together: both are required, and the client holds only names both allow", async () => {
    const tokenFile = path.join(tmp.dir, "client-token");
    fs.writeFileSync(tokenFile, "t0k3n-for-app-star\n");
    const s = await startTlsServer(
      { ca: ca.cert, requestCert: true },
      { interceptors: [mtlsAuth(), bearerAuth({ tokens: { "t0k3n-for-app-star": { name: "ops", patterns: ["app-*"] } } })] },
    );
    const tlsFiles = clientTlsFromFiles({ caFile: ca.certFile, certFile: app1.certFile, keyFile: app1.keyFile });
    const c = await startClient(s.url, "app-1", { tls: tlsFiles, interceptors: [bearerToken(() => fs.readFileSync(tokenFile, "utf8"))] });
    try {
      assert.equal(s.server.clients()[0]?.identity, "cert:app-1+ops");
      const e = await refusal(s.url, "app-2", { tls: tlsFiles, interceptors: [bearerToken("t0k3n-for-app-star")] });
      assert.equal(e.code, Code.PermissionDenied);
      const none = await refusal(s.url, "app-1", { tls: tlsFiles });
      assert.equal(none.code, Code.Unauthenticated);
    } finally {
      await c.stop();
      await s.close();
    }
  });
});
