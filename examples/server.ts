// A promproxy server embedded in a program, with its own options.
//   PORT=8080 node examples/server.ts
import { createConsoleLogger, createServer } from "promproxy/server";

const server = createServer({ defaultScrapeTimeoutMs: 10_000, logger: createConsoleLogger("info") });
const { port } = await server.listen({ host: "127.0.0.1", port: Number(process.env["PORT"] ?? 8080) });
console.log(`listening on ${port}`);
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => void server.close({ graceMs: 2_000 }));
}
