/**
 * Bench child: many lean Scrape streams for the status bench (status.ts). Raw
 * HTTP/2 (node:http2) with gRPC framing by hand, up to 16 streams per
 * connection (the server's default cap), so that one process holds thousands
 * of clients cheaply. Each client says hello with a few labels and two
 * targets, answers pings, and answers every order with a small body; the
 * target on port 9200 of every tenth client answers "unreachable", so the
 * status page has errors to show.
 *
 * argv[2]: JSON { serverPort, count, prefix, only? }. With `only` ({ ids, self, k }: a replica set, this
 * server's id in it, replicas per client) only the clients rendezvous hashing assigns to `self` connect (the
 * steady state of `replicasPerClient`, bench/ha-k.ts).
 */
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ClientFrameSchema, ScrapeErrorReason, ServerFrameSchema } from "../gen/promproxy/v1/scrape_pb.ts";
import { ready, serveCommands } from "./ipc.ts";
import { cpuMeter } from "./meters.ts";
import { assignedReplicas } from "../src/shared/rendezvous.ts";

const config = JSON.parse(process.argv[2] ?? "{}") as { serverPort: number; count: number; prefix: string; only?: { ids: string[]; self: string; k: number } };
const only = config.only;
/** The clients this process connects: every one, or those assigned to `only.self`. */
const mine = Array.from({ length: config.count }, (_, i) => i).filter((i) => !only || assignedReplicas(`${config.prefix}-${i}`, only.ids, only.k).includes(only.self));
const perConnection = 16;
const body = Buffer.from("# TYPE idle_up gauge\nidle_up 1\n".repeat(8));
let welcomed = 0;
let ended = 0;

function frame(f: NonNullable<MessageInitShape<typeof ClientFrameSchema>["frame"]>): Buffer {
  const msg = toBinary(ClientFrameSchema, create(ClientFrameSchema, { frame: f }));
  const out = Buffer.allocUnsafe(5 + msg.length);
  out[0] = 0;
  out.writeUInt32BE(msg.length, 1);
  out.set(msg, 5);
  return out;
}

function openStream(session: http2.ClientHttp2Session, i: number) {
  const stream = session.request({
    ":method": "POST",
    ":path": "/promproxy.v1.ScrapeService/Scrape",
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.on("error", () => {});
  stream.on("close", () => ended++);
  stream.write(
    frame({
      case: "hello",
      value: {
        name: `${config.prefix}-${i}`,
        labels: { env: "bench", team: `team-${i % 7}`, region: "eu-west-1" },
        targets: [
          { port: 9100, path: "/metrics", labels: {} },
          { port: 9200, path: "/metrics", labels: {} },
        ],
        version: "status-bench/0",
        features: [],
      },
    }),
  );
  let buf: Buffer = Buffer.alloc(0);
  stream.on("data", (d: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      const f = fromBinary(ServerFrameSchema, buf.subarray(5, 5 + len)).frame;
      buf = buf.subarray(5 + len);
      if (f.case === "welcome") welcomed++;
      else if (f.case === "ping") stream.write(frame({ case: "pong", value: { nonce: f.value.nonce } }));
      else if (f.case === "order") {
        const id = f.value.scrapeId;
        if (f.value.port === 9200 && i % 10 === 0) {
          stream.write(frame({ case: "end", value: { scrapeId: id, error: { reason: ScrapeErrorReason.UNREACHABLE, message: "connect ECONNREFUSED 127.0.0.1:9200" } } }));
        } else {
          stream.write(frame({ case: "head", value: { scrapeId: id, status: 200, headers: [{ name: "content-type", value: "text/plain; version=0.0.4" }] } }));
          stream.write(frame({ case: "chunk", value: { scrapeId: id, data: body } }));
          stream.write(frame({ case: "end", value: { scrapeId: id } }));
        }
      }
    }
  });
}

const sessions: http2.ClientHttp2Session[] = [];
serveCommands({
  ...cpuMeter().commands,
  /** Opens every stream, one connection per 16, `batch` connections every 50 ms. */
  async connect(arg: unknown) {
    const { batch = 10 } = (arg ?? {}) as { batch?: number };
    for (let i = 0; i < mine.length; i += perConnection) {
      const session = http2.connect(`http://127.0.0.1:${config.serverPort}`);
      session.on("error", () => {});
      sessions.push(session);
      for (const j of mine.slice(i, i + perConnection)) openStream(session, j);
      if ((i / perConnection) % batch === batch - 1) await new Promise((r) => setTimeout(r, 50));
    }
    return mine.length;
  },
  welcomed: () => welcomed,
  ended: () => ended,
  stop() {
    for (const s of sessions) s.destroy();
    setImmediate(() => process.exit(0));
  },
});
ready({ pid: process.pid });
