/**
 * A hand-driven Scrape client for end-to-end tests: it speaks the real
 * protocol (gRPC over HTTP/2 via Connect) but sends exactly the frames a test
 * tells it to, when it tells it to. Also HTTP helpers that see what a
 * Prometheus-side connection sees (incomplete responses included).
 */
import * as http from "node:http";
import * as net from "node:net";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient as createRpcClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import {
  ClientFrameSchema,
  ScrapeErrorReason,
  ScrapeService,
  type ServerFrame,
  type Welcome,
} from "../../gen/promproxy/v1/scrape_pb.ts";
import { createQueue } from "../../src/shared/queue.ts";

export { ScrapeErrorReason };

type ClientFrameInit = MessageInitShape<typeof ClientFrameSchema>;
type Kind = NonNullable<ServerFrame["frame"]["case"]>;
type ValueOf<K extends Kind> = Extract<ServerFrame["frame"], { case: K }>["value"];

export interface RawHello {
  name: string;
  labels?: Record<string, string>;
  targets?: { port: number; path: string; labels?: Record<string, string> }[];
  version?: string;
  features?: string[];
  heldReplicaIds?: string[];
}

export interface RawClient {
  readonly welcome: Welcome;
  /** Every frame the server sent, in order (the welcome included). */
  readonly received: ServerFrame[];
  /** Sends any frame. */
  send(frame: ClientFrameInit): void;
  head(id: bigint, status?: number, headers?: Record<string, string>): void;
  chunk(id: bigint, data: Uint8Array | string): void;
  end(id: bigint, error?: { reason: ScrapeErrorReason; message: string }): void;
  /** Sends `data` in chunks of at most `chunkBytes`, waiting for credit as needed. */
  body(id: bigint, data: Uint8Array | string, chunkBytes?: number): Promise<void>;
  /** Body bytes the server has granted so far for a scrape (order credit plus Credit frames). */
  granted(id: bigint): number;
  /**
   * The next frame of this kind that no earlier `next` call returned (and
   * that matches `match`), waiting up to `timeoutMs` for it.
   */
  next<K extends Kind>(kind: K, match?: (v: ValueOf<K>) => boolean, timeoutMs?: number): Promise<ValueOf<K>>;
  /** Cancels the call (HTTP/2 RST_STREAM); the connection is dropped too. */
  abort(): void;
  /** Ends the request stream cleanly and waits for the server to end its side; then drops the connection. */
  close(): Promise<void>;
  /** Settles when the stream has ended: the error it ended with, or undefined. */
  readonly ended: Promise<ConnectError | undefined>;
}

/**
 * Opens a Scrape stream, sends the hello and waits for the welcome (rejecting
 * with the server's ConnectError when it refuses). Answers pings unless
 * `autoPong` is false.
 */
