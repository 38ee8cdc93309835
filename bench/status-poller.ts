/**
 * Bench child: pollers of the status bench (status.ts). `poll` runs N loops,
 * each on its own keep-alive connection, requesting one path of the server as
 * fast as it answers (reading every body), for a given time; it returns the
 * requests answered and the bytes read.
 */
import * as http from "node:http";
import { ready, serveCommands } from "./ipc.ts";

const port = Number(JSON.parse(process.argv[2] ?? "{}").serverPort);

function get(agent: http.Agent, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path, agent }, (res) => {
      let n = 0;
      res.on("data", (d: Buffer) => (n += d.length));
      res.on("end", () => (res.statusCode === 200 ? resolve(n) : reject(new Error(`${path}: HTTP ${res.statusCode}`))));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

serveCommands({
  async poll(arg: unknown) {
    const { path, pollers, seconds } = arg as { path: string; pollers: number; seconds: number };
    const until = Date.now() + seconds * 1000;
    let requests = 0;
    let bytes = 0;
    await Promise.all(
      Array.from({ length: pollers }, async () => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        while (Date.now() < until) {
          bytes += await get(agent, path);
          requests++;
        }
        agent.destroy();
      }),
    );
    return { requests, bytes };
  },
  stop() {
    setImmediate(() => process.exit(0));
  },
});
ready({ pid: process.pid });
