/**
 * Bench child: a static exporter, the target of the forwarder section. Plain
 * Node HTTP serving fixed, pre-built expositions (text format 0.0.4) with a
 * Content-Length: `/10k`, `/1m`, `/20m` (any path ending in one of these
 * names), so that every path (direct, floor, forwarder) gets the very same
 * bytes and the target's own cost is as small and constant as it gets.
 */
import * as http from "node:http";
import { ready, serveCommands } from "./ipc.ts";
import { cpuMeter, rssMeter } from "./meters.ts";

export const staticSizes = { "10k": 10 * 1024, "1m": 1024 * 1024, "20m": 20 * 1024 * 1024 } as const;
export type StaticSize = keyof typeof staticSizes;

/** An exposition of `bytes` bytes (to the byte): gauges with three labels, a comment line to pad. */
function exposition(bytes: number): Buffer {
  const lines: string[] = ["# HELP bench_static Static benchmark gauge.", "# TYPE bench_static gauge"];
  let size = lines.join("\n").length + 1;
  for (let i = 0; ; i++) {
    const id = String(i).padStart(7, "0");
    const line = `bench_static{instance="inst-${id}",path="/api/v1/items/${id}",code="200"} ${i}.4242`;
    if (size + line.length + 1 > bytes - 16) break;
    lines.push(line);
    size += line.length + 1;
  }
  let text = lines.join("\n") + "\n";
  const pad = bytes - Buffer.byteLength(text);
  if (pad >= 3) text += "#" + " ".repeat(pad - 2) + "\n";
  return Buffer.from(text);
}

const bodies = new Map<string, Buffer>(Object.entries(staticSizes).map(([name, bytes]) => [name, exposition(bytes)]));

const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const name = /\/([0-9a-z]+)(?:\?.*)?$/.exec(req.url ?? "")?.[1] ?? "";
  const body = bodies.get(name);
  if (!body) {
    res.writeHead(404, { "content-type": "text/plain" }).end("no such body\n");
    return;
  }
  res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8", "content-length": body.length });
  res.end(body);
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));

serveCommands({
  ...cpuMeter().commands,
  ...rssMeter().commands,
  stop() {
    server.closeAllConnections();
    server.close();
    setImmediate(() => process.exit(0));
  },
});
ready({ port: (server.address() as { port: number }).port, sizes: Object.fromEntries([...bodies].map(([k, b]) => [k, b.length])) });
