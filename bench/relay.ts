/**
 * The floor: a raw TCP relay (Node `net` sockets piped both ways, no protocol),
 * as DESIGN.md measured it. Two of them in a row stand for the server hop and
 * the client hop.
 */
import * as net from "node:net";

export async function startRelay(targetPort: number): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((down) => {
    const up = net.connect(targetPort, "127.0.0.1");
    for (const s of [down, up]) {
      sockets.add(s);
      s.once("close", () => sockets.delete(s));
      s.setNoDelay(true);
    }
    down.pipe(up);
    up.pipe(down);
    down.on("error", () => up.destroy());
    up.on("error", () => down.destroy());
    down.on("close", () => up.destroy());
    up.on("close", () => down.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close() {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}
