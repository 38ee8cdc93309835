/**
 * Test harness: real servers on loopback ports, real clients over HTTP/2,
 * requests the way Prometheus sends them (absolute-URI HTTP/1.1 proxy requests).
 */
import { execFile } from "node:child_process";
import * as http from "node:http";
import { promisify } from "node:util";
import { Counter, Registry } from "prom-client";
import { createClient, type ClientOptions, type PromproxyClient } from "../src/client/index.ts";
import { createServer, silentLogger, type PromproxyServer, type ServerOptions } from "../src/server/index.ts";

export interface TestServer {
  server: PromproxyServer;
  port: number;
  url: string;
  close(): Promise<void>;
}

/** Starts a server on 127.0.0.1 and a free port, silent unless told otherwise. */
export async function startServer(options: ServerOptions = {}): Promise<TestServer> {
  // PROMPROXY_TEST_FAST_PATH=0 runs the suite's servers with every stream through Connect (fastPath: false).
  const fastPath = process.env.PROMPROXY_TEST_FAST_PATH === "0" ? { fastPath: false } : {};
  const server = createServer({ logger: silentLogger, ...fastPath, ...options });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  return { server, port, url: `http://127.0.0.1:${port}`, close: () => server.close({ graceMs: 500 }) };
}

/** A registry with one counter `test_up_total{name}` set to 1. */
export function testRegistry(name = "test"): Registry {
  const registry = new Registry();
  new Counter({ name: "test_up_total", help: "A counter for tests.", labelNames: ["name"], registers: [registry] }).inc({ name });
  return registry;
}

/** Starts an embedded client and waits for its welcome (rejecting as `ready()` does). */
export async function startClient(
  serverUrl: string,
  name: string,
  options: Partial<ClientOptions> = {},
): Promise<PromproxyClient> {
  const client = createClient({
    name,
    serverUrl,
    registry: testRegistry(name),
    logger: silentLogger,
    backoff: { initialMs: 50, maxMs: 500 },
    // Tests scrape back to back, far faster than any Prometheus: the registry's 10 scrapes a second are lifted
    // (a test of that limit passes its own).
    maxRegistryScrapesPerSecond: 1_000_000,
    ...options,
  });
  await client.start();
  await client.ready({ timeoutMs: 10_000 });
  return client;
}

export interface ProxyResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Sends a proxy request for `uri` the way Prometheus does with proxy_url (fresh connection, no keep-alive). */
export function proxyGet(
  port: number,
  uri: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<ProxyResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path: uri, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** Runs curl; resolves with stdout (and the exit code, never throwing on curl's own failures). */
export async function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)("curl", ["-sS", ...args], { maxBuffer: 256 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === "number" ? err.code : 1, stdout: err.stdout ?? "", stderr: err.stderr ?? "" };
  }
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes (then throws with `what`). */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