export async function connectRaw(
  serverUrl: string,
  hello: RawHello,
  opts: { autoPong?: boolean; protocol?: "grpc" | "connect"; interceptors?: Interceptor[] } = {},
): Promise<RawClient> {
  const sessionManager = new Http2SessionManager(serverUrl);
  const transportOptions = { baseUrl: serverUrl, httpVersion: "2" as const, sessionManager, interceptors: opts.interceptors ?? [] };
  const transport = opts.protocol === "connect" ? createConnectTransport(transportOptions) : createGrpcTransport(transportOptions);
  const rpc = createRpcClient(ScrapeService, transport);
  const out = createQueue<ClientFrameInit>();
  const call = new AbortController();
  const received: ServerFrame[] = [];
  const taken = new Set<ServerFrame>();
  const waiters = new Set<() => void>();
  const grants = new Map<bigint, number>();
  const sent = new Map<bigint, number>();
  let done = false;
  let endError: ConnectError | undefined;

  const notify = () => {
    for (const w of [...waiters]) w();
  };

  out.push({
    frame: {
      case: "hello",
      value: {
        name: hello.name,
        labels: hello.labels ?? {},
        targets: (hello.targets ?? []).map((t) => ({ port: t.port, path: t.path, labels: t.labels ?? {} })),
        version: hello.version ?? "raw-test-client/0",
        features: hello.features ?? [],
        heldReplicaIds: hello.heldReplicaIds ?? [],
      },
    },
  });

  const ended: Promise<ConnectError | undefined> = (async () => {
    try {
      for await (const frame of rpc.scrape(out, { signal: call.signal })) {
        received.push(frame);
        const f = frame.frame;
        if (f.case === "order") grants.set(f.value.scrapeId, (grants.get(f.value.scrapeId) ?? 0) + Number(f.value.creditBytes));
        if (f.case === "credit") grants.set(f.value.scrapeId, (grants.get(f.value.scrapeId) ?? 0) + Number(f.value.bytes));
        if (f.case === "ping" && opts.autoPong !== false) out.push({ frame: { case: "pong", value: { nonce: f.value.nonce } } });
        notify();
      }
    } catch (e) {
      endError = ConnectError.from(e);
    } finally {
      done = true;
      out.close();
      notify();
    }
    return endError;
  })();

  function next<K extends Kind>(kind: K, match?: (v: ValueOf<K>) => boolean, timeoutMs = 10_000): Promise<ValueOf<K>> {
    return new Promise<ValueOf<K>>((settle, reject) => {
      const resolve = settle as (v: ValueOf<K>) => void;
      const check = () => {
        for (const f of received) {
          if (taken.has(f) || f.frame.case !== kind) continue;
          const v = f.frame.value as unknown as ValueOf<K>;
          if (match && !match(v)) continue;
          taken.add(f);
          finish();
          resolve(v);
          return;
        }
        if (done) {
          finish();
          reject(new Error(`stream ended (${endError?.message ?? "cleanly"}) before a ${kind} frame arrived`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no ${kind} frame within ${timeoutMs} ms`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  }

  const welcome = await next("welcome").catch(async (e: unknown) => {
    const err = await ended;
    sessionManager.abort();
    throw err ?? e;
  });

  const bytesOf = (data: Uint8Array | string) => (typeof data === "string" ? Buffer.from(data) : data);

  const client: RawClient = {
    welcome,
    received,
    send(frame) {
      out.push(frame);
    },
    head(id, status = 200, headers = { "content-type": "text/plain; version=0.0.4; charset=utf-8" }) {
      out.push({
        frame: { case: "head", value: { scrapeId: id, status, headers: Object.entries(headers).map(([name, value]) => ({ name, value })) } },
      });
    },
    chunk(id, data) {
      const b = bytesOf(data);
      sent.set(id, (sent.get(id) ?? 0) + b.byteLength);
      out.push({ frame: { case: "chunk", value: { scrapeId: id, data: b } } });
    },
    end(id, error) {
      out.push({ frame: { case: "end", value: { scrapeId: id, error } } });
    },
    async body(id, data, chunkBytes = 64 * 1024) {
      const b = bytesOf(data);
      let offset = 0;
      while (offset < b.byteLength) {
        const left = client.granted(id) - (sent.get(id) ?? 0);
        if (left <= 0) {
          await next("credit", (c) => c.scrapeId === id);
          continue;
        }
        const n = Math.min(left, chunkBytes, b.byteLength - offset);
        client.chunk(id, b.subarray(offset, offset + n));
        offset += n;
      }
    },
    granted(id) {
      return grants.get(id) ?? 0;
    },
    next,
    abort() {
      call.abort(new ConnectError("raw client aborted", Code.Canceled));
      sessionManager.abort();
    },
    async close() {
      out.close();
      await ended;
      sessionManager.abort();
    },
    ended,
  };
  return client;
}

/** What a Prometheus-side connection saw of one proxied request. */
export interface SeenResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** Whether the response ended properly (false: the connection was cut before its end). */
  complete: boolean;
}

/** A proxy request in progress: its response as it arrives, and a way to hang up. */
export interface OpenRequest {
  /** Resolves with the status line and headers. */
  response: Promise<http.IncomingMessage>;
  /** Resolves once the response ended or the connection closed (never rejects). */
  done: Promise<SeenResponse>;
  /** Resolves once at least `n` body bytes have arrived. */
  received(n: number): Promise<void>;
  /** Hangs up, the way Prometheus does when it gives up. */
  destroy(): void;
}

/**
 * Has Prometheus give up on `n` scrapes of client `name`, held by `raw`: each is ordered, the request hung up on
 * before any answer, and the order cancelled. Returns their ids, in order.
 */
export async function giveUpOn(raw: RawClient, port: number, name: string, n: number): Promise<bigint[]> {
  const ids: bigint[] = [];
  for (let i = 0; i < n; i++) {
    const req = openGet(port, `http://${name}/metrics`);
    const order = await raw.next("order");
    req.destroy(); // Prometheus gives up before the answer
    await raw.next("cancel", (c) => c.scrapeId === order.scrapeId);
    await req.done;
    ids.push(order.scrapeId);
  }
  return ids;
}

/** Sends an absolute-URI proxy request on a fresh connection. */
export function openGet(port: number, uri: string, headers: Record<string, string> = {}, method = "GET"): OpenRequest {
  const req = http.request({ host: "127.0.0.1", port, method, path: uri, headers, agent: false });
  const chunks: Buffer[] = [];
  let bytes = 0;
  const byteWaiters = new Set<() => void>();
  let resolveResponse!: (r: http.IncomingMessage) => void;
  const response = new Promise<http.IncomingMessage>((r) => (resolveResponse = r));
  const done = new Promise<SeenResponse>((resolve) => {
    let res: http.IncomingMessage | undefined;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      for (const w of [...byteWaiters]) w();
      resolve({ status: res?.statusCode ?? 0, headers: res?.headers ?? {}, body: Buffer.concat(chunks), complete: res?.complete ?? false });
    };
    req.on("response", (r) => {
      res = r;
      resolveResponse(r);
      r.on("data", (c: Buffer) => {
        chunks.push(c);
        bytes += c.length;
        for (const w of [...byteWaiters]) w();
      });
      r.on("error", () => {});
      r.on("end", settle);
      r.on("close", settle);
    });
    req.on("error", settle);
    req.on("close", () => {
      if (!res) settle();
    });
  });
  response.catch(() => {});
  req.end();
  return {
    response,
    done,
    received(n) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (bytes < n) return;
          byteWaiters.delete(check);
          resolve();
        };
        byteWaiters.add(check);
        check();
        void done.then(() => {
          byteWaiters.delete(check);
          if (bytes < n) reject(new Error(`connection ended after ${bytes} of ${n} bytes`));
        });
      });
    },
    destroy() {
      req.destroy();
    },
  };
}

/** Writes raw bytes to the server (from `from`, a loopback address) and collects everything it answers until it closes the connection. */
export function rawHttp(port: number, request: string, timeoutMs = 5_000, from?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", ...(from ? { localAddress: from } : {}) });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no end of the answer to ${JSON.stringify(request.slice(0, 60))} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString("latin1"));
    });
    socket.write(request);
  });
}

/** Milliseconds `p` took to settle. */
export async function timed<T>(p: Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await p;
  return { value, ms: performance.now() - t0 };
}
